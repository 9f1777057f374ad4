"""Long videos: time and peak memory of `microemo predict --segment-seconds 60` against video length.

Generated two-person dialogues (``processing/make_dialogue_media.py``: a talking face beside a listening one,
real synthesised speech with pauses, 10 fps H.264 + AAC) of 1, 3 and 10 minutes are predicted with the
tiny-random model, segment by segment (decoding each segment's frames and sound by seeking to it, voice
activity per segment, the active speaker per segment, 8 new tokens per segment). Each length runs in a fresh
Python process, which reports its wall time and how far its resident memory grew above the level after the
model was loaded (the kernel's high-water mark, reset first). Time should grow linearly with length and the
memory stay flat: only one segment is ever held.

    python -m benchmarks --only long_video [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, Ratio, Section, Table

CHILD = """
import json, sys, time
from benchmarks.harness import peak_rss_during
from microemo.predict import load_predictor
predictor = load_predictor(sys.argv[1], device="cpu", max_new_tokens=8, num_workers=0, segment_seconds=60.0)
rows = []
def predict():
    start = time.perf_counter()
    rows.extend(predictor.run([sys.argv[2]], progress=False))
    rows.append(time.perf_counter() - start)
peak = peak_rss_during(predict)
row, seconds = rows[0], rows[1]
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, "error": row["error"],
                  "segments": len(row.get("segments", [])), "utterances": len(row.get("utterances", []))}))
"""


def measure(minutes: tuple[float, ...]) -> list[dict]:
    from benchmarks.bench_predict import make_model_folder
    from microemo.processing.make_dialogue_media import write_dialogue

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_folder(Path(tmp) / "model")
        for length in minutes:
            video = Path(tmp) / f"dialogue_{length:g}min.mp4"
            write_dialogue(video, seconds=60.0 * length)
            completed = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), str(video)], cwd=ROOT,
                                       capture_output=True, text=True, check=False)  # fmt: skip
            lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
            if completed.returncode != 0 or not lines:
                raise RuntimeError(f"predicting the {length:g}-minute video failed: {completed.stderr[-2000:]}")
            result = json.loads(lines[-1])
            if result["error"]:
                raise RuntimeError(f"the {length:g}-minute video's row has an error: {result['error']}")
            results.append({"minutes": length, "megabytes": video.stat().st_size / 2**20, **result})
            video.unlink()
    return results


def run(quick: bool) -> Section:
    minutes = (1.0, 3.0) if quick else (1.0, 3.0, 10.0)
    results = measure(minutes)
    section = Section(
        name="long_video",
        title="Long videos in 60 s segments: time and peak memory against length (tiny-random model, CPU)",
        command="python -m benchmarks --only long_video" + (" --quick" if quick else ""),
        data={"results": results},
    )
    first = results[0]
    rows = [[f"{r['minutes']:g}", f"{r['megabytes']:.1f}", str(r["segments"]), str(r["utterances"]),
             f"{r['seconds']:.1f}", f"{r['seconds'] / r['minutes']:.1f}",
             "-" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"] for r in results]  # fmt: skip
    section.tables.append(Table(
        "`microemo predict --segment-seconds 60` on a generated two-person dialogue (one process per length)",
        ["minutes", "file MiB", "segments", "utterances", "wall s", "s per minute", "peak RSS growth MiB"],
        rows,
        note="Peak RSS growth: the resident high-water mark during the prediction above the level once the model "
             "was loaded. Each segment decodes its own 8 frames by seeking and its own sound window.",
    ))  # fmt: skip
    last = results[-1]
    scale = last["minutes"] / first["minutes"]
    time_ratio = last["seconds"] / first["seconds"]
    section.ratios.append(Ratio(
        f"time {last['minutes']:g} min / {first['minutes']:g} min (linear = {scale:g})", time_ratio,
        f"<= {1.25 * scale:g} (linear within 25%)", time_ratio <= 1.25 * scale,
        f"{last['minutes']:g} minutes take {time_ratio:.1f}x the time of {first['minutes']:g} ({scale:g}x the length).",
    ))  # fmt: skip
    if first["peak_rss_mib"] is not None and last["peak_rss_mib"] is not None:
        growth = last["peak_rss_mib"] - first["peak_rss_mib"]
        section.ratios.append(Ratio(
            f"peak RSS growth {last['minutes']:g} min - {first['minutes']:g} min (MiB)", growth,
            "<= 50 MiB (flat)", growth <= 50,
            f"The peak grows {first['peak_rss_mib']:.0f} -> {last['peak_rss_mib']:.0f} MiB from {first['minutes']:g} "
            f"to {last['minutes']:g} minutes.",
        ))  # fmt: skip
    section.summary = ", ".join(f"{r['minutes']:g} min: {r['seconds']:.0f} s, +{r['peak_rss_mib'] or 0:.0f} MiB"
                                for r in results)  # fmt: skip
    return section
