"""Shared fixtures of the processing tests: the committed sample media and small bad files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def config():
    """The tiny random model's config (the processor's token counts and image size come from it)."""
    return tiny_random_config()


@pytest.fixture(scope="module")
def processor(config):
    """A processor for the tiny model, with the offline tiny tokenizers."""
    return MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())


@pytest.fixture(scope="session")
def assets() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def face_video() -> Path:
    return ASSETS / "face_speech.mp4"


@pytest.fixture(scope="session")
def rotated_video() -> Path:
    return ASSETS / "face_rotated_vfr_silent.mp4"


@pytest.fixture(scope="session")
def noface_video() -> Path:
    return ASSETS / "noface_speech.mp4"


@pytest.fixture(scope="session")
def true_spans() -> list[dict]:
    """The utterance boundaries measured on the synthesised speech when the media were made."""
    return json.loads((ASSETS / "face_speech.json").read_text())


def write_frames(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    *,
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
) -> Path:
    """Encode frames (RGB uint8) to ``path`` with PyAV (options as FFmpeg takes them, e.g. ``{"g": "10"}``)."""
    import av

    with av.open(str(path), mode="w", format=container_format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=codec_options or {})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_wav(path: Path, waveform: np.ndarray, rate: int = 16_000) -> Path:
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(waveform, -1, 1) * 32767).astype(np.int16).tobytes())
    return path
