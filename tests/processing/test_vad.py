"""Voice activity for utterance spans: silero-vad by default, the energy VAD as fallback and choice,
the shared post-processing, and the detector saved with the processor."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from microemo.presets import tiny_random_config
from microemo.processing import vad
from microemo.processing.audio_io import load_audio
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.utterances import Span

needs_silero = pytest.mark.skipif(
    vad.silero_unavailable_reason() is not None,
    reason=f"silero-vad unavailable: {vad.silero_unavailable_reason()}",
)


@pytest.fixture(scope="module")
def speech(face_video) -> np.ndarray:
    return load_audio(face_video)


@pytest.fixture()
def without_silero(monkeypatch):
    """An environment where silero-vad cannot be imported (and no model is loaded yet)."""
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    monkeypatch.setattr(vad, "_SILERO_MODELS", {})


def make_processor(**settings) -> MicroEmoProcessor:
    return MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), **settings
    )


def assert_near(spans: list[Span], true_spans: list[dict], tolerance: float = 0.3) -> None:
    assert len(spans) == len(true_spans), spans
    for found, truth in zip(spans, true_spans, strict=True):
        assert abs(found.start - truth["start"]) <= tolerance, (found, truth)
        assert abs(found.end - truth["end"]) <= tolerance, (found, truth)


@needs_silero
def test_silero_finds_the_two_utterances_of_the_sample_clip(speech, true_spans):
    activity = vad.voice_activity(speech, 16_000, "silero")
    assert (activity.detector, activity.fallback_reason) == ("silero", None)
    assert_near(activity.spans, true_spans)
    assert "silero-vad" in activity.note


def test_energy_vad_finds_them_too(speech, true_spans):
    activity = vad.voice_activity(speech, 16_000, "energy")
    assert activity.detector == "energy"
    assert_near(activity.spans, true_spans)


def test_without_silero_the_default_falls_back_to_energy_and_says_why(speech, true_spans, without_silero):
    assert "not installed" in vad.silero_unavailable_reason()
    activity = vad.voice_activity(speech, 16_000, "silero", threshold=0.8)  # silero's threshold is not used
    assert (activity.requested, activity.detector) == ("silero", "energy")
    assert "silero-vad is not installed" in activity.fallback_reason
    assert "energy VAD" in activity.note and "not installed" in activity.note
    assert_near(activity.spans, true_spans)
    with pytest.raises(ImportError, match="not installed"):
        vad.frame_scores(speech, 16_000, "silero")  # asked directly, no silent fallback


def scores(values, level=None, detector: str = "silero") -> vad.FrameScores:
    """Frame scores on a 0.1 s grid (frame = hop), so run boundaries are easy to read."""
    values = np.asarray(values, float)
    return vad.FrameScores(values, 0.1, 0.1, detector, None if level is None else np.asarray(level, float))


def test_short_silences_are_bridged_and_short_bursts_dropped():
    #        0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16  17  18  19
    probs = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    spans = vad.spans_from_scores(scores(probs), min_silence=0.25, min_speech=0.2, pad=0.0)
    # 0.1-0.4 and 0.6-0.8 are 0.2 s apart: one utterance; the 0.1 s burst at 1.4 s is dropped.
    assert spans == [Span(pytest.approx(0.1), pytest.approx(0.8))]
    split = vad.spans_from_scores(scores(probs), min_silence=0.15, min_speech=0.2, pad=0.0)
    assert [(round(s.start, 2), round(s.end, 2)) for s in split] == [(0.1, 0.4), (0.6, 0.8)]


def test_padding_merges_what_overlaps_and_spans_fit_the_video():
    probs = [1, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    spans = vad.spans_from_scores(scores(probs), min_silence=0.0, min_speech=0.1, pad=0.2, duration=0.9)
    # 0-0.2 and 0.5-1.0 padded by 0.2 s touch, and the end is held to the 0.9 s video.
    assert spans == [Span(0.0, 0.9)]
    assert vad.spans_from_scores(scores([0, 0, 1, 1]), min_speech=0.1, pad=0.0, duration=0.2) == []


def test_hysteresis_speech_starts_high_and_ends_low():
    probs = [0.8, 0.95, 0.8, 0.8, 0.5, 0.8, 0.1]
    spans = vad.spans_from_scores(
        scores(probs), threshold=0.9, offset_threshold=0.7, min_speech=0.1, min_silence=0.0, pad=0.0
    )
    # Starts at the first frame >= 0.9 (not at the 0.8 before it), lasts while >= 0.7.
    assert [(round(s.start, 2), round(s.end, 2)) for s in spans] == [(0.1, 0.4)]


def test_the_level_gate_keeps_speech_in_the_background_out():
    probs = [1.0] * 10
    level = [0, 1, 2, 8, 9, 9, 8, 2, 1, 0]  # dB over the background: loud speech only in frames 3-6
    spans = vad.spans_from_scores(scores(probs, level), min_speech=0.1, min_silence=0.0, pad=0.0, gate_db=4.5)
    assert [(round(s.start, 2), round(s.end, 2)) for s in spans] == [(0.3, 0.7)]
    ungated = vad.spans_from_scores(scores(probs, level), min_speech=0.1, min_silence=0.0, pad=0.0, gate_db=0)
    assert [(round(s.start, 2), round(s.end, 2)) for s in ungated] == [(0.0, 1.0)]


def test_silence_gives_no_spans_for_either_detector():
    for detector in vad.DETECTORS:
        assert vad.voice_activity(np.zeros(32_000, np.float32), 16_000, detector).spans == []
        assert vad.voice_activity(np.zeros(10, np.float32), 16_000, detector).spans == []


def test_bad_detector_and_options_name_the_problem():
    with pytest.raises(ValueError, match=r"detector must be one of 'silero', 'energy', got 'webrtc'"):
        vad.voice_activity(np.zeros(100, np.float32), 16_000, "webrtc")
    with pytest.raises(ValueError, match=r"vad_options: unknown option 'pading'"):
        vad.check_options({"pading": 0.1})
    with pytest.raises(ValueError, match=r"vad_options: min_silence must be >= 0 seconds, got -1"):
        vad.check_options({"min_silence": -1})
    with pytest.raises(
        ValueError, match=r"utterance_source must be 'silero', 'energy', 'asr' or 'none', got 'webrtc'"
    ):
        make_processor(utterance_source="webrtc")
    with pytest.raises(ValueError, match=r"vad_options: unknown option 'pading'"):
        make_processor(vad_options={"pading": 0.1})


def test_the_processor_notes_say_which_detector_made_the_spans(face_video, true_spans):
    for source, name in (("silero", "silero-vad"), ("energy", "energy VAD")):
        if source == "silero" and vad.silero_unavailable_reason():
            continue
        out = make_processor(utterance_source=source)(videos=face_video, return_metadata=True)
        assert any(f"from voice activity ({name})" in note for note in out["notes"][0]), out["notes"]
        assert_near([Span(s, e) for s, e, _ in out["utterance_spans"][0]], true_spans)


def test_the_processor_falls_back_with_a_note(face_video, true_spans, without_silero):
    out = make_processor()(videos=face_video, return_metadata=True)
    (note,) = [note for note in out["notes"][0] if "voice activity" in note]
    assert "(energy VAD)" in note and "silero-vad was asked for but silero-vad is not installed" in note
    assert len(out["utterance_spans"][0]) == len(true_spans)


def test_a_saved_processor_reloads_with_its_detector(tmp_path):
    from transformers import AutoProcessor

    assert make_processor().utterance_source == "silero"  # the default
    assert make_processor(utterance_source="vad").utterance_source == "silero"  # processors saved before
    for source, options in (("energy", {"min_silence": 0.4}), ("silero", {"threshold": 0.8, "gate_db": 3.0})):
        make_processor(utterance_source=source, vad_options=options).save_pretrained(tmp_path / source)
        loaded = AutoProcessor.from_pretrained(tmp_path / source, trust_remote_code=True)
        assert (loaded.utterance_source, loaded.vad_options) == (source, options)
        assert (tmp_path / source / "vad.py").is_file()  # shipped beside the processor


def test_the_hub_processor_without_silero_falls_back_with_a_note(tmp_path, face_video):
    """In a fresh Python that can import neither this project nor silero-vad (as on a Hub user's machine)."""
    make_processor().save_pretrained(tmp_path / "saved")
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("microemo", "silero_vad"):
            sys.modules[name] = None
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path / "saved")!r}, trust_remote_code=True)
        out = processor(videos={str(face_video)!r}, return_metadata=True)
        print("SOURCE:", processor.utterance_source)
        print("SPANS:", len(out["utterance_spans"][0]))
        print("NOTES:", out["notes"][0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SOURCE: silero" in result.stdout and "SPANS: 2" in result.stdout
    assert "(energy VAD); silero-vad was asked for but silero-vad is not installed" in result.stdout
