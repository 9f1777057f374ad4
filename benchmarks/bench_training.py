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
        sft.main([*common, "--output_dir", str(timed), "--max_steps", str(args.steps)])
        metrics = json.loads((timed / "all_results.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "setting": f"tiny-cpu config, {args.steps} steps, batch 1, torch threads {torch.get_num_threads()}",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "train_samples_per_second": metrics["train_samples_per_second"],
        "seconds_per_step": round(metrics["train_runtime"] / args.steps, 4),
        "peak_resident_memory_mb": round(peak_mb, 1),
        "train_loss": metrics["train_loss"],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
