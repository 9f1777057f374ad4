"""Fuzz: subtitle readers and chat-template content parts given random bytes, structures and markup answer with a
clear error or a valid result, each example within a time budget (hypothesis' deadline), in a bounded number of
examples so the suite stays fast."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microemo.processing.utterances import (
    Span,
    SpanError,
    decode_text,
    load_spans,
    parse_json_spans,
    parse_srt,
    parse_vtt,
)

FUZZ = settings(max_examples=60, deadline=1500, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

MARKUP = ["<video>", "<audio>", "</Subtitle>", "<Subtitle>", "[INST]", "[/INST]", "<<SYS>>", "###Assistant:", "<s>", "</s>"]
CLOCK = st.builds(
    lambda h, m, s, ms, sep: f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}",
    st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 999), st.sampled_from([",", "."]),
)  # fmt: skip
LINE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(MARKUP + ["", "1", "WEBVTT", "-->", "00:00:01,000 -->", "NOTE x"]),
    st.builds(lambda a, b, arrow: f"{a}{arrow}{b}", CLOCK, CLOCK, st.sampled_from([" --> ", "->", " —> ", "-->"])),
)
SUBTITLE_TEXT = st.lists(LINE, max_size=30).map("\n".join)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20) | st.sampled_from(MARKUP),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["start", "end", "text", "x"]), children, max_size=4),
    max_leaves=20,
)


def assert_valid(spans: list) -> None:
    assert isinstance(spans, list) and all(isinstance(s, Span) for s in spans)
    for span in spans:
        assert isinstance(span.start, float) and isinstance(span.end, float) and isinstance(span.text, str)


@FUZZ
@given(SUBTITLE_TEXT, st.sampled_from(["srt", "vtt"]))
def test_subtitle_text_gives_spans_or_a_named_error(text, kind):
    try:
        spans = parse_srt(text, "fuzz.srt") if kind == "srt" else parse_vtt("WEBVTT\n\n" + text, "fuzz.vtt")
    except SpanError as error:
        assert str(error).startswith(f"fuzz.{kind}")
    else:
        assert_valid(spans)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([".srt", ".vtt", ".json"]))
def test_random_bytes_in_a_subtitle_file_give_spans_or_a_named_error(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"random{suffix}"
    path.write_bytes(data)
    try:
        spans = load_spans(path)
    except SpanError as error:
        assert str(path) in str(error)
    else:
        assert_valid(spans)


@FUZZ
@given(st.binary(max_size=400))
def test_decoding_random_bytes_gives_text_or_could_not_decode(data):
    try:
        text, encoding = decode_text(data, "fuzz.srt")
    except SpanError as error:
        assert "fuzz.srt" in str(error)
    else:
        assert isinstance(text, str) and "\x00" not in text and encoding


@FUZZ
@given(JSON_VALUE)
def test_random_json_structures_give_spans_or_a_named_error(value):
    text = json.dumps(value)
    try:
        spans = parse_json_spans(text, "fuzz.json")
    except SpanError as error:
        assert str(error).startswith("fuzz.json")
    else:
        assert_valid(spans)


# ---------------------------------------------------------------------------------------------------------------
# Chat-template content parts


@pytest.fixture(scope="module")
def processor():
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    return MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(),
                                               build_tiny_qformer_tokenizer())  # fmt: skip


MARKED_TEXT = st.lists(st.one_of(st.text(max_size=15), st.sampled_from(MARKUP + ["<|im_start|>", "<</SYS>>", "<unk>"])),
                       max_size=8).map("".join)  # fmt: skip
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": MARKED_TEXT}),
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "audio", "other", 3])}),
    st.dictionaries(st.sampled_from(["type", "text", "x"]), JSON_VALUE, max_size=3),
    JSON_VALUE,
)
MESSAGE = st.fixed_dictionaries({
    "role": st.sampled_from(["user", "system", "assistant", "tool", "", None]),
    "content": st.one_of(MARKED_TEXT, st.lists(PART, max_size=4), JSON_VALUE),
})  # fmt: skip


@FUZZ
@given(st.lists(MESSAGE, max_size=4))
def test_random_messages_render_a_prompt_free_of_data_markup_or_fail_clearly(processor, messages):
    conversation = [{"role": "user", "content": [{"type": "video", "video": np.zeros((1, 8, 8, 3), np.uint8)}]}, *messages]
    try:
        prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    except (ValueError, TypeError) as error:
        assert str(error)  # a message, never a bare KeyError / AttributeError / IndexError
        return
    assert isinstance(prompt, str)
    # The template writes exactly one video placeholder; data text can add none.
    assert prompt.count(processor.video_token) == 1 and processor.audio_token not in prompt
