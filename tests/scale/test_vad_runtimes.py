"""silero-vad's two packaged models: the ONNX one (through onnxruntime, the default) gives the TorchScript one's spans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microemo.processing import vad
from microemo.processing.audio_io import load_audio_stream

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(vad.silero_unavailable_reason() is not None, reason="silero-vad unavailable")

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    waveform, _ = load_audio_stream(ASSETS / "face_speech.mp4", 16_000)
    return waveform


@pytest.mark.parametrize("rate", [16_000, 8_000])
def test_onnx_and_torchscript_give_the_same_probabilities_and_spans(speech, rate):
    audio = speech if rate == 16_000 else speech[::2].copy()
    rng = np.random.default_rng(0)
    noisy = audio + rng.normal(0, 0.05, audio.shape).astype(np.float32)  # probabilities off the 0 / 1 rails
    for waveform in (audio, noisy, audio[: 16_000 + 100]):  # a tail shorter than a chunk is padded alike
        onnx = vad.frame_scores(waveform, rate, "silero", runtime="onnx")
        script = vad.frame_scores(waveform, rate, "silero", runtime="torchscript")
        assert onnx.scores.shape == script.scores.shape
        np.testing.assert_allclose(onnx.scores, script.scores, atol=1e-4)
        assert vad.spans_from_scores(onnx) == vad.spans_from_scores(script)
    assert len(vad.spans_from_scores(vad.frame_scores(audio, rate, "silero", runtime="onnx"))) == 2


def test_onnx_is_the_default_where_onnxruntime_is_installed(speech):
    assert vad.default_silero_runtime() == "onnx"
    default = vad.frame_scores(speech, 16_000, "silero")
    np.testing.assert_array_equal(default.scores, vad.frame_scores(speech, 16_000, "silero", runtime="onnx").scores)


def test_an_unknown_runtime_is_refused_by_name(speech):
    with pytest.raises(ValueError, match="silero runtime must be one of .*'tflite'"):
        vad.frame_scores(speech, 16_000, "silero", runtime="tflite")
