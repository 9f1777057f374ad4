"""Model-side timings on this machine's CPU: median latencies and ratios, never asserted in tests.

1. Utterance windows: the paper-size utterance Q-Former (2 layers, width 768, 8 frames x 32 tokens) over U
   windows, as one batched call (what MicroEmoModel does) versus one call per window (a Python loop).
2. The tiny-random MicroEmo end to end: one forward on a 2-sample batch, and greedy `generate` with and
   without the KV cache.

Run: `.venv/bin/python benchmarks/bench_model.py [--repeats 15]`; results are written to
`benchmarks/bench_model.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import paper_config, tiny_random_config


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def run_windows(qformer, queries, states, masks, windows: int, batched: bool) -> None:
    if batched:
        qformer(query_embeds=queries.expand(windows, -1, -1), encoder_hidden_states=states, encoder_attention_mask=masks)
        return
    for k in range(windows):
        qformer(query_embeds=queries, encoder_hidden_states=states[k : k + 1], encoder_attention_mask=masks[k : k + 1])


def bench_utterance_windows(repeats: int) -> list[dict]:
    config = paper_config()
    qformer = Blip2QFormerModel(config.video_qformer_config).eval()
    queries = torch.randn(1, config.num_video_query_tokens, 768)
    frames, tokens_per_frame = 8, config.num_query_tokens
    rows = []
    for windows in (1, 4, 8):
        states = torch.randn(windows, frames * tokens_per_frame, 768)
        masks = torch.zeros(windows, frames * tokens_per_frame, dtype=torch.long)
        for k in range(windows):
            masks[k, k * tokens_per_frame : (k + 2) * tokens_per_frame] = 1

        batched = partial(run_windows, qformer, queries, states, masks, windows, batched=True)
        looped = partial(run_windows, qformer, queries, states, masks, windows, batched=False)
        b, loop = median_seconds(batched, repeats), median_seconds(looped, repeats)
        rows.append({"windows": windows, "batched_ms": b * 1e3, "looped_ms": loop * 1e3, "loop_over_batched": loop / b})
    return rows


def bench_tiny_model(repeats: int) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("conftest", Path(__file__).parents[1] / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(tiny_random_config()).eval()
    batch = conftest.build_batch(model.config, frames=[8, 6], utterances=[3, 1], audio_clips=[8, 0])

    def forward():
        with torch.no_grad():
            model(**batch)

    def generate(use_cache: bool):
        return lambda: model.generate(**batch, max_new_tokens=32, do_sample=False, use_cache=use_cache)

    cached, uncached = median_seconds(generate(True), repeats), median_seconds(generate(False), repeats)
    return {
        "forward_ms": median_seconds(forward, repeats) * 1e3,
        "generate32_cached_ms": cached * 1e3,
        "generate32_uncached_ms": uncached * 1e3,
        "uncached_over_cached": uncached / cached,
    }


def run(quick: bool):
    """The harness's section: batched utterance windows against a loop, and the KV cache (tiny model)."""
    from benchmarks.harness import Ratio, Section, Table

    repeats = 5 if quick else 15
    windows = bench_utterance_windows(repeats)
    tiny = bench_tiny_model(repeats)
    section = Section(
        name="utterance_windows", title="Utterance windows batched, and the KV cache",
        command="python -m benchmarks --only utterance_windows; python benchmarks/bench_model.py",
        data={"utterance_windows": windows, "tiny_model": tiny, "repeats": repeats},
    )  # fmt: skip
    section.tables.append(Table(
        "Paper-size utterance Q-Former (2 layers, width 768, 8 frames x 32 tokens), float32, CPU",
        ["windows", "one batched call ms", "a loop over windows ms", "loop / batched"],
        [[str(r["windows"]), f"{r['batched_ms']:.1f}", f"{r['looped_ms']:.1f}", f"{r['loop_over_batched']:.2f}"]
         for r in windows],
    ))  # fmt: skip
    section.tables.append(Table(
        "Tiny-random MicroEmo, 2 samples", ["forward ms", "generate 32 tokens, cache ms", "without cache ms", "ratio"],
        [[f"{tiny['forward_ms']:.1f}", f"{tiny['generate32_cached_ms']:.0f}", f"{tiny['generate32_uncached_ms']:.0f}",
          f"{tiny['uncached_over_cached']:.1f}"]],
    ))  # fmt: skip
    eight = windows[-1]["loop_over_batched"]
    section.ratios.append(Ratio(
        "8 utterance windows, loop / one batched call (informative)", eight, "none", None,
        f"The batched call is {eight:.2f}x faster than a loop over 8 windows, which is why the model runs them as one.",
    ))  # fmt: skip
    section.summary = f"8 windows batched {eight:.2f}x faster than looped; KV cache {tiny['uncached_over_cached']:.1f}x."
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU",
        "torch": torch.__version__,
        "repeats": args.repeats,
        "utterance_windows": bench_utterance_windows(args.repeats),
        "tiny_model": bench_tiny_model(args.repeats),
    }
    print(f"machine: {results['machine']}")
    print("utterance Q-Former (paper size), median ms:")
    for row in results["utterance_windows"]:
        print(f"  {row['windows']} windows: batched {row['batched_ms']:.1f}, looped {row['looped_ms']:.1f} "
              f"(loop / batched = {row['loop_over_batched']:.2f}x)")  # fmt: skip
    tiny = results["tiny_model"]
    print(f"tiny-random MicroEmo, 2 samples: forward {tiny['forward_ms']:.1f} ms; generate 32 tokens "
          f"{tiny['generate32_cached_ms']:.0f} ms with cache, {tiny['generate32_uncached_ms']:.0f} ms without "
          f"({tiny['uncached_over_cached']:.2f}x)")  # fmt: skip
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
