"""How far the local clue path opens after a paper-like run, for several learning rates of the new modules.

A paper-like run: the tiny model on the tiny-cpu data through `training/sft.py` (SFTTrainer, LoRA,
modules_to_save), AdamW at lr 3e-5 with 5 % warm-up and a cosine decay, 250 steps, batch 1. Only
`new_modules_learning_rate` (fusion gate, local clue attention, utterance Q-Former) changes between runs
("none": the same 3e-5 for everything, the setting the review measured).
Reported per run: mean |tanh(gate)| and the relative difference between the fused frame tokens and the
global-only tokens, ||fused - global|| / ||global||, on the training clips with a face; and the final loss.

    python benchmarks/bench_training_gate.py [--steps 250] [--rates none 1e-4 3e-4 1e-3 3e-3]

Writes bench_training_gate.json beside this file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def opening(run_dir: Path) -> dict[str, float]:
    from microemo.training.collator import MicroEmoDataCollator
    from microemo.training.data import load_prepared
    from microemo.training.loading import load_model_and_processor

    model, processor = load_model_and_processor(str(run_dir))
    model.eval()
    attention = model.model.local_clue_attention
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    fuse = attention.fuse

    def recording_fuse(global_tokens, local_tokens):
        fused = fuse(global_tokens, local_tokens)
        captured.append((global_tokens.detach(), fused.detach()))
        return fused

    attention.fuse = recording_fuse
    dataset = load_prepared(run_dir / "data")["train"]
    collator = MicroEmoDataCollator(processor)
    with torch.no_grad():
        for row in dataset:
            model(**collator([row]))
    attention.fuse = fuse
    differences = [((f - g).norm() / g.norm()).item() for g, f in captured]
    return {
        "gate_mean_abs_tanh": torch.tanh(attention.fusion_gate).abs().mean().item(),
        "relative_difference": sum(differences) / len(differences),
        "clips_with_face": len(differences),
    }


def run(rate: str, steps: int, workdir: Path) -> dict[str, float | str]:
    from microemo.training import sft

    output = workdir / f"lr-{rate}"
    args = ["--config", str(ROOT / "training/configs/tiny-cpu.yaml"), "--output_dir", str(output),
            "--dataset_path", str(workdir / "data-source.jsonl"), "--max_steps", str(steps),
            "--learning_rate", "3e-5", "--warmup_steps", str(max(steps // 20, 1)), "--lr_scheduler_type", "cosine",
            "--new_modules_learning_rate", "3e-5" if rate == "none" else rate, "--eval_strategy", "no", "--save_strategy", "no",
            "--logging_steps", str(steps // 5), "--disable_tqdm", "true", "--report_to", "none"]  # fmt: skip
    if (workdir / "data").is_dir():  # prepare once, reuse for every rate
        args[5] = str(workdir / "data")
    start = time.perf_counter()
    sft.main(args)
    seconds = time.perf_counter() - start
    if not (workdir / "data").is_dir():
        (output / "data").rename(workdir / "data")
    (output / "data").symlink_to(workdir / "data")
    result = {"new_modules_learning_rate": rate, "seconds": round(seconds, 1), **opening(output)}
    result["final_train_loss"] = json.loads((output / "all_results.json").read_text())["train_loss"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--rates", nargs="+", default=["none", "1e-4", "3e-4", "1e-3", "3e-3"])
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("bench_training_gate.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        source = (ROOT / "training/configs/tiny-cpu-data.jsonl").read_text()
        # The data file's relative paths point into the repository: make them absolute for the copy.
        rows = [json.loads(line) for line in source.splitlines() if line.strip()]
        for row in rows:
            for key in ("video", "utterances"):
                if isinstance(row.get(key), str):
                    row[key] = str((ROOT / "training/configs" / row[key]).resolve())
        (workdir / "data-source.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        results = [run(rate, args.steps, workdir) for rate in args.rates]
    report = {
        "setting": f"tiny-random + tiny-cpu data, sft.py, AdamW lr 3e-5, warm-up 5 % + cosine, {args.steps} steps, batch 1",
        "results": results,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'new-modules lr':>15} {'|tanh(gate)|':>13} {'rel. diff':>10} {'train loss':>11}")
    for r in results:
        print(f"{r['new_modules_learning_rate']:>15} {r['gate_mean_abs_tanh']:>13.4f} {r['relative_difference']:>10.4f} "
              f"{r['final_train_loss']:>11.3f}")


if __name__ == "__main__":
    main()
