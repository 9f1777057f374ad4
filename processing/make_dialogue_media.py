"""Generate a two-person dialogue video of any length: two faces side by side, the left one (smaller) speaks
with the sound, the right one (larger) listens with a still mouth. It is the test clip of the speaking-face
choice (``speaker`` must pick the left face, ``largest`` the right one), and the long video of the
segment benchmark.

    python -m microemo.processing.make_dialogue_media --seconds 180 --output dialogue.mp4

The speech is the real synthesised speech of ``tests/assets/face_speech.mp4`` (two utterances), repeated
with pauses in between; the face is the astronaut photograph of ``make_sample_media``. Frames are written
as they are made (the video is never held in memory), and the mouth shapes are drawn once per opening
level and reused, so ten minutes take about a minute to write. Needs mediapipe, scikit-image and PyAV.
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from .audio_io import load_audio
from .make_sample_media import SAMPLE_RATE, envelope_at, face_photo, warp

ASSET = Path(__file__).resolve().parents[1] / "tests" / "assets" / "face_speech.mp4"
SPANS = ASSET.with_suffix(".json")
PAUSE = 1.5  # seconds of silence between the repeated speech pieces
LEVELS = 9  # mouth-opening levels drawn (0 = closed)
SPEAKER_SCALE = 0.8  # the speaker's face is smaller than the listener's, so "largest" is the listener


def dialogue_audio(seconds: float) -> tuple[np.ndarray, list[dict]]:
    """``seconds`` of speech: the sample speech repeated with pauses, and its utterance spans (cut at the end)."""
    speech = load_audio(ASSET, SAMPLE_RATE)
    base = json.loads(SPANS.read_text())
    total = int(round(seconds * SAMPLE_RATE))
    pieces, spans, cursor = [], [], 0.0
    while cursor * SAMPLE_RATE < total:
        pieces += [speech, np.zeros(int(PAUSE * SAMPLE_RATE), np.float32)]
        spans += [{"start": round(cursor + s["start"], 3), "end": round(cursor + s["end"], 3), "text": s["text"]} for s in base]
        cursor += speech.size / SAMPLE_RATE + PAUSE
    audio = np.concatenate(pieces)[:total]
    spans = [s for s in spans if s["end"] <= seconds]
    return audio, spans


def _faces(levels: int = LEVELS) -> tuple[list[np.ndarray], np.ndarray]:
    """The speaker's face at each mouth-opening level (scaled down) and the listener's still face."""
    from PIL import Image

    image, points = face_photo()
    h, w = image.shape[:2]
    size = (int(w * SPEAKER_SCALE) // 2 * 2, int(h * SPEAKER_SCALE) // 2 * 2)
    speaker = []
    for level in range(levels):
        opened = warp(image, points, mouth_open=12.0 * np.sqrt(level / (levels - 1)), brow_raise=0.0)
        speaker.append(np.asarray(Image.fromarray(opened).resize(size, Image.BICUBIC)))
    return speaker, image


def write_dialogue(output: str | Path, seconds: float = 180.0, fps: int = 10) -> list[dict]:
    """Write the dialogue video (H.264 + AAC) to ``output``; returns its utterance spans (also written beside it
    as ``<name>.json``)."""
    import av

    output = Path(output)
    audio, spans = dialogue_audio(seconds)
    speaker, listener = _faces()
    lh, lw = listener.shape[:2]
    sh, sw = speaker[0].shape[:2]
    canvas = np.full((lh, sw + lw + 16, 3), 235, dtype=np.uint8)  # a light wall behind the two people
    canvas[:, sw + 16 :] = listener
    top = lh - sh  # both sit on the bottom edge
    times = np.arange(0, seconds, 1 / fps)
    loudness = envelope_at(audio, times)
    with av.open(str(output), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "28", "preset": "veryfast"})
        stream.width, stream.height = canvas.shape[1], canvas.shape[0]
        stream.pix_fmt = "yuv420p"
        audio_stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for index, level in enumerate(loudness):
            canvas[top:, :sw] = speaker[int(round(level * (LEVELS - 1)))]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        chunk = 1024
        for start in range(0, len(audio), chunk):
            frame = av.AudioFrame.from_ndarray(audio[None, start : start + chunk], format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(audio_stream.encode(frame))
        container.mux(audio_stream.encode())
    output.with_suffix(".json").write_text(json.dumps(spans, indent=2) + "\n", encoding="utf-8")
    return spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="length (default 180)")
    parser.add_argument("--fps", type=int, default=10, help="frame rate (default 10)")
    parser.add_argument("--output", type=Path, default=Path("dialogue.mp4"))
    args = parser.parse_args(argv)
    spans = write_dialogue(args.output, args.seconds, args.fps)
    print(f"{args.output}: {args.seconds:.0f} s, {len(spans)} utterances")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
