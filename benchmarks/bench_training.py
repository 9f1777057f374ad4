"""Training throughput and peak memory of the tiny-cpu run (tiny-random MicroEmo on the sample clips, CPU).

    python benchmarks/bench_training.py [--steps 100]

Runs `training/sft.py` in this process with the tiny-cpu config (data prepared once, outside the timing) and
writes bench_training.json beside this file: samples/s, seconds per step and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("bench_training.json"))
    args = parser.parse_args()
    report = measure(args.steps)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def measure(steps: int) -> dict:
    """Train ``steps`` steps of the tiny-cpu run after a 2-step warm-up that prepares the data; the report."""
    from microemo.training import sft

    config = str(ROOT / "training/configs/tiny-cpu.yaml")
    common = ["--config", config, "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true",
              "--dataset_path", str(ROOT / "training/configs/tiny-cpu-data.jsonl")]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        warm = Path(folder) / "warm"
        sft.main([*common, "--output_dir", str(warm), "--max_steps", "2"])  # prepares the data, builds the model
        timed = Path(folder) / "timed"
        timed.mkdir()
        (timed / "data").symlink_to(warm / "data")
        (timed / "base-model").symlink_to(warm / "base-model")
        sft.main([*common, "--output_dir", str(timed), "--max_steps", str(steps)])
        metrics = json.loads((timed / "all_results.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "setting": f"tiny-cpu config, {steps} steps, batch 1, torch threads {torch.get_num_threads()}",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "train_samples_per_second": metrics["train_samples_per_second"],
        "seconds_per_step": round(metrics["train_runtime"] / steps, 4),
        "peak_resident_memory_mb": round(peak_mb, 1),
        "train_loss": metrics["train_loss"],
    }
    return report


def run(quick: bool):
    """The harness's training section: tiny-cpu on this CPU, and the device script's recorded numbers if any."""
    from benchmarks.harness import Ratio, Section, Table

    report = measure(30 if quick else 100)
    section = Section(
        name="training", title="Training (tiny-cpu run through training/sft.py, CPU)",
        command="python -m benchmarks --only training" + (" --quick" if quick else ""), data=report,
    )  # fmt: skip
    section.tables.append(Table(
        report["setting"], ["samples/s", "s/step", "peak RSS MB", "loss"],
        [[f"{report['train_samples_per_second']:.2f}", f"{report['seconds_per_step']:.3f}",
          f"{report['peak_resident_memory_mb']:.0f}", f"{report['train_loss']:.3f}"]],
        note="Peak RSS of the section's own process (model, data, trainer). Paper-size steps need a GPU: "
             "see the device section.",
    ))  # fmt: skip
    section.ratios.append(Ratio(
        "paper-shape training step at 8 frames fits 24 GB", None, "<= 24 GB", None,
        "Not measured here: no GPU was lent to this session; the device script (see the device section) measures "
        "it in one command.",
    ))  # fmt: skip
    section.summary = f"{report['train_samples_per_second']:.2f} samples/s, {report['seconds_per_step']:.3f} s/step."
    return section


if __name__ == "__main__":
    main()
