"""Per-utterance timeline: what sharing one encoding of the video among its utterances' questions saves.

For a video with U utterances, ``microemo predict --per-utterance`` asks U + 1 questions (the whole video, then
each utterance). Two ways to answer them in one batch, on the same prepared sample and the same prompts:
- copies: the batch holds U + 1 copies of the video and its sound, and ``generate`` encodes every copy;
- shared (``microemo/timeline.py``): the frames and sound are encoded once, the tokens written into every row.
Both give the same greedy tokens (tests/time/test_timeline.py); this measures the model time of each (the
inputs are built beforehand, outside the timing), on the tiny-random model and on a CPU-sized model with the
paper's input geometry (224 px frames on the 16 x 16 patch grid, 32 query tokens), at U = 2, 4 and 8.

    python -m benchmarks --only timeline [--quick]
"""

from __future__ import annotations

import torch

from benchmarks.harness import ROOT, Ratio, Section, Table, time_interleaved

ASSETS = ROOT / "tests" / "assets"


def paper_geometry_config():
    """The paper's input geometry (224 px, patch 14, 32 queries, 8 audio queries) with CPU-sized widths."""
    from microemo.presets import tiny_random_config

    return tiny_random_config(
        vision_config=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
                           image_size=224, patch_size=14, initializer_range=0.02),
        num_query_tokens=32, num_video_query_tokens=32, num_audio_query_tokens=8, max_utterances=16,
    )  # fmt: skip


def measure(config, name: str, utterance_counts: tuple[int, ...], repeats: int, new_tokens: int = 8) -> list[dict]:
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
    from microemo.timeline import generate_shared, shared_inputs, timeline_questions

    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(config).eval()
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    results = []
    for count in utterance_counts:
        # `count` equal utterances over the 8 s sample clip (with its speech).
        spans = [(0.5 + 7.0 * k / count, 0.5 + 7.0 * (k + 1) / count - 0.05, f"words {k}") for k in range(count)]
        sample = processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=spans)
        questions = timeline_questions(sample)
        shared = shared_inputs(processor, sample, questions)
        texts, _ = processor.render_conversations(
            [processor.emer_conversation(subtitle=sample.subtitle, question=q) for q in questions]
        )
        batch = processor.collate([sample] * len(questions), texts, return_tensors="pt")
        copies = {k: v for k, v in batch.items() if k in processor.model_input_names}

        def run_copies(copies=copies) -> None:
            with torch.no_grad():
                model.generate(**copies, max_new_tokens=new_tokens, do_sample=False)

        def run_shared(shared=shared) -> None:
            generate_shared(model, shared, new_tokens)

        timings = time_interleaved({"copies": run_copies, "shared": run_shared}, repeats)
        results.append({"model": name, "utterances": count, "rows": len(questions), "new_tokens": new_tokens,
                        "copies": timings["copies"].to_dict(), "shared": timings["shared"].to_dict(),
                        "saving": 1 - timings["shared"].median / timings["copies"].median,
                        "speedup": timings["copies"].median / timings["shared"].median})  # fmt: skip
    return results


def run(quick: bool) -> Section:
    from microemo.presets import tiny_random_config

    repeats = 2 if quick else 3
    results = measure(tiny_random_config(), "tiny-random (64 px, 8 queries)", (2, 4) if quick else (2, 4, 8), repeats)
    results += measure(paper_geometry_config(), "paper geometry, CPU widths (224 px, 32 queries)", (2, 4), repeats)
    section = Section(
        name="timeline",
        title="Per-utterance timeline: one shared encoding per video vs a copy per utterance (CPU)",
        command="python -m benchmarks --only timeline" + (" --quick" if quick else ""),
        data={"results": results},
    )
    rows = [[r["model"], str(r["utterances"]), str(r["rows"]), f"{r['copies']['median_s'] * 1e3:.0f}",
             f"{r['shared']['median_s'] * 1e3:.0f}", f"{100 * r['saving']:.0f}%", f"{r['speedup']:.2f}x"]
            for r in results]  # fmt: skip
    section.tables.append(Table(
        f"generate() of U + 1 questions (whole video + each utterance), greedy, {results[0]['new_tokens']} new "
        f"tokens, median of {repeats} (interleaved)",
        ["model", "U", "rows", "copies ms", "shared ms", "saving", "speedup"],
        rows,
        note="Both give identical tokens. The saving is the encoders' and Q-Formers' share of the work times U / "
             "(U + 1); at paper size the frozen EVA ViT-g (1B parameters on 8 frames) dominates the encoders even more.",
    ))  # fmt: skip
    best = max((r for r in results if r["model"].startswith("paper")), key=lambda r: r["utterances"])
    section.ratios.append(Ratio(
        f"copies / shared time, paper geometry, U = {best['utterances']}", best["speedup"], "> 1 (a saving)",
        best["speedup"] > 1,
        f"Sharing one encoding among {best['rows']} rows takes {100 * best['saving']:.0f}% off the model time.",
    ))  # fmt: skip
    section.summary = "; ".join(f"{r['model'].split(' (')[0]} U={r['utterances']}: {100 * r['saving']:.0f}% saved"
                                for r in results)  # fmt: skip
    return section
