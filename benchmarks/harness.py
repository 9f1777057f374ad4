"""Shared pieces of the benchmark harness: timing with spread, peak memory, machine facts and verdicts.

Every benchmark module of this folder exposes ``run(quick: bool) -> Section``; ``python -m benchmarks``
collects the sections into ``BENCHMARKS.md`` and one JSON file. Nothing here asserts a time.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """Seconds of repeated runs: the median and the spread (min, max, interquartile range)."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        if len(ordered) < 4:
            q1, q3 = ordered[0], ordered[-1]
        else:
            quartiles = statistics.quantiles(ordered, n=4)
            q1, q3 = quartiles[0], quartiles[2]
        return {"min": ordered[0], "max": ordered[-1], "iqr": q3 - q1}

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, **{f"{k}_s": v for k, v in self.spread.items()}, "repeats": len(self.samples)}

    def describe(self, scale: float = 1e3, unit: str = "ms") -> str:
        """`12.3 ms (11.9-13.0, n=5)`: median and range."""
        s = self.spread
        return f"{self.median * scale:.4g} {unit} ({s['min'] * scale:.3g}-{s['max'] * scale:.3g}, n={len(self.samples)})"


def time_calls(function: Callable[[], Any], repeats: int, warmup: int = 1) -> Timing:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return Timing(samples)


def time_interleaved(functions: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Like :func:`time_calls` for several variants, run round-robin so that a slow spell of a shared machine
    hits every variant alike instead of biasing one ratio."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(values) for name, values in samples.items()}


def _status_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_during(function: Callable[[], Any]) -> float | None:
    """MiB the resident set grew to above its level before ``function`` ran (Linux: the high-water mark is
    reset through /proc/self/clear_refs). None where the kernel does not offer it."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    function()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) / 1024


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and with which versions."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    for name in ("datasets", "av", "mediapipe", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - an optional package missing is recorded as absent
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=False).stdout.strip() or None  # fmt: skip
    except OSError:
        commit = None
    memory_gib = None
    total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1])
        memory_gib = round(total / 2**20, 1) if total else None
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": commit,
        "versions": versions,
    }


@dataclass
class Ratio:
    """A measured ratio against its target, with the sentence that says whether it was met and, if not, why
    and what would close the gap."""

    name: str
    value: float | None
    target: str
    met: bool | None
    sentence: str

    def verdict(self) -> str:
        if self.met is None:
            return "informative" if self.target.startswith("none") else "not measured"
        return "met" if self.met else "not met"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Section:
    """One benchmark's share of the report."""

    name: str
    title: str
    command: str
    summary: str = ""
    tables: list[Table] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["ratios"] = [{**asdict(r), "verdict": r.verdict()} for r in self.ratios]
        return result


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"
