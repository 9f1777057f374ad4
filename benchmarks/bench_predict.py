"""Prediction throughput: videos per second of `microemo predict` (its `Predictor`) on the tiny-random model.

A tiny-random model folder is saved and loaded back as `microemo predict` loads it (remote code); the bundled
sample clips are linked under distinct names, and the Predictor runs at batch 1, 4 and 16 with one DataLoader
worker preparing the next batch while the current one generates (greedy, 32 new tokens). Where the time goes
comes from the rows' own timings: preparation (in the worker) and generation (in the main process), against
the wall clock; their sum over the wall clock says how much the overlap hid.

    python -m benchmarks --only predict [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import ROOT, Ratio, Section, Table

ASSETS = ROOT / "tests" / "assets"


def make_model_folder(folder: Path) -> Path:
    """Save the tiny-random model with its processor, as `microemo build-model --preset tiny-random` does."""
    from microemo.build import build_processor
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.presets import tiny_random_config

    torch.manual_seed(0)
    config = tiny_random_config()
    model = MicroEmoForConditionalGeneration(config)
    processor = build_processor(config, "tiny-random", None, None)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_videos(folder: Path, count: int) -> Path:
    """``count`` links to the sample clips (a face with speech, and speech without a face), alternating."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [ASSETS / "face_speech.mp4", ASSETS / "noface_speech.mp4"]
    for index in range(count):
        (folder / f"clip{index:03d}.mp4").symlink_to(sources[index % len(sources)])
    return folder


def measure(batch_sizes: tuple[int, ...], videos: int, repeats: int, new_tokens: int = 32) -> list[dict]:
    from microemo.predict import load_predictor

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_folder(Path(tmp) / "model")
        clips = make_videos(Path(tmp) / "clips", videos)
        for batch_size in batch_sizes:
            predictor = load_predictor(model_dir, device="cpu", batch_size=batch_size, max_new_tokens=new_tokens,
                                       num_workers=1)  # fmt: skip
            walls, prepare, generate = [], [], []
            for _ in range(repeats):
                start = time.perf_counter()
                rows = predictor.run([clips], progress=False)
                walls.append(time.perf_counter() - start)
                errors = [row["error"] for row in rows if row["error"]]
                if errors:
                    raise RuntimeError(f"predict failed on the benchmark clips: {errors[:2]}")
                prepare.append(sum(row["seconds"]["prepare"] for row in rows))
                generate.append(sum(row["seconds"]["generate"] for row in rows))
            wall = statistics.median(walls)
            results.append({
                "batch_size": batch_size, "videos": videos, "new_tokens": new_tokens, "wall_s": walls,
                "videos_per_s": videos / wall, "prepare_s": statistics.median(prepare),
                "generate_s": statistics.median(generate),
                "overlap_hidden_s": statistics.median(prepare) + statistics.median(generate) - wall,
            })  # fmt: skip
    return results


def run(quick: bool) -> Section:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    batch_sizes = (1, 4, 16)
    results = measure(batch_sizes, videos=16 if quick else 32, repeats=1 if quick else 2)
    section = Section(
        name="predict",
        title="Prediction throughput (`microemo predict`, tiny-random model, CPU)",
        command="python -m benchmarks --only predict" + (" --quick" if quick else ""),
        data={"results": results},
    )
    rows = []
    for r in results:
        wall = statistics.median(r["wall_s"])
        rows.append([
            str(r["batch_size"]), f"{r['videos_per_s']:.2f}", f"{wall:.1f}", f"{r['prepare_s']:.1f}",
            f"{r['generate_s']:.1f}", f"{max(r['overlap_hidden_s'], 0):.1f}",
            f"{100 * r['prepare_s'] / (r['prepare_s'] + r['generate_s']):.0f}%",
        ])  # fmt: skip
    section.tables.append(Table(
        f"{results[0]['videos']} videos (the two sample clips, 8 s each, alternating), greedy, "
        f"{results[0]['new_tokens']} new tokens, 1 DataLoader worker",
        ["batch", "videos/s", "wall s", "prepare s (worker)", "generate s (main)", "hidden by overlap s",
         "prepare share"],
        rows,
        note="Prepare = decode, face mesh, voice activity, audio per video in the worker; generate = the model's "
             "generate() per batch. At tiny size the model is nearly free, so preparation bounds the rate; with the "
             "7B model on a GPU the balance reverses (see the device script).",
    ))  # fmt: skip
    by_batch = {r["batch_size"]: r for r in results}
    gain = by_batch[16]["videos_per_s"] / by_batch[1]["videos_per_s"]
    share = by_batch[16]["prepare_s"] / (by_batch[16]["prepare_s"] + by_batch[16]["generate_s"])
    section.ratios.append(Ratio(
        "predict videos/s, batch 16 / batch 1 (informative)", gain, "none", None,
        f"Batching gives {gain:.2f}x on this CPU: preparation is {100 * share:.0f}% of the work at batch 16 and "
        "does not batch, so it bounds the rate; more DataLoader workers (on more cores) raise it.",
    ))  # fmt: skip
    section.summary = ", ".join(f"batch {r['batch_size']}: {r['videos_per_s']:.2f} videos/s" for r in results) + "."
    return section
