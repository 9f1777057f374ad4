"""Subtitle files as people have them: odd arrows, missing blank lines, empty files, legacy encodings, paths that
are not files. Before, several of these dropped or mangled cues without a word."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.utterances import Span, SpanError, load_spans

TWO_CUES = "1\n00:00:01,000 --> 00:00:02,000\nJérôme est très content.\n\n2\n00:00:03,000 --> 00:00:04,500\nÇa va.\n"


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_single_hyphen_arrow_keeps_its_cue(tmp_path):
    path = write(tmp_path, "arrow.srt", TWO_CUES.replace("-->", "->", 1).encode())
    assert [s.start for s in load_spans(path)] == [1.0, 3.0]


def test_cues_without_the_blank_line_between_them_stay_apart(tmp_path):
    """Before: one span whose text held the next cue's number and timing, and that text went into the prompt."""
    path = write(tmp_path, "tight.srt", TWO_CUES.replace("\n\n", "\n").encode())
    assert load_spans(path) == [Span(1.0, 2.0, "Jérôme est très content."), Span(3.0, 4.5, "Ça va.")]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-8-sig"])
def test_legacy_and_unicode_encodings_are_read(tmp_path, encoding):
    """Before: Latin-1 reached the prompt as 'J�r�me'; UTF-16 said 'no SRT cue found'."""
    path = write(tmp_path, f"{encoding}.srt", TWO_CUES.encode(encoding))
    assert [s.text for s in load_spans(path)] == ["Jérôme est très content.", "Ça va."]


def test_a_cyrillic_legacy_encoding_is_read(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\nПривет, как дела? Я очень рад тебя видеть.\n"
    assert load_spans(write(tmp_path, "ru.srt", text.encode("cp1251")))[0].text.startswith("Привет, как дела?")


def test_an_empty_subtitle_file_warns_and_notes(tmp_path, caplog):
    """Before: no utterances and no warning."""
    path = write(tmp_path, "empty.srt", b"")
    with caplog.at_level(logging.WARNING, logger="microemo"):
        assert load_spans(path) == []
    assert any("the subtitle file is empty" in r.getMessage() for r in caplog.records)
    processor = MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    frames, no_face = np.zeros((2, 16, 16, 3), np.uint8), np.full((2, 478, 3), np.nan, np.float32)
    out = processor(videos=frames, landmarks=no_face, utterances=path, return_metadata=True)
    assert f"no utterances: {path} holds no subtitle cue" in out["notes"][0]


def test_a_malformed_timing_names_the_line(tmp_path):
    path = write(tmp_path, "bad.srt", TWO_CUES.replace("00:00:03,000", "00:0x:03,000").encode())
    with pytest.raises(SpanError, match=r"bad\.srt: line 6: malformed SRT cue timing"):
        load_spans(path)


def test_paths_that_are_not_subtitle_files(tmp_path):
    """Before: a directory or '' gave IsADirectoryError on '.', a URL 'no such file' with a slash lost."""
    with pytest.raises(SpanError, match="an empty path; give a subtitle file"):
        load_spans("")
    with pytest.raises(SpanError, match="is a directory, expected a subtitle file"):
        load_spans(tmp_path)
    with pytest.raises(SpanError, match=r"https://example.org/a.srt: utterance files are read from disk, not from URLs"):
        load_spans("https://example.org/a.srt")
