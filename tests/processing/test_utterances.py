"""Utterance spans: subtitle files, voice activity, ASR output, validation, merging and frames."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from microemo.processing.audio_io import load_audio
from microemo.processing.utterances import (
    Span,
    SpanError,
    assign_frames,
    detect_speech,
    load_spans,
    merge_spans,
    parse_json_spans,
    parse_srt,
    spans_from_asr_output,
    validate_spans,
)


def test_voice_activity_finds_the_spoken_utterances(face_video, true_spans):
    spans = detect_speech(load_audio(face_video))
    assert len(spans) == len(true_spans) == 2
    for found, truth in zip(spans, true_spans, strict=True):
        assert abs(found.start - truth["start"]) < 0.3
        assert abs(found.end - truth["end"]) < 0.3


def test_voice_activity_on_silence_and_noise():
    rng = np.random.default_rng(0)
    assert detect_speech(np.zeros(32_000, np.float32)) == []
    assert detect_speech(rng.normal(0, 0.003, 32_000).astype(np.float32)) == []
    assert detect_speech(np.zeros(100, np.float32)) == []


def test_srt_vtt_and_json_give_the_same_spans(assets, true_spans):
    srt = load_spans(assets / "face_speech.srt")
    vtt = load_spans(assets / "face_speech.vtt")
    js = load_spans(assets / "face_speech.json")
    assert srt == vtt == js
    assert [(s.start, s.end, s.text) for s in js] == [(t["start"], t["end"], t["text"]) for t in true_spans]


def test_srt_details():
    text = "1\n00:00:01,5 --> 00:00:02,250\n<i>Hello</i>\nthere\n\n2\n01:00:00.000 --> 01:00:01.000\nlater\n"
    assert parse_srt(text) == [Span(1.5, 2.25, "Hello there"), Span(3600.0, 3601.0, "later")]


def test_malformed_files_name_the_file_and_problem(tmp_path):
    bad_srt = tmp_path / "bad.srt"
    bad_srt.write_text("1\n00:00:01,000 --> soon\nhello\n")
    with pytest.raises(SpanError, match=r"bad\.srt: line 2: malformed SRT cue timing"):
        load_spans(bad_srt)
    not_srt = tmp_path / "words.srt"
    not_srt.write_text("just some words\n")
    with pytest.raises(SpanError, match=r"words\.srt: no SRT cue found"):
        load_spans(not_srt)
    bad_vtt = tmp_path / "bad.vtt"
    bad_vtt.write_text("00:01.000 --> 00:02.000\nhi\n")
    with pytest.raises(SpanError, match=r"bad\.vtt: a WebVTT file must start with 'WEBVTT'"):
        load_spans(bad_vtt)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"start": 1, "end": 2,}]')
    with pytest.raises(SpanError, match=r"bad\.json: not valid JSON"):
        load_spans(bad_json)
    wrong_json = tmp_path / "wrong.json"
    wrong_json.write_text('[{"begin": 1, "end": 2}]')
    with pytest.raises(SpanError, match=r"wrong\.json: item 0 must be an object with 'start' and 'end'"):
        load_spans(wrong_json)
    with pytest.raises(SpanError, match="start/end must be numbers"):
        parse_json_spans([{"start": "soon", "end": 2}], "inline")
    other = tmp_path / "spans.txt"
    other.write_text("0 1")
    with pytest.raises(SpanError, match=r"spans\.txt: unknown utterance file type"):
        load_spans(other)
    with pytest.raises(FileNotFoundError, match=r"missing\.srt: no such file"):
        load_spans(tmp_path / "missing.srt")


def test_validation(caplog):
    with pytest.raises(SpanError, match=r"subs\.json: utterance 1 ends \(1\.000 s\) before it starts \(2\.000 s\)"):
        validate_spans([Span(0, 1), Span(2, 1)], 5.0, "subs.json")
    with pytest.raises(SpanError, match=r"subs\.json: utterance 0 starts at 6\.000 s, at or after the end of the video"):
        validate_spans([Span(6, 7)], 5.0, "subs.json")
    with caplog.at_level(logging.WARNING):
        spans = validate_spans([Span(4, 9, "late"), Span(-1, 1)], 5.0, "subs.json")
    assert spans == [Span(0.0, 1.0), Span(4.0, 5.0, "late")]
    assert "clamped" in caplog.text
    with pytest.raises(SpanError, match="non-finite"):
        validate_spans([Span(float("nan"), 1)], 5.0)


def test_merging_keeps_the_longest_silences():
    spans = [Span(0, 1, "a"), Span(1.1, 2, "b"), Span(5, 6, "c"), Span(6.5, 7, "d")]
    assert merge_spans(spans, 2) == [Span(0, 2, "a b"), Span(5, 7, "c d")]
    assert merge_spans(spans, 4) == spans
    assert merge_spans(spans, 0) == []


def test_every_utterance_gets_a_frame():
    stamps = np.array([0.5, 1.5, 2.5, 3.5])
    mask = assign_frames([Span(0.4, 1.6), Span(2.9, 3.0), Span(3.4, 9)], stamps)
    np.testing.assert_array_equal(
        mask, [[True, True, False, False], [False, False, True, False], [False, False, False, True]]
    )


def test_asr_pipeline_output_to_spans():
    chunks = {"text": "hi there. bye.", "chunks": [
        {"text": " hi there.", "timestamp": (0.5, 1.8)},
        {"text": " bye.", "timestamp": (3.0, None)},
    ]}  # fmt: skip
    assert spans_from_asr_output(chunks, duration=4.0) == [Span(0.5, 1.8, "hi there."), Span(3.0, 4.0, "bye.")]
    words = {"text": "a b c", "chunks": [
        {"text": " a", "timestamp": (0.0, 0.3)},
        {"text": " b", "timestamp": (0.4, 0.7)},
        {"text": " c", "timestamp": (2.0, 2.4)},
    ]}  # fmt: skip
    assert spans_from_asr_output(words) == [Span(0.0, 0.7, "a b"), Span(2.0, 2.4, "c")]
    assert spans_from_asr_output({"text": ""}) == []
