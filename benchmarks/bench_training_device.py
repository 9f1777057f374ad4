"""One GPU, the `paper` shapes with random weights: time of a training step and peak GPU memory, bf16, batch 1,
8 frames, with and without gradient checkpointing. Target: a step in under 24 GB.

    python benchmarks/bench_training_device.py [--steps 6] [--utterances 2] [--answer-tokens 256]

The model is built on the GPU in bf16 (no weights are read), the trained modules are cast to float32 as
`training/sft.py` does, LoRA (r=32) goes on the LLM's attention projections with the paper's trained set as
`modules_to_save`, and AdamW steps under bf16 autocast on a batch shaped as the processor builds it
(8 frames at 224 px, 7 clue regions, 2 utterances, 8 audio clips, prompt + answer). Prints and writes
bench_training_device.json beside this file with the GPU's name. Needs about 5 minutes on an H100.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch


def batch(config, utterances: int, prompt_tokens: int, answer_tokens: int, device: str) -> dict[str, torch.Tensor]:
    frames, regions, clips = 8, 7, 8
    placeholders = [config.video_token_id] * config.num_video_tokens(utterances) + [config.audio_token_id] * config.num_audio_query_tokens
    text = torch.randint(100, 30000, (prompt_tokens + answer_tokens,)).tolist()
    ids = torch.tensor([[1, *placeholders, *text]], device=device)
    labels = ids.clone()
    labels[:, : ids.shape[1] - answer_tokens] = -100
    size, patches = config.vision_config.image_size, config.num_patches
    clue = torch.zeros(1, frames, regions, patches, dtype=torch.bool, device=device)
    clue[..., 40:80] = True
    utt = torch.zeros(1, utterances, frames, dtype=torch.bool, device=device)
    for u in range(utterances):
        utt[0, u, u * frames // utterances : (u + 1) * frames // utterances] = True
    return {
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
        "pixel_values": torch.randn(1, frames, 3, size, size, device=device),
        "frame_mask": torch.ones(1, frames, dtype=torch.bool, device=device),
        "qformer_input_ids": torch.randint(1000, 2000, (1, frames, 12), device=device),
        "qformer_attention_mask": torch.ones(1, frames, 12, dtype=torch.long, device=device),
        "clue_masks": clue, "utterance_frame_mask": utt,
        "audio_values": torch.randn(1, clips, 1, 128, 204, device=device),
        "audio_clip_mask": torch.ones(1, clips, dtype=torch.bool, device=device),
    }  # fmt: skip


def measure(checkpointing: bool, args) -> dict[str, float]:
    from peft import get_peft_model

    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.presets import paper_config
    from microemo.training.loading import lora_config, upcast_trained_modules

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    config = paper_config()
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        model = MicroEmoForConditionalGeneration(config)
        torch.set_default_dtype(torch.float32)
    upcast_trained_modules(model)
    model = get_peft_model(model, lora_config(model, 32, 32, 0.1))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5)
    inputs = batch(config, args.utterances, args.prompt_tokens, args.answer_tokens, "cuda")
    times = []
    for _step in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {
        "gradient_checkpointing": checkpointing,
        "step_seconds_median": sorted(times[1:])[len(times[1:]) // 2],  # the first step warms up kernels
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
        "trainable_parameters": trainable,
        "sequence_length": inputs["input_ids"].shape[1],
        "loss": float(loss),
    }
    del model, optimizer, inputs, loss
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--utterances", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--answer-tokens", type=int, default=256)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("bench_training_device.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_training_device.py needs a CUDA GPU")
    results = []
    for checkpointing in (False, True):
        results.append(measure(checkpointing, args))
        print(json.dumps(results[-1]), flush=True)
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "setting": "paper preset, random weights, bf16 autocast, batch 1, 8 frames, LoRA r=32", "results": results}  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
