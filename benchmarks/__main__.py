"""Run every benchmark and write BENCHMARKS.md plus one JSON file.

    python -m benchmarks                 # full run (about 16 minutes on 2 CPU cores): BENCHMARKS.md, benchmarks/results.json
    python -m benchmarks --quick         # a few minutes; writes to runs/benchmarks-quick/ unless --output-dir is given
    python -m benchmarks --only ablations processing   # re-run these sections; the others keep their results

Each section runs in a fresh Python process (its memory, threads and worker processes do not leak into the
next); a section that fails is reported as failed with its error, and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.harness import ROOT, Section, machine
from benchmarks.report import render

# name -> module whose run(quick) returns a Section, in report order.
SECTIONS = {
    "ablations": "benchmarks.bench_ablations",
    "processing": "benchmarks.bench_processing",
    "predict": "benchmarks.bench_predict",
    "judge": "benchmarks.bench_judge",
    "vad": "benchmarks.bench_vad",
    "training": "benchmarks.bench_training",
    "utterance_windows": "benchmarks.bench_model",
    "device": "benchmarks.bench_device",
    "timeline": "benchmarks.bench_timeline",
    "long_video": "benchmarks.bench_long_video",
    "scale": "benchmarks.bench_scale",
}


def run_section(name: str, quick: bool, output: Path) -> None:
    """In this process: run one section and write its JSON to ``output``."""
    start = time.perf_counter()
    try:
        section = importlib.import_module(SECTIONS[name]).run(quick)
    except Exception as error:  # noqa: BLE001 - reported in the section, the harness goes on
        section = Section(name=name, title=name, command=f"python -m benchmarks --only {name}",
                          summary=f"FAILED: {type(error).__name__}: {error}",
                          data={"error": traceback.format_exc()})  # fmt: skip
    section.seconds = time.perf_counter() - start
    output.write_text(json.dumps(section.to_dict(), indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer frames, repeats and rows: a few minutes")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    parser.add_argument("--output-dir", type=Path, help="where BENCHMARKS.md and results.json go")
    parser.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--section-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:
        run_section(args.section, args.quick, args.section_output)
        return 0

    if args.output_dir is None:
        markdown = ROOT / ("runs/benchmarks-quick/BENCHMARKS.md" if args.quick else "BENCHMARKS.md")
        results = markdown.parent / "results.json" if args.quick else ROOT / "benchmarks" / "results.json"
    else:
        markdown, results = args.output_dir / "BENCHMARKS.md", args.output_dir / "results.json"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SECTIONS)
    sections = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"[benchmarks] {name} ...", flush=True)
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, "-m", "benchmarks", "--section", name, "--section-output", str(out)]
            code = subprocess.run([*command, *(["--quick"] if args.quick else [])], cwd=ROOT, check=False).returncode
            if out.is_file():
                sections.append(json.loads(out.read_text()))
            else:
                sections.append(Section(name=name, title=name, command=" ".join(command),
                                        summary=f"FAILED: the section's process exited with {code}").to_dict())  # fmt: skip
            print(f"[benchmarks] {name}: {sections[-1]['summary']} ({sections[-1]['seconds']:.0f} s)", flush=True)
    report = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "command": "python -m benchmarks" + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if args.only else ""),
        "seconds": time.perf_counter() - started,
        "sections": sections,
    }
    if args.only and results.is_file():
        # --only updates those sections of the recorded run; the others, and the run's header, stay as recorded.
        earlier = json.loads(results.read_text())
        fresh = {section["name"]: section for section in sections}
        known = [section["name"] for section in earlier.get("sections", [])]
        merged = [fresh.pop(section["name"], section) for section in earlier.get("sections", [])]
        merged += [fresh[name] for name in names if name in fresh and name not in known]
        update = {"sections": list(args.only), "date": report["machine"]["date"], "commit": report["machine"]["commit"],
                  "mode": report["mode"]}  # fmt: skip
        report = {**earlier, "sections": merged, "updates": [*earlier.get("updates", []), update]}
    results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    markdown.write_text(render(report, results_path=results))
    print(f"[benchmarks] wrote {markdown} and {results} in {report['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
