"""Scale: silero-vad's two runtimes, the processor against its two chains' floors, predict at batch 16, and sharded
predict / prepare-data on 2 processes against 1.

    python -m benchmarks --only scale [--quick]

- VAD runtimes: silero-vad's ONNX model (onnxruntime) and its TorchScript model on the VAD benchmark's clips
  (bench_vad.py's espeak-ng recipe, every noise condition): whether the spans are identical, and the compute per
  second of audio of each (interleaved, one torch thread, as in the DataLoader workers).
- Chains: on bench_processing's 60 s clip, the video chain's floor (bare PyAV seek + convert, then bare MediaPipe
  in process) and the sound chain's floor (bare PyAV audio decode + resample, then the default VAD), against
  ``processor(videos=...)`` end to end; the target is at most 1.15x the larger floor.
- Predict: `microemo predict`'s Predictor at batch 16 on the bundled clips, as bench_predict measures it, with the
  defaults against the code before this work (TorchScript VAD, the chains in order, 1 worker), interleaved in one
  run (target >= 1.5x; the 3.88 videos/s recorded before came from a quieter machine).
- Sharding: `microemo predict --num-processes 2` and `prepare-data` under `accelerate launch` with 2 processes,
  against 1 process, wall clock from the command's start (process start-up and model loading included). On the
  2 shared cores of this machine this cannot show scaling; the ratios are recorded with the core count.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, Ratio, Section, Table

BEFORE_VIDEOS_PER_S = 3.88  # predict at batch 16 on this machine before this work (BENCHMARKS.md, predict section)


def measure_vad_runtimes(clips: int) -> dict:
    import torch

    from benchmarks.bench_vad import RATE, Speaker, conditions, make_clip, mix
    from microemo.processing import vad

    torch.set_num_threads(1)
    runtimes = ("onnx", "torchscript")
    for runtime in runtimes:
        vad.frame_scores(np.zeros(RATE, np.float32), RATE, "silero", runtime=runtime)  # load, first-call costs
    per_second: dict[str, list[float]] = {runtime: [] for runtime in runtimes}
    same = total = 0
    differing: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        speaker = Speaker(Path(scratch))
        for seed in range(clips):
            clip = make_clip(speaker, seed)
            for kind, snr in conditions():
                audio = mix(clip, kind, snr, speaker)
                spans = {}
                for runtime in runtimes:
                    start = time.perf_counter()
                    scores = vad.frame_scores(audio, RATE, "silero", runtime=runtime)
                    per_second[runtime].append((time.perf_counter() - start) / (audio.size / RATE))
                    spans[runtime] = vad.spans_from_scores(scores, duration=audio.size / RATE)
                total += 1
                if spans["onnx"] == spans["torchscript"]:
                    same += 1
                else:
                    differing.append(f"clip {seed} {kind} {snr}")
    medians = {runtime: statistics.median(values) for runtime, values in per_second.items()}
    return {"clips": clips, "conditions": total, "identical_spans": same, "differing": differing,
            "median_s_per_audio_s": medians, "onnx_speedup": medians["torchscript"] / medians["onnx"]}  # fmt: skip


def measure_chains(seconds: float, frames: int, repeats: int) -> dict:
    from benchmarks.bench_processing import bare_mediapipe, bare_pyav_audio, bare_pyav_frames, make_long_video
    from benchmarks.harness import time_interleaved
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
    from microemo.processing.vad import voice_activity
    from microemo.processing.video_io import decode_video

    processor = MicroEmoProcessor.from_model_config(
        tiny_random_config(max_frames=max(frames, 16)), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer()
    )
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        make_long_video(video, seconds)
        decoded = decode_video(video, frames)
        mesh = bare_mediapipe()

        def video_chain():
            for frame in bare_pyav_frames(video, decoded.timestamps):
                mesh.process(np.ascontiguousarray(frame))

        def sound_chain():
            voice_activity(bare_pyav_audio(video), 16_000, processor.utterance_source, duration=decoded.duration,
                           **processor.vad_options)  # fmt: skip

        timings = time_interleaved({
            "video chain floor (bare decode + bare face mesh)": video_chain,
            "sound chain floor (bare audio load + VAD)": sound_chain,
            "processor(videos=...) end to end (no cache)": lambda: processor(videos=str(video), num_frames=frames),
        }, repeats)  # fmt: skip
        mesh.close()
    medians = {name: timing.median for name, timing in timings.items()}
    video_floor, sound_floor, processor_s = medians.values()
    return {"video_seconds": seconds, "frames": frames, "timings": {k: t.to_dict() for k, t in timings.items()},
            "over_larger_floor": processor_s / max(video_floor, sound_floor),
            "over_floor_sum": processor_s / (video_floor + sound_floor)}  # fmt: skip


def _before(processor, before: bool) -> None:
    """Set the (remote-code) processor of a loaded predictor to the code before this work (TorchScript VAD, the
    chains in order) or back to the defaults; DataLoader workers fork after this and inherit it."""
    import importlib

    vad = importlib.import_module(type(processor).__module__.rsplit(".", 1)[0] + ".vad")
    if not hasattr(vad, "_default_runtime"):
        vad._default_runtime = vad.default_silero_runtime
    vad.default_silero_runtime = (lambda: "torchscript") if before else vad._default_runtime
    processor.overlap_stages = not before


def measure_predict(videos: int, repeats: int) -> dict:
    """Predict at batch 16: as before this work (1 worker, TorchScript VAD, the chains in order) and with the
    defaults now, interleaved on the same clips."""
    from benchmarks.bench_predict import make_model_folder, make_videos
    from microemo.predict import load_predictor
    from microemo.sharding import default_num_workers

    workers = default_num_workers("cpu")
    walls: dict[str, list[float]] = {"before": [], "now": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_folder(Path(tmp) / "model")
        clips = make_videos(Path(tmp) / "clips", videos)
        predictors = {
            "before": load_predictor(model_dir, device="cpu", batch_size=16, max_new_tokens=32, num_workers=1),
            "now": load_predictor(model_dir, device="cpu", batch_size=16, max_new_tokens=32, num_workers=workers),
        }
        for _ in range(repeats):
            for label, predictor in predictors.items():
                _before(predictor.processor, label == "before")
                start = time.perf_counter()
                rows = predictor.run([clips], progress=False)
                walls[label].append(time.perf_counter() - start)
                assert not any(row["error"] for row in rows), [row["error"] for row in rows if row["error"]]
            _before(predictors["before"].processor, False)
    rate = {label: videos / statistics.median(values) for label, values in walls.items()}
    return {"videos": videos, "num_workers": workers, "wall_s": walls, "videos_per_s": rate,
            "now_over_before": rate["now"] / rate["before"], "now_over_recorded": rate["now"] / BEFORE_VIDEOS_PER_S}  # fmt: skip


def _wall(command: list[str]) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command[:6])} ... failed: {result.stderr[-2000:]}")
    return time.perf_counter() - start


def measure_sharding(what: str, count: int, repeats: int) -> dict:
    """Wall clock of ``what`` ("predict" over ``count`` videos, or "prepare-data" over ``count`` rows) with 1 and with
    2 processes."""
    from benchmarks.bench_predict import make_model_folder, make_videos
    from microemo.sharding import launch_command

    runs: dict[str, list[float]] = {"1 process": [], "2 processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = make_model_folder(tmp / "model")
        if what == "predict":
            clips = make_videos(tmp / "clips", count)
            command = [sys.executable, "-m", "microemo.predict", str(clips), "--model", str(model_dir), "--batch-size",
                       "16", "--max-new-tokens", "32", "--no-progress", "--device", "cpu"]  # fmt: skip
            one = lambda out: _wall([*command, "--output", str(out)])  # noqa: E731
            two = lambda out: _wall([*command, "--output", str(out), "--num-processes", "2"])  # noqa: E731
        else:
            data = tmp / "rows.jsonl"
            sample = ROOT / "tests" / "assets" / "face_speech.mp4"
            data.write_text("".join(json.dumps({"name": f"clip{i:03d}", "video": str(sample), "answer": "calm"}) + "\n"
                                    for i in range(count)))  # fmt: skip
            command = ["prepare-data", "jsonl", str(data), "--processor", str(model_dir)]
            one = lambda out: _wall([sys.executable, "-m", "microemo.training.cli", *command, "--output", str(out)])  # noqa: E731
            two = lambda out: _wall(launch_command(2, "microemo.training.cli", [*command, "--output", str(out)]))  # noqa: E731
        for repeat in range(repeats):
            runs["1 process"].append(one(tmp / f"one-{repeat}"))
            runs["2 processes"].append(two(tmp / f"two-{repeat}"))
    medians = {label: statistics.median(values) for label, values in runs.items()}
    return {"what": what, "count": count, "runs_s": runs, "median_s": medians,
            "two_over_one": medians["1 process"] / medians["2 processes"]}  # fmt: skip


def _attempt(function, *args) -> dict:
    """``function(*args)``, or the error that stopped it (the section reports it instead of losing the others)."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - recorded in the report
        return {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:600]}"}


def run(quick: bool) -> Section:
    vad_result = measure_vad_runtimes(clips=2 if quick else 8)
    chains = measure_chains(seconds=60, frames=8, repeats=2 if quick else 5)
    predict = measure_predict(videos=16 if quick else 32, repeats=1 if quick else 2)
    counts = {"predict": 16 if quick else 32, "prepare-data": 6 if quick else 12}
    sharding = {"cores": len(os.sched_getaffinity(0)), "counts": counts,
                **{what: _attempt(measure_sharding, what, count, 1) for what, count in counts.items()}}  # fmt: skip
    section = Section(
        name="scale", title="Scale: VAD runtimes, overlapped chains, predict at batch 16, 2 processes against 1",
        command="python -m benchmarks --only scale" + (" --quick" if quick else ""),
        data={"vad_runtimes": vad_result, "chains": chains, "predict": predict, "sharding": sharding},
    )  # fmt: skip
    seconds = vad_result["median_s_per_audio_s"]
    section.tables.append(Table(
        f"silero-vad runtimes on the VAD benchmark's clips ({vad_result['clips']} clips x every noise condition)",
        ["runtime", "per audio second", "identical spans"],
        [[runtime, f"{value * 1e3:.2f} ms", f"{vad_result['identical_spans']}/{vad_result['conditions']}"]
         for runtime, value in seconds.items()],
        note="One torch thread (as in DataLoader and datasets.map workers); onnxruntime with one intra-op thread.",
    ))  # fmt: skip
    section.tables.append(Table(
        "processor on the 60 s clip against its two chains' floors (8 frames)",
        ["what", "median"],
        [[name, f"{timing['median_s'] * 1e3:.0f} ms ({timing['min_s'] * 1e3:.0f}-{timing['max_s'] * 1e3:.0f})"]
         for name, timing in chains["timings"].items()],
    ))  # fmt: skip
    section.tables.append(Table(
        f"2 processes against 1 ({sharding['cores']} cores, shared)", ["command", "1 process, wall s", "2 processes, wall s"],
        [[what, *(("error", "error") if "error" in result else
                  (f"{result['median_s']['1 process']:.1f}", f"{result['median_s']['2 processes']:.1f}"))]
         for what, result in ((w, sharding[w]) for w in ("predict", "prepare-data"))],
        note=f"predict: {counts['predict']} videos at batch 16; prepare-data: {counts['prepare-data']} rows. Wall clock of the whole command (start-up, model loading, "
             "the launcher's rendezvous, the merge).",
    ))  # fmt: skip
    identical = vad_result["identical_spans"] == vad_result["conditions"]
    section.ratios.append(Ratio(
        "silero-vad ONNX / TorchScript speed", vad_result["onnx_speedup"], "> 1 with identical spans",
        identical and vad_result["onnx_speedup"] > 1,
        f"onnxruntime runs the same model {vad_result['onnx_speedup']:.2f}x as fast; spans identical on "
        f"{vad_result['identical_spans']}/{vad_result['conditions']} clip conditions"
        + ("" if identical else f" (differing: {vad_result['differing'][:3]})") + ", so ONNX is the default.",
    ))  # fmt: skip
    over = chains["over_larger_floor"]
    section.ratios.append(Ratio(
        "processor(videos=...) / larger chain floor, 60 s clip", over, "<= 1.15", over <= 1.15,
        f"{over:.2f}x the larger chain's floor ({chains['over_floor_sum']:.2f}x their sum), with the frame chain "
        "(decode, face clues) overlapping the sound chain (processing/overlap.py; the sound chain starts from the "
        "probe). Collation (pixel values, audio fbank) comes after both, and on 2 cores the face mesh's worker "
        "process, the decode thread and the VAD share the two.",
    ))  # fmt: skip
    gain = predict["now_over_before"]
    section.ratios.append(Ratio(
        "predict videos/s at batch 16, now / before (same run)", gain, ">= 1.5", gain >= 1.5,
        f"{predict['videos_per_s']['now']:.2f} against {predict['videos_per_s']['before']:.2f} videos/s on the same "
        f"clips in this run ({predict['now_over_recorded']:.2f}x the 3.88 recorded before on a quieter machine); now: "
        f"ONNX VAD, the chains overlapped, {predict['num_workers']} DataLoader worker(s) (the default here: 2 cores "
        "less generation's threads, at least 1); before: TorchScript VAD, the chains in order, 1 worker.",
    ))  # fmt: skip
    for what in ("predict", "prepare-data"):
        result = sharding[what]
        name = f"sharded {what}: 2 processes / 1 ({sharding['cores']} shared cores, informative)"
        if "error" in result:
            section.ratios.append(Ratio(name, None, "none", None, f"Not measured: {result['error']}"))
            continue
        section.ratios.append(Ratio(
            name, result["two_over_one"], "none", None,
            f"{result['two_over_one']:.2f}x. {sharding['cores']} shared cores cannot show scaling (each process also "
            "starts its own model or processor, DataLoader worker and face-mesh process); recorded, not tuned for.",
        ))  # fmt: skip
    section.summary = (f"VAD ONNX {vad_result['onnx_speedup']:.2f}x TorchScript (spans identical "
                       f"{vad_result['identical_spans']}/{vad_result['conditions']}); processor {over:.2f}x its larger "
                       f"chain floor; predict at batch 16 {predict['videos_per_s']['now']:.2f} videos/s, "
                       f"{gain:.2f}x before; 2 processes / 1: "
                       + ", ".join(f"{w} " + ("not measured" if "error" in sharding[w] else
                                               f"{sharding[w]['two_over_one']:.2f}x") for w in ("predict", "prepare-data"))
                       + ".")  # fmt: skip
    return section
