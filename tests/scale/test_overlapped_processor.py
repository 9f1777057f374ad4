"""prepare_sample runs the face clues and the sound chain at the same time: the results are those of running them in
order, for every kind of sample."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from microemo.presets import tiny_random_config
from microemo.processing import media_stages
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.video_io import MediaError

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def processor() -> MicroEmoProcessor:
    return MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())


def assert_same(first, second) -> None:
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if field.name == "video":
            np.testing.assert_array_equal(a.frames, b.frames)
            np.testing.assert_array_equal(a.timestamps, b.timestamps)
        elif dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):  # the face choice
            assert type(a) is type(b)
            assert_same(a, b)
        elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)  # NaN rows of landmarks compare equal
        else:
            assert a == b, field.name


@pytest.mark.parametrize("name, options", [
    ("face_speech.mp4", {}),  # face mesh + audio + voice activity
    ("face_speech.mp4", {"utterances": str(ASSETS / "face_speech.srt")}),  # subtitles instead of voice activity
    ("noface_speech.mp4", {}),  # no face: a note from each chain
    ("face_rotated_vfr_silent.mp4", {}),  # no audio stream
    ("face_speech.mp4", {"fps": 1.0, "face": "speaker"}),  # sampled by rate; every face tracked, then the choice
])  # fmt: skip
def test_overlapped_and_in_order_preparation_give_the_same_sample(processor, monkeypatch, name, options):
    overlapped = processor.prepare_sample(str(ASSETS / name), **options)
    monkeypatch.setattr(processor, "overlap_stages", False)
    in_order = processor.prepare_sample(str(ASSETS / name), **options)
    assert_same(overlapped, in_order)
    if name == "noface_speech.mp4":  # the face chain's note first, then the sound chain's, as in order
        assert overlapped.notes[0].startswith("no face found") and len(overlapped.notes) > 1


def test_the_chains_do_overlap(processor, monkeypatch):
    calls = []
    monkeypatch.setattr(media_stages, "run_concurrently",
                        lambda first, second, overlap: calls.append(overlap) or (first(), second()))  # fmt: skip
    processor.prepare_sample(str(ASSETS / "noface_speech.mp4"))
    assert calls == [True]


def test_the_frames_decode_while_the_sound_loads(processor, monkeypatch):
    # Both sides wait for each other: this passes only if decoding is inside the frame chain, concurrent with the
    # audio load (the sound chain needs the probe's duration, not the frames).
    meeting = threading.Barrier(2, timeout=20)
    fetch_video, load_sample_audio = processor.video_processor.fetch_video, media_stages.load_sample_audio
    monkeypatch.setattr(processor.video_processor, "fetch_video",
                        lambda *args, **kwargs: meeting.wait() and None or fetch_video(*args, **kwargs))  # fmt: skip
    monkeypatch.setattr(media_stages, "load_sample_audio",
                        lambda *args, **kwargs: meeting.wait() and None or load_sample_audio(*args, **kwargs))  # fmt: skip
    sample = processor.prepare_sample(str(ASSETS / "face_speech.mp4"))
    assert sample.waveform is not None and sample.video.frames.shape[0] == processor.num_frames
    assert sample.utterance_frame_mask.shape == (len(sample.utterances), processor.num_frames)


@pytest.mark.parametrize("video, options, message", [
    ("face_speech.mp4", {"num_frames": 4, "fps": 1.0}, "num_frames and fps are exclusive"),
    ("face_speech.mp4", {"fps": 30.0}, "gives 246 frames, more than the model's max_frames"),
    ("face_speech.mp4", {"num_frames": 400}, "num_frames=400 is more than the model's max_frames"),
    ("face_speech.mp4", {"do_sample_frames": False, "num_frames": 4}, "do_sample_frames=False asks for none"),
    ("absent.mp4", {"num_frames": 4, "fps": 1.0}, "num_frames and fps are exclusive"),  # the argument, then the file
    ("", {}, "the video path is an empty string"),
])  # fmt: skip
def test_bad_sampling_is_refused_before_the_sound_chain_runs(processor, monkeypatch, video, options, message):
    heard = []
    monkeypatch.setattr(media_stages, "load_sample_audio", lambda *args, **kwargs: heard.append(args))
    with pytest.raises(ValueError, match=message):
        processor.prepare_sample(str(ASSETS / video) if video else video, **options)
    assert heard == []


def test_a_failing_sound_chain_raises_as_without_overlap(processor, tmp_path):
    with pytest.raises((ValueError, MediaError)) as overlapped:
        processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=[(20.0, 30.0)])  # wholly after the video
    processor_in_order = MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    processor_in_order.overlap_stages = False
    with pytest.raises(type(overlapped.value)) as in_order:
        processor_in_order.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=[(20.0, 30.0)])
    assert str(overlapped.value) == str(in_order.value)


def test_the_saved_processor_ships_the_overlap_file(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    for name in ("processing_microemo.py", "media_stages.py", "overlap.py"):
        assert (tmp_path / name).is_file(), name
