"""Long videos: cut into segments at pauses, each prepared from its own frames and sound."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from microemo.processing.audio_io import load_audio
from microemo.processing.segments import (
    check_segment_seconds,
    choose_cut,
    iter_segments,
    load_audio_window,
    spans_within,
)
from microemo.processing.utterances import Span

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.mark.parametrize("bad", [1.9, 0, -5, math.nan, True, "60"])
def test_a_segment_length_under_two_seconds_or_not_a_number_is_refused(bad):
    with pytest.raises(ValueError, match="segment_seconds"):
        check_segment_seconds(bad)
    assert check_segment_seconds(2) == 2.0


def test_the_cut_falls_in_the_middle_of_the_last_pause_of_the_second_half():
    spans = [Span(1, 10), Span(12, 40), Span(44, 58), Span(59.5, 70)]
    cut, why = choose_cut(spans, 0.0, 60.0)
    assert why == "pause" and cut == pytest.approx(58.75)
    assert choose_cut([Span(1, 10), Span(12, 40)], 0.0, 60.0) == (pytest.approx(50.0), "pause")  # trailing silence


def test_an_utterance_through_the_whole_second_half_is_cut_at_the_limit():
    cut, why = choose_cut([Span(5, 20), Span(25, 80)], 0.0, 60.0)
    assert cut == 60.0 and why.startswith("limit")


def test_spans_within_a_segment_are_clipped_and_on_its_clock():
    spans = [Span(5, 12, "a"), Span(14, 30, "b"), Span(31, 33, "c")]
    assert spans_within(spans, 10.0, 20.0) == [Span(0.0, 2.0, "a"), Span(4.0, 10.0, "b")]


def test_a_window_of_sound_matches_the_same_samples_of_the_whole_track(long_dialogue):
    path, _ = long_dialogue
    whole = load_audio(path)
    window = load_audio_window(path, 21.0, 27.0)
    assert window.shape == (6 * 16_000,)
    same = whole[21 * 16_000 : 27 * 16_000]
    # AAC decoded after a seek differs from a decode from the start by rounding only; any misalignment (even
    # a millisecond) would break the correlation of speech.
    assert np.corrcoef(window, same)[0, 1] > 0.999 and np.abs(window - same).max() < 0.1


def test_a_long_video_becomes_ordered_segments_cut_between_utterances(long_dialogue, tiny_processor):
    path, true_spans = long_dialogue
    segments = list(iter_segments(tiny_processor, path, segment_seconds=15))
    assert len(segments) >= 3 and segments[0].start == 0.0 and segments[-1].end == pytest.approx(40.0, abs=0.2)
    for before, after in zip(segments[:-1], segments[1:], strict=True):
        assert before.end == after.start and before.cut == "pause"
    for segment in segments:
        assert segment.end - segment.start <= 15.0 + 1e-6
        sample = segment.sample
        # Each segment has its own sampled frames, on its own clock, inside it.
        assert sample.video.frames.shape[0] == tiny_processor.num_frames
        assert 0 <= sample.video.timestamps.min() and sample.video.timestamps.max() <= segment.end - segment.start
        assert any("utterances voice activity" in note for note in sample.notes)
    cuts = [segment.end for segment in segments[:-1]]
    for span in true_spans:  # no spoken utterance is split by a cut
        assert not any(span["start"] + 0.1 < cut < span["end"] - 0.1 for cut in cuts), (span, cuts)


def test_given_utterances_are_used_per_segment(long_dialogue, tiny_processor):
    path, true_spans = long_dialogue
    spans = [Span(s["start"], s["end"], s["text"]) for s in true_spans]
    segments = list(iter_segments(tiny_processor, path, segment_seconds=20, utterances=spans))
    words = [u.text for segment in segments for u in segment.sample.utterances]
    assert words == [s.text for s in spans]


def test_the_processor_prepares_segments_from_a_subtitle_file_and_a_short_video_whole(long_dialogue, dialogue_clip,
                                                                                      tiny_processor, tmp_path):  # fmt: skip
    path, true_spans = long_dialogue
    srt = tmp_path / "long.srt"

    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"

    srt.write_text("\n".join(f"{n}\n{stamp(s['start'])} --> {stamp(s['end'])}\n{s['text']}\n"
                             for n, s in enumerate(true_spans, 1)))  # fmt: skip
    segments = list(tiny_processor.prepare_segments(str(path), 20, utterances=str(srt)))
    assert len(segments) >= 2 and all(segment.cut != "whole video" for segment in segments)
    assert [u.text for segment in segments for u in segment.sample.utterances] == [s["text"] for s in true_spans]

    short, _ = dialogue_clip
    (whole,) = tiny_processor.prepare_segments(str(short), 20)
    assert (whole.start, whole.cut) == (0.0, "whole video") and whole.end == pytest.approx(12.0, abs=0.2)
    sample = tiny_processor.prepare_sample(str(short))
    np.testing.assert_array_equal(whole.sample.video.frames, sample.video.frames)
    assert whole.sample.utterances == sample.utterances
    with pytest.raises(ValueError, match="segment_seconds=0.5 s is too short"):
        tiny_processor.prepare_segments(str(short), 0.5)


def test_a_window_without_utterances_is_cut_at_its_limit():
    assert choose_cut([], 0.0, 10.0) == (10.0, "no utterance")
    assert choose_cut([Span(12.0, 14.0)], 0.0, 10.0) == (10.0, "no utterance")  # after the window


@pytest.mark.parametrize("name, seconds, shortest", [
    ("face_speech.mp4", 8.0, 2.0),  # 8.2 s: the cut leaves the rest at least one audio clip (2 s)
    ("noface_speech.mp4", 3.4, 1.7),  # 3.52 s: a rest under 4 s is shared in halves
    ("face_rotated_vfr_silent.mp4", 2.0, 1.4),  # no sound: halves of 2.97 s, not 2 s and a 0.97 s sliver
])  # fmt: skip
def test_no_segment_is_a_sliver_of_the_videos_end(tiny_processor, name, seconds, shortest):
    segments = list(iter_segments(tiny_processor, ASSETS / name, segment_seconds=seconds))
    assert len(segments) == 2
    assert all(seconds + 1e-6 >= segment.end - segment.start >= shortest for segment in segments), [
        (s.start, s.end) for s in segments]  # fmt: skip
