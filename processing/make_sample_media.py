"""Generate the small sample media that the tests, the demo and the README use.

    python -m microemo.processing.make_sample_media --output-dir tests/assets

Needs (only to regenerate; the outputs are committed): scikit-image (the public-domain
"astronaut" photograph of Eileen Collins, NASA), mediapipe (to find where to animate the face) and
espeak-ng (Debian package ``espeak-ng``, for a real synthetic speech track).

Writes:
- ``face_speech.mp4``: 25 fps H.264 + AAC, a real face whose mouth opens with the speech and whose
  brows rise during the second sentence; two spoken utterances with silence around them.
  ``face_speech.srt`` / ``.vtt`` / ``.json`` give the utterance boundaries (measured on the
  synthesised speech, so they are the ground truth for the voice-activity tests).
- ``face_rotated_vfr_silent.mp4``: the face stored rotated with a 90 degree display rotation,
  variable frame rate, and no audio stream.
- ``noface_speech.mp4``: moving shapes without any face, with speech.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
UTTERANCES = ("I really did not expect to see you here today.", "Well, maybe this is good news after all.")
LEAD_SILENCE = 0.7  # seconds before the first utterance
GAP_SILENCE = 1.3  # seconds between utterances
TAIL_SILENCE = 0.7


def synthesize(text: str, workdir: Path) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns 16 kHz mono float32 with leading/trailing silence cut."""
    from scipy.signal import resample_poly

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to regenerate the speech track: apt-get install -y espeak-ng")
    out = workdir / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    with wave.open(str(out)) as handle:
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    audio = samples.astype(np.float32) / 32768.0
    audio = resample_poly(audio, SAMPLE_RATE, rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1]


def speech_track(workdir: Path) -> tuple[np.ndarray, list[dict]]:
    """The two utterances with silence around them, and their true [start, end] in seconds."""
    pieces = [np.zeros(int(LEAD_SILENCE * SAMPLE_RATE), np.float32)]
    spans = []
    cursor = LEAD_SILENCE
    for i, text in enumerate(UTTERANCES):
        speech = synthesize(text, workdir)
        spans.append({"start": round(cursor, 3), "end": round(cursor + len(speech) / SAMPLE_RATE, 3), "text": text})
        pieces.append(speech)
        cursor += len(speech) / SAMPLE_RATE
        silence = GAP_SILENCE if i + 1 < len(UTTERANCES) else TAIL_SILENCE
        pieces.append(np.zeros(int(silence * SAMPLE_RATE), np.float32))
        cursor += silence
    audio = np.concatenate(pieces)
    # A faint noise floor, as in any real recording (a digitally silent gap is too easy for a VAD).
    rng = np.random.default_rng(0)
    audio = audio * 0.8 + rng.normal(0, 0.002, audio.shape).astype(np.float32)
    return audio, spans


def envelope_at(audio: np.ndarray, times: np.ndarray, window: float = 0.08) -> np.ndarray:
    """Speech loudness (0..1) around each time: drives the mouth opening."""
    half = int(window * SAMPLE_RATE / 2)
    values = []
    for t in times:
        centre = int(t * SAMPLE_RATE)
        chunk = audio[max(0, centre - half) : centre + half]
        values.append(float(np.sqrt(np.mean(chunk**2))) if chunk.size else 0.0)
    values = np.asarray(values)
    return np.clip(values / (values.max() + 1e-9), 0, 1)


def face_photo() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo cropped around the face (upright, 240 x 288), and its face-mesh landmarks in pixels."""
    from skimage import data

    from .face_mesh import detect_landmarks, shared_worker

    image = data.astronaut()[0:288, 105:345].copy()  # face centred, shoulders below
    # The processor's own face mesh, in its worker process: a mediapipe graph created in this process would stop
    # it from forking workers that make their own (pytest builds the dialogue clip in its own process).
    landmarks, found = detect_landmarks(image[None], shared_worker())
    if not found[0]:
        raise SystemExit("mediapipe found no face on the astronaut photo")
    h, w = image.shape[:2]
    points = landmarks[0, :, :2] * np.array([w, h], dtype=np.float32)
    return image, points.astype(np.float64)


def warp(image: np.ndarray, points: np.ndarray, mouth_open: float, brow_raise: float) -> np.ndarray:
    """Move the lower lip and jaw down by ``mouth_open`` and the brows up by ``brow_raise`` (pixels)."""
    from scipy.ndimage import map_coordinates

    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lower_lip = points[[14, 17, 84, 314]].mean(axis=0)  # inner and outer lower lip
    parting = points[[13, 14]].mean(axis=0)  # between the lips
    brows = points[[105, 334, 66, 296]].mean(axis=0)
    mouth_width = np.linalg.norm(points[61] - points[291])
    dy = np.zeros_like(yy)
    # Everything below the parting line (the whole lower lip, the chin) moves down, so the lips
    # part; the shift fades with distance so the skin stretches smoothly.
    below = np.clip((yy - parting[1]) / 2.0, 0, 1)
    falloff = np.exp(-(((xx - lower_lip[0]) / (0.9 * mouth_width)) ** 2) - ((yy - lower_lip[1]) / 30.0) ** 2)
    dy -= mouth_open * below * falloff
    brow_falloff = np.exp(-(((xx - brows[0]) / (1.6 * mouth_width)) ** 2) - ((yy - brows[1]) / 10.0) ** 2)
    dy += brow_raise * brow_falloff
    coords = [yy + dy, xx]
    out = np.stack([map_coordinates(image[..., c], coords, order=1, mode="nearest") for c in range(3)], axis=-1)
    return out


def write_video(
    path: Path,
    frames: list[np.ndarray],
    times: list[float],
    audio: np.ndarray | None,
    rotation: int = 0,
) -> None:
    """Write H.264 (+ AAC) with exact per-frame presentation times (milliseconds)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "30", "preset": "veryslow"})
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for image, time in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = int(round(time * 1000))
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if audio_stream is not None:
            chunk = 1024
            for start in range(0, len(audio), chunk):
                piece = audio[start : start + chunk][None, :].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = start
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode())


def write_subtitles(out_dir: Path, stem: str, spans: list[dict]) -> None:
    def clock(seconds: float, sep: str) -> str:
        millis = int(round(seconds * 1000))
        h, rest = divmod(millis, 3_600_000)
        m, rest = divmod(rest, 60_000)
        s, ms = divmod(rest, 1000)
        return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"

    srt = [f"{i}\n{clock(s['start'], ',')} --> {clock(s['end'], ',')}\n{s['text']}\n" for i, s in enumerate(spans, 1)]
    (out_dir / f"{stem}.srt").write_text("\n".join(srt), encoding="utf-8")
    vtt = ["WEBVTT\n"] + [f"{clock(s['start'], '.')} --> {clock(s['end'], '.')}\n{s['text']}\n" for s in spans]
    (out_dir / f"{stem}.vtt").write_text("\n".join(vtt), encoding="utf-8")
    (out_dir / f"{stem}.json").write_text(json.dumps(spans, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("tests/assets"))
    args = parser.parse_args(argv)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    image, points = face_photo()

    with tempfile.TemporaryDirectory() as tmp:
        audio, spans = speech_track(Path(tmp))
    duration = len(audio) / SAMPLE_RATE

    # 1. Face + speech, constant 25 fps: the mouth follows the speech, the brows rise in utterance 2.
    times = list(np.arange(0, duration, 1 / 25))
    loudness = envelope_at(audio, np.asarray(times))
    second = spans[1]
    frames = []
    for t, level in zip(times, loudness, strict=True):
        brow = 5.0 if second["start"] <= t <= second["end"] else 0.0
        frames.append(warp(image, points, mouth_open=12.0 * np.sqrt(level), brow_raise=brow))
    write_video(out / "face_speech.mp4", frames, times, audio)
    write_subtitles(out, "face_speech", spans)

    # 2. Rotated (stored sideways, display rotation +90), variable frame rate, no audio stream.
    durations = np.tile([1 / 30, 1 / 10, 1 / 15], 20)
    times = list(np.concatenate([[0.0], np.cumsum(durations)[:-1]]))
    times = [t for t in times if t < 3.0]
    frames = []
    for t in times:
        phase = 0.5 - 0.5 * np.cos(2 * np.pi * t / 3.0)  # neutral -> surprised -> neutral
        upright = warp(image, points, mouth_open=10.0 * phase, brow_raise=6.0 * phase)
        frames.append(np.rot90(upright, k=-1))  # stored rotated clockwise; displaying rotates it back
    write_video(out / "face_rotated_vfr_silent.mp4", frames, times, None, rotation=90)

    # 3. No face: drifting coloured discs over a gradient, with the same speech.
    h, w = 144, 176
    yy, xx = np.mgrid[0:h, 0:w]
    short = audio[: int(3.5 * SAMPLE_RATE)]
    times = list(np.arange(0, len(short) / SAMPLE_RATE, 1 / 25))
    frames = []
    for t in times:
        canvas = np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, 128)], -1).astype(np.float32)
        for k, colour in enumerate([(255, 60, 60), (60, 60, 255), (250, 220, 40)]):
            cx = w / 2 + 50 * np.cos(t * (1 + k) + k)
            cy = h / 2 + 35 * np.sin(t * (1.3 + k))
            canvas[(xx - cx) ** 2 + (yy - cy) ** 2 < (14 + 4 * k) ** 2] = colour
        frames.append(canvas.astype(np.uint8))
    write_video(out / "noface_speech.mp4", frames, times, short)

    for path in sorted(out.glob("*")):
        print(f"{path}  {path.stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
