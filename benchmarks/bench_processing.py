"""Processing speed on this machine: decoding, face mesh, clue-mask building, and a cached second pass.

    python benchmarks/bench_processing.py [--seconds 60] [--repeats 5] [--output benchmarks/bench_processing_results.md]

Builds a longer test video from the committed sample (the face clip looped to ``--seconds`` at 25 fps,
upscaled to 480 x 576), then reports medians over ``--repeats`` runs:
- decode: every frame of the long video (decoder throughput), and sampling T = 8 frames from it by
  sequential decoding and by seeking;
- face mesh: mediapipe's legacy face mesh on sampled frames (frames per second);
- clue masks: rasterising 5 regions onto the 16 x 16 patch grid (frames per second);
- processor: a full first pass on the long video with an empty landmark cache, and a second pass that
  reads the cache (the speed-up ratio).
No wall-clock time is asserted anywhere; this is a report.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "assets" / "face_speech.mp4"


def timed(function, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_long_video(path: Path, seconds: float) -> int:
    import av
    from PIL import Image

    from microemo.processing.video_io import decode_video

    base = decode_video(SAMPLE, num_frames=205).frames
    frames = [np.asarray(Image.fromarray(f).resize((480, 576), Image.BILINEAR)) for f in base]
    count = int(seconds * 25)
    with av.open(str(SAMPLE)) as source:
        audio = [f.to_ndarray() for f in source.decode(audio=0)]
    waveform = np.concatenate(audio, axis=1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "veryfast", "g": "50"})
        stream.width, stream.height, stream.pix_fmt = 480, 576, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        audio_stream = container.add_stream("aac", rate=16_000, layout="mono")
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        total = int(seconds * 16_000)
        looped = np.resize(waveform[0], total).astype(np.float32)
        for start in range(0, total, 1024):
            piece = av.AudioFrame.from_ndarray(looped[None, start : start + 1024], format="fltp", layout="mono")
            piece.sample_rate = 16_000
            piece.pts = start
            container.mux(audio_stream.encode(piece))
        container.mux(audio_stream.encode())
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "bench_processing_results.md")
    args = parser.parse_args(argv)

    import av
    import torch

    from microemo.presets import tiny_random_config
    from microemo.processing.face_mesh import LegacyFaceMesh, detect_landmarks
    from microemo.processing.face_regions import rasterize_clue_masks
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
    from microemo.processing.video_io import decode_video

    torch.set_num_threads(1)
    rows: list[tuple[str, str, str]] = []
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        long_video = Path(tmp) / "long.mp4"
        count = make_long_video(long_video, args.seconds)
        size_mb = long_video.stat().st_size / 1e6

        def decode_all() -> int:
            with av.open(str(long_video)) as container:
                return sum(1 for _ in container.decode(video=0))

        seconds, _ = timed(decode_all, args.repeats)
        results["decode_all_fps"] = count / seconds
        rows.append(("decode every frame (480x576 H.264)", f"{count / seconds:.0f} frames/s", f"{seconds:.2f} s for {count}"))

        seconds, _ = timed(lambda: decode_video(long_video, 8, seek_gap=1e9), args.repeats)
        results["sample8_sequential_s"] = seconds
        rows.append(("sample T=8, sequential decode", f"{seconds:.2f} s per video", f"{args.seconds:.0f} s video"))
        seconds_seek, video = timed(lambda: decode_video(long_video, 8, seek_gap=0.0), args.repeats)
        results["sample8_seek_s"] = seconds_seek
        rows.append(("sample T=8, seeking", f"{seconds_seek:.2f} s per video", f"x{seconds / seconds_seek:.1f} vs sequential"))
        seconds_auto, _ = timed(lambda: decode_video(long_video, 8), args.repeats)
        results["sample8_default_s"] = seconds_auto
        rows.append(("sample T=8, default (keyframe-interval rule)", f"{seconds_auto:.2f} s per video", "keyframe every 2 s"))

        mesh = LegacyFaceMesh()
        frames = decode_video(long_video, 32).frames
        seconds, (landmarks, found) = timed(lambda: detect_landmarks(frames, mesh), args.repeats)
        results["face_mesh_fps"] = len(frames) / seconds
        rows.append(("face mesh (legacy, 480x576)", f"{len(frames) / seconds:.0f} frames/s", f"{1000 * seconds / len(frames):.1f} ms/frame"))
        mesh.close()

        seconds, _ = timed(lambda: rasterize_clue_masks(landmarks, found, 224, 14), args.repeats)
        results["clue_mask_fps"] = len(frames) / seconds
        rows.append(("clue masks (5 regions, 16x16 grid)", f"{len(frames) / seconds:.0f} frames/s", f"{1000 * seconds / len(frames):.2f} ms/frame"))

        cache = Path(tmp) / "cache"
        processor = MicroEmoProcessor.from_model_config(
            tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), cache_dir=str(cache)
        )
        firsts, seconds_cached = [], []
        for _ in range(args.repeats):
            for entry in cache.rglob("*.npz"):
                entry.unlink()
            start = time.perf_counter()
            processor(videos=long_video, num_frames=16)
            firsts.append(time.perf_counter() - start)
            start = time.perf_counter()
            processor(videos=long_video, num_frames=16)
            seconds_cached.append(time.perf_counter() - start)
        first, second = statistics.median(firsts), statistics.median(seconds_cached)
        results["processor_first_s"], results["processor_cached_s"] = first, second
        results["cache_speedup"] = first / second
        rows.append(("processor, T=16, empty cache", f"{first:.2f} s per video", "decode + mesh + audio + VAD + text"))
        rows.append(("processor, T=16, cached landmarks", f"{second:.2f} s per video", f"x{first / second:.2f} faster"))

        # The same, isolating the stage the cache removes.
        frames16 = decode_video(long_video, 16).frames
        mesh = LegacyFaceMesh()
        mesh_seconds, _ = timed(lambda: detect_landmarks(frames16, mesh), args.repeats)
        mesh.close()
        rows.append(("  of which face mesh (16 frames)", f"{mesh_seconds:.2f} s", "skipped on a cache hit"))

    header = (
        f"# bench_processing results\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, Python {platform.python_version()}; "
        f"shared CPU (numbers are medians of {args.repeats} runs). Long video: {args.seconds:.0f} s, 25 fps, 480x576, "
        f"{size_mb:.1f} MB.\n\n| stage | speed | note |\n|---|---|---|\n"
    )
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    text = header + table + "\n\n```json\n" + json.dumps(results, indent=2) + "\n```\n"
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
