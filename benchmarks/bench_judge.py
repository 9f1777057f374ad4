"""Judged samples per second: EMER scoring against a local OpenAI-compatible judge that answers in 200 ms.

Three measurements, each repeated and reported as a median:

* concurrency 1: one request in flight (the original MERTools loop);
* concurrency 16: sixteen in flight;
* cached re-run: the concurrency-16 samples again with the cache that run filled (no calls at all).

Every sample needs exactly one judge call (label lists, each with a distinct synonym-grouping
prompt). The judge is `microemo.evaluation.testing.ScriptedJudge` on 127.0.0.1, so the numbers
measure this client (threads, HTTP, retries bookkeeping, SQLite cache, parsing), not a model.

    python benchmarks/bench_judge.py                # writes bench_judge.json and bench_judge.md here
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from microemo.evaluation.emer import evaluate_emer
from microemo.evaluation.judge import JudgeClient, JudgeConfig
from microemo.evaluation.testing import SYNONYMS, Reply, ScriptedJudge, correct_reply

HERE = Path(__file__).resolve().parent


def make_samples(count: int, tag: str) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """`count` samples whose grouping prompts all differ (a unique word per sample)."""
    words = sorted(SYNONYMS)
    names, references, predictions = [], [], []
    for index in range(count):
        names.append(f"{tag}_{index:05d}")
        references.append([words[index % len(words)], words[(index + 3) % len(words)]])
        predictions.append([words[(index + 1) % len(words)], f"mood{tag}{index}"])
    return names, references, predictions


def timed_run(server: ScriptedJudge, cache: Path, concurrency: int, samples: tuple) -> tuple[float, dict]:
    """Seconds for one evaluation, and the client's accounting."""
    config = JudgeConfig(model="bench-judge", base_url=server.base_url, cache_path=cache, concurrency=concurrency,
                         timeout=30.0)
    with JudgeClient(config) as client:
        start = time.perf_counter()
        evaluation = evaluate_emer(*samples, judge=client, progress=False)
        elapsed = time.perf_counter() - start
        stats = client.stats.to_dict()
    if not evaluation.summary["complete"]:
        raise RuntimeError(f"benchmark run incomplete: {evaluation.summary}")
    return elapsed, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the judge takes per reply")
    parser.add_argument("--samples-c1", type=int, default=20, help="samples per concurrency-1 run")
    parser.add_argument("--samples-c16", type=int, default=160, help="samples per concurrency-16 run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--output-dir", type=Path, default=HERE)
    parser.add_argument("--note", default="", help="a line on the conditions, written into the results")
    args = parser.parse_args()
    result = measure(args.delay, args.samples_c1, args.samples_c16, args.repeats, args.note)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "bench_judge.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "bench_judge.md").write_text(render_markdown(result))
    print(render_markdown(result))


def measure(delay: float, samples_c1: int, samples_c16: int, repeats: int, note: str = "") -> dict:
    """Samples/s at concurrency 1 and 16 and a cached re-run, ``repeats`` times each; the result dictionary."""
    os.environ.setdefault("OPENAI_API_KEY", "bench")  # the local judge checks nothing

    rates: dict[str, list[float]] = {"concurrency_1": [], "concurrency_16": [], "cached_rerun": []}
    cached_calls: list[int] = []
    with ScriptedJudge(lambda prompt, nth: Reply(correct_reply(prompt), delay=delay)) as server, \
            tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            c1 = make_samples(samples_c1, f"a{repeat}")
            seconds, _ = timed_run(server, Path(scratch) / f"c1-{repeat}.sqlite", 1, c1)
            rates["concurrency_1"].append(samples_c1 / seconds)

            c16 = make_samples(samples_c16, f"b{repeat}")
            cache = Path(scratch) / f"c16-{repeat}.sqlite"
            seconds, _ = timed_run(server, cache, 16, c16)
            rates["concurrency_16"].append(samples_c16 / seconds)

            seconds, stats = timed_run(server, cache, 16, c16)
            rates["cached_rerun"].append(samples_c16 / seconds)
            cached_calls.append(stats["calls"])
            print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "benchmark": "judged samples per second (EMER synonym grouping, one judge call per sample)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "judge_delay_s": delay,
        "samples": {"concurrency_1": samples_c1, "concurrency_16": samples_c16},
        "repeats": repeats,
        "note": note,
        "samples_per_second": {"median": medians, "all": rates},
        "ratios": {
            "concurrency_16_over_1": medians["concurrency_16"] / medians["concurrency_1"],
            "cached_over_concurrency_16": medians["cached_rerun"] / medians["concurrency_16"],
        },
        "ideal": {"concurrency_1": 1 / delay, "concurrency_16": 16 / delay},
        "calls_in_cached_reruns": cached_calls,
    }
    return result


def run(quick: bool):
    """The harness's judge section (a shorter run with ``quick``)."""
    from benchmarks.harness import Ratio, Section, Table

    result = measure(0.2, 10 if quick else 20, 64 if quick else 160, 1 if quick else 3)
    medians, ratios, ideal = result["samples_per_second"]["median"], result["ratios"], result["ideal"]
    section = Section(
        name="judge", title="Judge throughput (EMER scoring against a local judge answering in 200 ms)",
        command="python -m benchmarks --only judge" + (" --quick" if quick else ""), data=result,
    )  # fmt: skip
    section.tables.append(Table(
        "Judged samples per second, one judge call per sample",
        ["run", "samples", "samples/s (median)", "ideal"],
        [["concurrency 1", str(result["samples"]["concurrency_1"]), f"{medians['concurrency_1']:.2f}",
          f"{ideal['concurrency_1']:.2f}"],
         ["concurrency 16", str(result["samples"]["concurrency_16"]), f"{medians['concurrency_16']:.2f}",
          f"{ideal['concurrency_16']:.2f}"],
         ["cached re-run", str(result["samples"]["concurrency_16"]), f"{medians['cached_rerun']:.0f}", "-"]],
        note=f"Judge calls made by the cached re-runs: {result['calls_in_cached_reruns']}.",
    ))  # fmt: skip
    efficiency = medians["concurrency_16"] / ideal["concurrency_16"]
    section.ratios.append(Ratio(
        "judge client at concurrency 16 / ideal (informative)", efficiency, "none", None,
        f"{ratios['concurrency_16_over_1']:.1f}x concurrency 1 and {100 * efficiency:.0f}% of what a client with no "
        "overhead would reach; the rest is HTTP, threads and the SQLite cache on 2 shared cores.",
    ))  # fmt: skip
    section.summary = (f"{medians['concurrency_1']:.2f} samples/s at concurrency 1, {medians['concurrency_16']:.1f} at 16; "
                       f"cached re-run makes {sum(result['calls_in_cached_reruns'])} calls.")  # fmt: skip
    return section


def render_markdown(result: dict) -> str:
    medians, ratios = result["samples_per_second"]["median"], result["ratios"]
    ideal = result["ideal"]
    lines = [
        "# Judge throughput (benchmarks/bench_judge.py)",
        "",
        f"{result['date']}, {result['machine']['platform']}, Python {result['machine']['python']}, "
        f"{result['machine']['cpus']} CPUs. Local OpenAI-compatible judge answering after "
        f"{1000 * result['judge_delay_s']:.0f} ms; one judge call per sample; median of {result['repeats']} runs.",
        *([result["note"], ""] if result.get("note") else []),
        "Ideal = requests in flight / judge delay: what a client with zero overhead would reach.",
        "",
        "| run | samples | samples/s (median) | ideal | ratio |",
        "|---|---|---|---|---|",
        f"| concurrency 1 | {result['samples']['concurrency_1']} | {medians['concurrency_1']:.2f} | "
        f"{ideal['concurrency_1']:.2f} | 1.00 |",
        f"| concurrency 16 | {result['samples']['concurrency_16']} | {medians['concurrency_16']:.2f} | "
        f"{ideal['concurrency_16']:.2f} | {ratios['concurrency_16_over_1']:.2f} x concurrency 1 |",
        f"| cached re-run (concurrency 16) | {result['samples']['concurrency_16']} | {medians['cached_rerun']:.1f} | "
        f"- | {ratios['cached_over_concurrency_16']:.1f} x concurrency 16 |",
        "",
        f"Judge calls made by the cached re-runs: {result['calls_in_cached_reruns']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
