"""One GPU, `paper` shapes, random weights, bf16: everything the CPU here cannot measure, in one command.

    python benchmarks/bench_device.py                     # about 4 minutes on one H100 (budget: under 8)
    python benchmarks/bench_device.py --preset tiny-random --device cpu --output /tmp/dry.json   # a dry run

1. The visual front end (ViT-g, local clue attention, image Q-Former, video / utterance Q-Formers) of the full
   model against its ablations at T = 8, 32, 96 frames and U = 0, 4, 16 utterances: median time of
   `get_video_features` and peak GPU memory. Target: full at most 1.25x the baseline at equal T.
2. A training step (LoRA r=32 on the LLM, the paper's trained modules in float32, bf16 autocast, AdamW) at batch
   1 with 8 and 32 frames, with and without gradient checkpointing: median step time and peak GPU memory.
   Target: a step at 8 frames fits in 24 GB.
3. Greedy generation at batch 1 and 16 (8 frames, 2 utterances, 8 audio clips, 64 new tokens forced):
   prefill time and decoding tokens per second.

Writes the results (with the card's name) to ``benchmarks/device_results.json``; ``python -m benchmarks``
puts them in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is a package of the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_ablations import VARIANTS, ablated, make_inputs, video_inputs  # noqa: E402
from benchmarks.bench_ablations import build_model as build  # noqa: E402

RESULTS = Path(__file__).with_name("device_results.json")
COMMAND = "python benchmarks/bench_device.py"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def timed(function, device: str, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        function()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def config_for(preset: str, **overrides):
    from microemo.presets import paper_config, tiny_random_config

    return (paper_config if preset == "paper" else tiny_random_config)(**overrides)



def to_device(inputs: dict, device: str, dtype: torch.dtype) -> dict:
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}


# ---------------------------------------------------------------------------------------------- 1. front end


def front_end(args) -> list[dict]:
    from microemo.modeling_microemo import MicroEmoModel

    text = dict(model_type="llama", vocab_size=32002 if args.preset == "paper" else 1024,
                hidden_size=4096 if args.preset == "paper" else 64, intermediate_size=256, num_hidden_layers=1,
                num_attention_heads=32 if args.preset == "paper" else 4, num_key_value_heads=4 if args.preset != "paper" else 32,
                max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # fmt: skip
    config = config_for(args.preset, max_frames=96, max_utterances=16, text_config=text)
    model = build(MicroEmoModel, config, args.device, args.dtype).eval()
    rows = []
    for frames in (8, 32, 96):
        for utterances in (0, 4, 16):
            inputs = to_device(video_inputs(make_inputs(config, frames, utterances, with_text=False)), args.device,
                               args.dtype)  # fmt: skip
            for name, (local, windows) in VARIANTS.items():
                if not windows and utterances:
                    continue  # utterances are ignored without windows: the same work as U = 0

                def call(local=local, windows=windows, inputs=inputs) -> None:
                    with torch.inference_mode(), ablated(model, local, windows):
                        model.get_video_features(**inputs)

                reset_peak(args.device)
                times = timed(call, args.device, args.repeats)
                rows.append({"variant": name, "frames": frames, "utterances": utterances,
                             "median_s": statistics.median(times), "times_s": times,
                             "peak_gib": peak_gib(args.device)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    base = {r["frames"]: r["median_s"] for r in rows if r["variant"] == "w/o all"}
    for row in rows:
        row["over_baseline"] = row["median_s"] / base[row["frames"]]
    return rows


# ---------------------------------------------------------------------------------------------- 2. training


def training_batch(config, frames: int, utterances: int, answer_tokens: int, device: str) -> dict:
    inputs = make_inputs(config, frames, utterances)
    vocab = config.text_config.vocab_size
    answer = torch.randint(3, min(vocab, 30000) - 2, (1, answer_tokens))
    inputs["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, -answer_tokens:] = answer
    inputs["labels"] = labels
    return to_device(inputs, device, torch.float32)


def training_and_generation(args) -> tuple[list[dict], list[dict]]:
    from peft import get_peft_model

    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.training.loading import lora_config, upcast_trained_modules

    config = config_for(args.preset, max_frames=32)
    model = build(MicroEmoForConditionalGeneration, config, args.device, args.dtype)
    upcast_trained_modules(model)
    model = get_peft_model(model, lora_config(model, 32, 32, 0.1))
    autocast = torch.autocast(args.device.split(":")[0], dtype=args.dtype)
    training = []
    for frames in (8, 32):
        inputs = training_batch(config, frames, 2, args.answer_tokens, args.device)
        for checkpointing in (False, True):
            if checkpointing:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                model.enable_input_require_grads()
            else:
                model.gradient_checkpointing_disable()
            model.train()
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5)

            def step(inputs=inputs, optimizer=optimizer) -> None:
                with autocast:
                    loss = model(**inputs).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            reset_peak(args.device)
            times = timed(step, args.device, args.steps)
            training.append({"frames": frames, "gradient_checkpointing": checkpointing,
                             "step_s": statistics.median(times), "times_s": times, "peak_gib": peak_gib(args.device),
                             "sequence_length": inputs["input_ids"].shape[1]})  # fmt: skip
            print(json.dumps(training[-1]), flush=True)
            del optimizer
            gc.collect()
    model.gradient_checkpointing_disable()
    model.eval()
    generation = []
    base = model.get_base_model()
    for batch_size in (1, 16):
        one = make_inputs(config, 8, 2)
        inputs = {k: v.expand(batch_size, *v.shape[1:]).contiguous() for k, v in one.items()}
        inputs = to_device(inputs, args.device, args.dtype)

        def generate(tokens: int, inputs=inputs) -> None:
            with torch.inference_mode():
                base.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)

        reset_peak(args.device)
        prefill = timed(lambda: generate(1), args.device, 3)
        full = timed(lambda: generate(args.new_tokens), args.device, 2)
        decode_s = statistics.median(full) - statistics.median(prefill)
        generation.append({"batch_size": batch_size, "new_tokens": args.new_tokens,
                           "prefill_s": statistics.median(prefill), "generate_s": statistics.median(full),
                           "decode_tokens_per_s": batch_size * (args.new_tokens - 1) / decode_s if decode_s > 0 else None,
                           "tokens_per_s": batch_size * args.new_tokens / statistics.median(full),
                           "peak_gib": peak_gib(args.device)})  # fmt: skip
        print(json.dumps(generation[-1]), flush=True)
    return training, generation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["paper", "tiny-random"], default="paper")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed front-end calls per case")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per case (after one warm-up)")
    parser.add_argument("--answer-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_device.py needs a CUDA GPU (or --device cpu --preset tiny-random for a dry run)")
    args.dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    front = front_end(args)
    training, generation = training_and_generation(args)
    report = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{args.device} (dry run)",
        "preset": args.preset, "dtype": str(args.dtype).replace("torch.", ""), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": COMMAND,
        "seconds": time.perf_counter() - started,
        "front_end": front, "training": training, "generation": generation,
    }  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output} in {report['seconds']:.0f} s")
    return 0


def run(quick: bool):
    """The harness's device section: the recorded results of this script if it has run, else how to run it."""
    from benchmarks.harness import Ratio, Section, Table

    section = Section(name="device", title="GPU: paper shapes (device script)", command=COMMAND)
    if not RESULTS.is_file():
        section.summary = f"Not run: no GPU was lent to this session. Run `{COMMAND}` on one H100/H200."
        for name, target in (("paper front end on GPU, full / w/o all, T = 8, 32, 96", "<= 1.25x"),
                             ("paper training step at 8 frames, peak GPU memory", "<= 24 GB")):  # fmt: skip
            section.ratios.append(Ratio(name, None, target, None,
                                        f"Not measured: no GPU here. `{COMMAND}` measures it (about 4 minutes on one H100)."))  # fmt: skip
        return section
    report = json.loads(RESULTS.read_text())
    section.data = report
    section.command = f"{COMMAND}  (run on {report['device']}, {report['date']})"
    section.tables.append(Table(
        f"Front end, {report['preset']} shapes, {report['dtype']}, {report['device']}",
        ["variant", "T", "U", "median ms", "x baseline", "peak GiB"],
        [[r["variant"], str(r["frames"]), str(r["utterances"]), f"{r['median_s'] * 1e3:.1f}", f"{r['over_baseline']:.3f}",
          "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"] for r in report["front_end"]],
    ))  # fmt: skip
    section.tables.append(Table(
        "Training step, batch 1, LoRA r=32, bf16 autocast",
        ["frames", "gradient checkpointing", "step s", "peak GiB", "tokens"],
        [[str(r["frames"]), str(r["gradient_checkpointing"]), f"{r['step_s']:.3f}",
          "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}", str(r["sequence_length"])] for r in report["training"]],
    ))  # fmt: skip
    section.tables.append(Table(
        "Greedy generation, 8 frames, 2 utterances, 8 audio clips",
        ["batch", "new tokens", "prefill s", "decode tokens/s", "tokens/s overall"],
        [[str(r["batch_size"]), str(r["new_tokens"]), f"{r['prefill_s']:.3f}", f"{r['decode_tokens_per_s'] or 0:.0f}",
          f"{r['tokens_per_s']:.0f}"] for r in report["generation"]],
    ))  # fmt: skip
    worst = max((r for r in report["front_end"] if r["variant"] == "full"), key=lambda r: r["over_baseline"])
    met = worst["over_baseline"] <= 1.25
    section.ratios.append(Ratio(
        "paper front end on GPU, full / w/o all", worst["over_baseline"], "<= 1.25x", met,
        f"{'Met' if met else 'Not met'}: worst {worst['over_baseline']:.3f}x at T = {worst['frames']}, "
        f"U = {worst['utterances']} on {report['device']}.",
    ))  # fmt: skip
    step8 = [r for r in report["training"] if r["frames"] == 8 and r["peak_gib"] is not None]
    if step8:
        best = min(step8, key=lambda r: r["peak_gib"])
        fits = best["peak_gib"] * 2**30 / 1e9 <= 24
        section.ratios.append(Ratio(
            "paper training step at 8 frames, peak GPU memory", best["peak_gib"], "<= 24 GB", fits,
            f"{'Met' if fits else 'Not met'}: {best['peak_gib']:.1f} GiB with gradient checkpointing "
            f"{'on' if best['gradient_checkpointing'] else 'off'}.",
        ))  # fmt: skip
    section.summary = f"Recorded on {report['device']}: front end full / baseline worst {worst['over_baseline']:.3f}x."
    return section


if __name__ == "__main__":
    raise SystemExit(main())
