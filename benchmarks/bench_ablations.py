"""What MicroEmo's two new modules cost: the full model against its own ablations, same inputs, same process.

Variants (the paper's Table 2 rows, as config switches):

* ``full``: local clue attention + utterance-aware video Q-Former;
* ``w/o utterance-aware V-QF``: ``use_utterance_windows=False`` (only the global video window);
* ``w/o global-local AVE``: ``use_local_clue_attention=False`` (no local pass);
* ``w/o all``: both off, the TimeChat-style baseline.

Two measurements:

1. Tiny-random model (every architecture at test size) at T = 8, 32, 96 frames and U = 0, 4, 16 utterances:
   forward time of the whole model (encoders, Q-Formers, LLM) and of the visual front end, and the peak
   resident-memory growth of one forward. Each ablation is built from its own config and given the full
   model's weights for the parts it shares.
2. The visual front end (ViT-g + local clue attention + image Q-Former + video / utterance Q-Formers, i.e.
   ``get_video_features``) at ``paper`` shapes, random weights, bf16, ``torch.inference_mode``, on this CPU at
   T = 8. The 1B-parameter ViT-g is built once; the ablations switch the new modules off on that same model
   (:func:`ablated`), so every variant runs the very same ViT weights on the very same frames. Timed end to end,
   and per stage with the ViT output held fixed (the part the variants differ in), which is far less noisy.

Target (issue 11): the full front end at most 1.25x the baseline's at equal T on ``paper`` shapes.

    python -m benchmarks --only ablations [--quick]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import SimpleNamespace

import torch
from torch import nn

from benchmarks.harness import (
    Ratio,
    Section,
    Table,
    Timing,
    fmt,
    peak_rss_during,
    time_calls,
    time_interleaved,
)

VARIANTS = {
    "full": (True, True),
    "w/o utterance-aware V-QF": (True, False),
    "w/o global-local AVE": (False, True),
    "w/o all": (False, False),
}
TARGET = 1.25


@contextlib.contextmanager
def ablated(model: nn.Module, use_local_clue_attention: bool, use_utterance_windows: bool) -> Iterator[nn.Module]:
    """``model`` (a ``MicroEmoModel``) behaving as the ablation config would: the switched-off modules are
    removed for the duration (and the config says so), then put back. Outputs equal those of a model built
    with the ablation's config and the same weights (``tests/model/test_bench_ablations.py``)."""
    saved = {
        "local_clue_attention": model.local_clue_attention,
        "utterance_qformer": model.utterance_qformer,
        "utterance_query_tokens": model.utterance_query_tokens,
    }
    flags = (model.config.use_local_clue_attention, model.config.use_utterance_windows)
    try:
        if not use_local_clue_attention:
            model.local_clue_attention = None
        if not use_utterance_windows:
            model.utterance_qformer = None
            model.utterance_query_tokens = None
        model.config.use_local_clue_attention = use_local_clue_attention and flags[0]
        model.config.use_utterance_windows = use_utterance_windows and flags[1]
        yield model
    finally:
        for name, module in saved.items():
            setattr(model, name, module)
        model.config.use_local_clue_attention, model.config.use_utterance_windows = flags


class _FixedVision(nn.Module):
    """Stands in for the ViT and returns its output computed once: times the rest of the front end."""

    def __init__(self, last_hidden_state: torch.Tensor):
        super().__init__()
        self.last_hidden_state = last_hidden_state

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.last_hidden_state)


def make_inputs(config, frames: int, utterances: int, *, clips: int = 8, regions: int = 7, seed: int = 0,
                dtype: torch.dtype = torch.float32, with_text: bool = True) -> dict[str, torch.Tensor]:  # fmt: skip
    """One sample shaped as the processor builds it: T frames all with a face (the local pass runs on every
    frame: its worst case), U utterances splitting the frames evenly (each at least its nearest frame), C audio
    clips, and, with ``with_text``, ``input_ids`` with the placeholders expanded for ``config``."""
    generator = torch.Generator().manual_seed(seed)
    size, patches = config.vision_config.image_size, config.num_patches
    side = int(patches**0.5)
    clue = torch.zeros(1, frames, regions, side, side, dtype=torch.bool)
    for r in range(regions):  # face-like blocks in the middle of the grid, about a third of the patches
        row = side // 4 + (r * side // 2) // regions
        clue[:, :, r, row : row + max(side // 8, 1), side // 4 : 3 * side // 4] = True
    utterance = torch.zeros(1, utterances, frames, dtype=torch.bool)
    for u in range(utterances):
        start = u * frames // utterances
        utterance[0, u, start : max((u + 1) * frames // utterances, start + 1)] = True
    text_length = 12
    inputs = {
        "pixel_values": torch.randn(1, frames, 3, size, size, generator=generator).to(dtype),
        "frame_mask": torch.ones(1, frames, dtype=torch.bool),
        "qformer_input_ids": torch.randint(5, min(config.qformer_config.vocab_size, 2000), (1, frames, text_length),
                                           generator=generator),  # fmt: skip
        "qformer_attention_mask": torch.ones(1, frames, text_length, dtype=torch.long),
        "clue_masks": clue.flatten(3),
        "utterance_frame_mask": utterance,
    }
    if with_text:
        audio = config.audio_config
        inputs["audio_values"] = torch.randn(1, clips, 1, audio.num_mel_bins, audio.target_length, generator=generator)
        inputs["audio_clip_mask"] = torch.ones(1, clips, dtype=torch.bool)
        ids = [1, *[config.video_token_id] * config.num_video_tokens(utterances),
               *[config.audio_token_id] * config.num_audio_query_tokens, *range(10, 42)]  # fmt: skip
        inputs["input_ids"] = torch.tensor([ids])
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return inputs


def video_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = ("pixel_values", "frame_mask", "qformer_input_ids", "qformer_attention_mask", "clue_masks",
             "utterance_frame_mask")  # fmt: skip
    return {name: inputs[name] for name in names}


# ---------------------------------------------------------------------------------------------- tiny


def build_tiny_variants(max_frames: int = 96, max_utterances: int = 16) -> dict[str, nn.Module]:
    """The four variants of the tiny-random model, built from their configs; the ablations get the full model's
    weights for every part they share (the rest of their weights does not exist)."""
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.presets import tiny_random_config

    models = {}
    reference = None
    for name, (local, windows) in VARIANTS.items():
        torch.manual_seed(0)
        config = tiny_random_config(max_frames=max_frames, max_utterances=max_utterances,
                                    use_local_clue_attention=local, use_utterance_windows=windows)  # fmt: skip
        model = MicroEmoForConditionalGeneration(config).eval()
        if reference is None:
            reference = model.state_dict()
        else:
            missing, _ = model.load_state_dict(reference, strict=False)
            if missing:
                raise RuntimeError(f"{name}: parameters the full model lacks: {missing[:5]}")
        models[name] = model
    return models


def bench_tiny(quick: bool) -> dict:
    frame_counts = (8, 32) if quick else (8, 32, 96)
    utterance_counts = (0, 4, 16)
    repeats = 5 if quick else 9
    # One thread: at test size the kernels are tiny, and on a shared machine a second thread mostly waits for
    # a core, which made single calls swing by 10x in trials.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = build_tiny_variants()
    rows = []
    for frames in frame_counts:
        for utterances in utterance_counts:
            inputs = {name: make_inputs(model.config, frames, utterances) for name, model in models.items()}

            def forward(name: str, inputs: dict = inputs) -> None:
                with torch.inference_mode():
                    models[name](**inputs[name])

            def front(name: str, inputs: dict = inputs) -> None:
                with torch.inference_mode():
                    models[name].model.get_video_features(**video_inputs(inputs[name]))

            whole = time_interleaved({n: (lambda n=n: forward(n)) for n in models}, repeats)
            video = time_interleaved({n: (lambda n=n: front(n)) for n in models}, repeats)
            for name in models:
                rows.append({
                    "variant": name, "frames": frames, "utterances": utterances,
                    "forward": whole[name].to_dict(), "front_end": video[name].to_dict(),
                    "peak_rss_mib": peak_rss_during(lambda n=name: forward(n)),
                    "video_tokens": models[name].config.num_video_tokens(utterances),
                })  # fmt: skip
    base = {(r["frames"], r["utterances"]): r for r in rows if r["variant"] == "w/o all"}
    for row in rows:
        ref = base[(row["frames"], row["utterances"])]
        row["forward_over_baseline"] = row["forward"]["median_s"] / ref["forward"]["median_s"]
        row["front_end_over_baseline"] = row["front_end"]["median_s"] / ref["front_end"]["median_s"]
    torch.set_num_threads(threads)
    return {"repeats": repeats, "threads": 1, "rows": rows}


# ---------------------------------------------------------------------------------------------- paper


def build_paper_front_end(dtype: torch.dtype = torch.bfloat16, max_frames: int = 32, device: str = "cpu"):
    """``MicroEmoModel`` with the ``paper`` preset's visual front end and audio branch (random weights) and a
    one-layer stand-in for the 7B LLM (the front end only needs its width, 4096, for the projection)."""
    from microemo.modeling_microemo import MicroEmoModel
    from microemo.presets import paper_config

    config = paper_config(
        max_frames=max_frames,
        text_config=dict(model_type="llama", vocab_size=32002, hidden_size=4096, intermediate_size=256,
                         num_hidden_layers=1, num_attention_heads=32, num_key_value_heads=32,
                         max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    )  # fmt: skip
    return build_model(MicroEmoModel, config, device, dtype).eval()


def build_model(model_class, config, device: str, dtype: torch.dtype):
    """``model_class(config)`` made directly on ``device`` in ``dtype`` (seeded), without a float32 copy first."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            return model_class(config)
    finally:
        torch.set_default_dtype(default)


def bench_paper_front_end(quick: bool, frames: int = 8, utterances: tuple[int, ...] = (0, 4, 16)) -> dict:
    """The paper-shape front end on this CPU: stage times with the ViT output held fixed for every variant, and
    (full mode) end-to-end times of every variant interleaved."""
    dtype = torch.bfloat16
    model = build_paper_front_end(dtype)
    cases = {name: make_inputs(model.config, frames, 4, dtype=dtype, with_text=False) for name in VARIANTS}
    pixel = cases["full"]["pixel_values"][0]
    result: dict = {"dtype": "bfloat16", "frames": frames, "threads": torch.get_num_threads()}

    # The ViT once per repeat (the first also warms up in full mode); its last output feeds the stage timings.
    samples, image_embeds = [], None
    with torch.inference_mode():
        for index in range(1 if quick else 3):
            start = time.perf_counter()
            image_embeds = model.vision_model(pixel_values=pixel).last_hidden_state
            if quick or index > 0:
                samples.append(time.perf_counter() - start)
    vit = Timing(samples)
    result["vit"] = vit.to_dict()

    # Stage times after the ViT: what the variants differ in.
    real_vision = model.vision_model
    rest: dict[str, dict] = {}
    try:
        model.vision_model = _FixedVision(image_embeds)
        for u in utterances:
            functions = {}
            for name, (local, windows) in VARIANTS.items():
                if not windows and u != utterances[0]:
                    continue  # utterances are ignored without windows: the same work as at U = 0
                inputs = video_inputs(make_inputs(model.config, frames, u, dtype=dtype, with_text=False))

                def call(local=local, windows=windows, inputs=inputs) -> None:
                    with torch.inference_mode(), ablated(model, local, windows):
                        model.get_video_features(**inputs)

                functions[name] = call
            timings = time_interleaved(functions, repeats=2 if quick else 5)
            for name, timing in timings.items():
                rest[f"{name}|U={u}"] = timing.to_dict()
    finally:
        model.vision_model = real_vision
    result["after_vit"] = rest

    # Components of the full model's extra work, alone.
    with torch.inference_mode():
        patches = image_embeds[:, 1:]
        masks = cases["full"]["clue_masks"][0]
        local_attention = time_calls(lambda: model.local_clue_attention(patches, masks), repeats=3 if quick else 5)
    result["local_clue_attention"] = local_attention.to_dict()

    if not quick:
        functions = {}
        for name, (local, windows) in VARIANTS.items():
            inputs = video_inputs(cases[name])

            def call(local=local, windows=windows, inputs=inputs) -> None:
                with torch.inference_mode(), ablated(model, local, windows):
                    model.get_video_features(**inputs)

            functions[name] = call
        end_to_end = time_interleaved(functions, repeats=2, warmup=0)
        result["end_to_end_U4"] = {name: t.to_dict() for name, t in end_to_end.items()}
        result["peak_rss_mib_full_U4"] = peak_rss_during(functions["full"])
        result["peak_rss_mib_baseline"] = peak_rss_during(functions["w/o all"])

    vit_s = result["vit"]["median_s"]
    composed = {}
    for key, timing in rest.items():
        composed[key] = vit_s + timing["median_s"]
    base = composed[f"w/o all|U={utterances[0]}"]
    result["composed_over_baseline"] = {key: value / base for key, value in composed.items()}
    if "end_to_end_U4" in result:
        e2e = result["end_to_end_U4"]
        result["end_to_end_full_over_baseline"] = e2e["full"]["median_s"] / e2e["w/o all"]["median_s"]
    return result


# ---------------------------------------------------------------------------------------------- report


def run(quick: bool) -> Section:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tiny = bench_tiny(quick)
    paper = bench_paper_front_end(quick)
    section = Section(
        name="ablations",
        title="Model cost against its own ablations",
        command="python -m benchmarks --only ablations" + (" --quick" if quick else ""),
        data={"tiny": tiny, "paper_front_end_cpu": paper},
    )

    rows = []
    for row in tiny["rows"]:
        rows.append([
            row["variant"], str(row["frames"]), str(row["utterances"]), str(row["video_tokens"]),
            Timing([row["forward"]["median_s"]]).describe().split(" (")[0] + f" (IQR {row['forward']['iqr_s'] * 1e3:.2g})",
            f"{row['forward_over_baseline']:.2f}",
            f"{row['front_end']['median_s'] * 1e3:.3g} ms", f"{row['front_end_over_baseline']:.2f}",
            fmt(row["peak_rss_mib"]),
        ])  # fmt: skip
    section.tables.append(Table(
        "Tiny-random model, batch 1, every frame with a face, 8 audio clips (CPU, float32)",
        ["variant", "T", "U", "video tokens", "forward median", "x baseline", "front end", "x baseline",
         "peak RSS growth MiB"],
        rows,
        note=f"Median of {tiny['repeats']} interleaved repeats after a warm-up; IQR in ms. The tiny model's LLM is "
             "2 layers, so the video token count (32 per window) matters more here than it will at 7B.",
    ))  # fmt: skip

    vit = paper["vit"]["median_s"]
    prow = [["ViT-g (all variants, shared)", "-", f"{vit:.2f} s", "-"]]
    for key, timing in paper["after_vit"].items():
        name, u = key.split("|")
        prow.append([name, u.split("=")[1], f"{timing['median_s'] * 1e3:.0f} ms (IQR {timing['iqr_s'] * 1e3:.0f})",
                     f"{paper['composed_over_baseline'][key]:.3f}"])  # fmt: skip
    prow.append(["local clue attention alone (8 frames)", "-",
                 f"{paper['local_clue_attention']['median_s'] * 1e3:.0f} ms", "-"])  # fmt: skip
    section.tables.append(Table(
        f"Visual front end at `paper` shapes on this CPU, T = {paper['frames']}, bf16, random weights, "
        f"{paper['threads']} threads: time after the ViT per variant, and (ViT + rest) / (ViT + baseline rest)",
        ["variant", "U", "after-ViT time", "front end x baseline"], prow,
        note="The ViT output is computed once and held fixed, so the rows differ only in the modules the variants "
             "switch; the ratio adds the ViT's own median back.",
    ))  # fmt: skip
    if "end_to_end_U4" in paper:
        erow = [[name, f"{t['median_s']:.2f} s", f"{t['min_s']:.2f}-{t['max_s']:.2f} s",
                 f"{t['median_s'] / paper['end_to_end_U4']['w/o all']['median_s']:.3f}"]
                for name, t in paper["end_to_end_U4"].items()]  # fmt: skip
        section.tables.append(Table(
            f"Visual front end at `paper` shapes end to end (ViT included), T = {paper['frames']}, U = 4, bf16, CPU",
            ["variant", "median", "range", "x baseline"], erow,
            note=f"Peak RSS growth of one forward: full {fmt(paper.get('peak_rss_mib_full_U4'))} MiB, baseline "
                 f"{fmt(paper.get('peak_rss_mib_baseline'))} MiB (weights excluded: they were resident before).",
        ))  # fmt: skip

    worst_key = max((k for k in paper["composed_over_baseline"] if k.startswith("full|")),
                    key=lambda k: paper["composed_over_baseline"][k])  # fmt: skip
    worst = paper["composed_over_baseline"][worst_key]
    at_u4 = paper["composed_over_baseline"]["full|U=4"]
    e2e = paper.get("end_to_end_full_over_baseline")
    share = (paper["after_vit"]["full|U=4"]["median_s"] - paper["after_vit"]["w/o all|U=0"]["median_s"]) / vit
    met = worst <= TARGET
    sentence = (
        f"Met: the full front end costs {at_u4:.3f}x the TimeChat-style baseline at T = {paper['frames']}, U = 4 "
        f"({worst:.3f}x at the worst U measured, {worst_key.split('|')[1]}"
        + (f"; {e2e:.3f}x timed end to end" if e2e else "")
        + f"). The ViT-g dominates ({vit:.1f} s of the front end); the local pass and the utterance windows add "
        f"{100 * share:.1f}% of it, because the local pass shares the image Q-Former call with the global one and "
        "all utterance windows run as one batched Q-Former call."
        if met else
        f"Not met: {worst:.3f}x at {worst_key}; see the stage table for the module to optimise."
    )
    section.ratios.append(Ratio("paper front end, full / w/o all, CPU, T=8", worst, f"<= {TARGET}x", met, sentence))

    tiny_rows = [r for r in tiny["rows"] if r["variant"] == "full"]
    worst_tiny = max(tiny_rows, key=lambda r: r["front_end_over_baseline"])
    section.ratios.append(Ratio(
        "tiny front end, full / w/o all (informative)", worst_tiny["front_end_over_baseline"], "none (test size)",
        None,
        f"At test size the ViT is negligible, so the extra Q-Former rows of the local pass and the utterance windows "
        f"show plainly: up to {worst_tiny['front_end_over_baseline']:.2f}x at T = {worst_tiny['frames']}, "
        f"U = {worst_tiny['utterances']}. This is not the target's setting (paper shapes), and no target applies.",
    ))  # fmt: skip
    section.summary = (
        f"Paper-shape visual front end on CPU, T = {paper['frames']}: full / baseline = {at_u4:.3f}x at U = 4 "
        f"(target <= {TARGET}x: {'met' if met else 'not met'})."
    )
    return section
