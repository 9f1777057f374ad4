"""How closely the Tasks FaceLandmarker (the default) agrees with mediapipe 0.10.21's legacy face mesh.

    python benchmarks/bench_face_backends.py --legacy-python /path/to/venv-with-mediapipe-0.10.21/bin/python
    python benchmarks/bench_face_backends.py --dump tasks OUT.npz     # one backend's landmarks (any venv)

The two backends cannot share a Python: mediapipe >= 0.10.30 has no legacy face mesh and 0.10.21 needs numpy<2.
So each backend runs in its own interpreter (``--dump``) on the same frames, and this script compares them:
- the bundled clips (``tests/assets/face_speech.mp4``, ``face_rotated_vfr_silent.mp4``), 16 frames each;
- a portrait clip built here (9:16, 360 x 640, the sample face smaller, off-centre, tilted up to 12 degrees and
  darker or brighter from frame to frame: a phone-style framing the models were not tuned on).
It reports, per clip: frames where both found the face; the landmark distance (mean over the 478 points of the
x-y distance, in % of the face box's diagonal; median and 95th percentile over frames); and the clue-mask IoU per
region on the model's 16 x 16 patch grid (224 px, 14 px patches). Prints a Markdown table. No time is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("face_speech.mp4", "face_rotated_vfr_silent.mp4")
NUM_FRAMES = 16


def portrait_frames(count: int = NUM_FRAMES) -> np.ndarray:
    """[count, 640, 360, 3] uint8: the sample face (scikit-image's astronaut) framed like a phone video."""
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop((130, 10, 330, 250))  # head and shoulders
    frames = []
    rng = np.random.default_rng(0)
    for k in range(count):
        canvas = Image.new("RGB", (360, 640), (int(60 + 4 * k), 70, 90))
        size = int(170 + 40 * np.sin(k / 3))
        tile = face.resize((size, int(size * 1.2)), Image.BICUBIC).rotate(float(rng.uniform(-12, 12)), expand=False)
        canvas.paste(tile, (int(40 + 5 * k), int(150 + 8 * np.cos(k / 2) * 10)))
        gain = 0.7 + 0.6 * (k % 4) / 3  # darker and brighter frames
        frames.append(np.clip(np.asarray(canvas, np.float32) * gain, 0, 255).astype(np.uint8))
    return np.stack(frames)


def clip_frames() -> dict[str, np.ndarray]:
    from microemo.processing.video_io import decode_video

    frames = {name: decode_video(ROOT / "tests" / "assets" / name, NUM_FRAMES).frames for name in CLIPS}
    frames["portrait (built here)"] = portrait_frames()
    return frames


def dump(backend_name: str, output: Path) -> None:
    """Landmarks and face flags of every clip with one backend, saved as ``output`` (.npz)."""
    from microemo.processing.face_mesh import LegacyFaceMesh, TasksFaceLandmarker, detect_landmarks

    backend = LegacyFaceMesh() if backend_name == "legacy" else TasksFaceLandmarker()
    arrays, clips = {}, clip_frames()
    try:
        for index, frames in enumerate(clips.values()):
            landmarks, found = detect_landmarks(frames, backend)
            arrays[f"landmarks_{index}"], arrays[f"found_{index}"] = landmarks, found
    finally:
        backend.close()
    import mediapipe

    arrays["meta"] = np.array(json.dumps({"backend": backend_name, "mediapipe": mediapipe.__version__,
                                          "numpy": np.__version__, "clips": list(clips)}))  # fmt: skip
    np.savez(output, **arrays)


def compare(a: dict, b: dict) -> list[dict]:
    from microemo.processing.face_regions import DEFAULT_CLUE_REGIONS, rasterize_clue_masks, resolve_regions

    regions = list(resolve_regions(DEFAULT_CLUE_REGIONS))
    rows = []
    for index, clip in enumerate(json.loads(str(a["meta"]))["clips"]):
        la, fa, lb, fb = a[f"landmarks_{index}"], a[f"found_{index}"], b[f"landmarks_{index}"], b[f"found_{index}"]
        both = fa & fb
        row = {"clip": clip, "frames": len(fa), "found_a": int(fa.sum()), "found_b": int(fb.sum()), "both": int(both.sum())}
        if both.any():
            xy_a, xy_b = la[both, :, :2], lb[both, :, :2]
            diagonal = np.hypot(np.ptp(xy_a[..., 0], axis=1), np.ptp(xy_a[..., 1], axis=1))
            distance = np.linalg.norm(xy_a - xy_b, axis=-1).mean(axis=1) / diagonal * 100
            row["distance_median"], row["distance_p95"] = float(np.median(distance)), float(np.percentile(distance, 95))
            ma = rasterize_clue_masks(la[both], np.ones(both.sum(), bool), 224, 14)
            mb = rasterize_clue_masks(lb[both], np.ones(both.sum(), bool), 224, 14)
            for r, region in enumerate(regions):
                union = (ma[:, r] | mb[:, r]).sum(axis=1)
                iou = (ma[:, r] & mb[:, r]).sum(axis=1) / np.maximum(union, 1)
                row[f"iou_{region}"] = float(iou.mean())
        rows.append(row)
    return rows


def markdown(rows: list[dict], meta_a: dict, meta_b: dict) -> str:
    regions = [key[4:] for key in rows[0] if key.startswith("iou_")]
    lines = [
        f"A = {meta_a['backend']} (mediapipe {meta_a['mediapipe']}, numpy {meta_a['numpy']}), "
        f"B = {meta_b['backend']} (mediapipe {meta_b['mediapipe']}, numpy {meta_b['numpy']}); {NUM_FRAMES} frames a clip.",
        "",
        "| clip | face found A / B (both) | landmark distance, % of face diagonal (median / p95) | "
        + " | ".join(f"IoU {r}" for r in regions) + " |",
        "|---|---|---|" + "---|" * len(regions),
    ]
    for row in rows:
        distance = f"{row['distance_median']:.2f} / {row['distance_p95']:.2f}" if "distance_median" in row else "n/a"
        ious = " | ".join(f"{row.get('iou_' + r, float('nan')):.2f}" for r in regions)
        lines.append(f"| {row['clip']} | {row['found_a']} / {row['found_b']} of {row['frames']} ({row['both']}) | {distance} | {ious} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", nargs=2, metavar=("BACKEND", "OUT"), help="tasks|legacy and an .npz path")
    parser.add_argument("--legacy-python", help="a Python whose mediapipe is 0.10.21 (runs this script with --dump)")
    parser.add_argument("--legacy-runner", default=None,
                        help="a script that runs 'python SCRIPT ARGS' with this checkout's code (when the legacy "
                        "Python has another checkout installed)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.dump[0], Path(args.dump[1]))
        return 0
    if not args.legacy_python:
        parser.error("--legacy-python is required to compare (or use --dump)")
    with tempfile.TemporaryDirectory() as folder:
        tasks, legacy = Path(folder) / "tasks.npz", Path(folder) / "legacy.npz"
        dump("tasks", tasks)
        runner = [args.legacy_runner] if args.legacy_runner else []
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run([args.legacy_python, *runner, __file__, "--dump", "legacy", str(legacy)], check=True, env=env)
        a, b = np.load(legacy), np.load(tasks)
        print(markdown(compare(a, b), json.loads(str(a["meta"])), json.loads(str(b["meta"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
