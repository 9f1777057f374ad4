"""Class D: an error names the input and what was expected (before: bare RecursionError, TypeError, IndexError,
KeyError, or a message about something else)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microemo.processing.utterances import SpanError, as_spans, decode_text, load_spans

CUES = "1\n00:00:01,000 --> 00:00:02,000\nHello there.\n\n2\n00:00:03,000 --> 00:00:04,500\nBye.\n"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_read(tmp_path, encoding):
    """Before: 'no SRT cue found' (the bytes are valid UTF-8, NULs and all)."""
    path = tmp_path / "nobom.srt"
    path.write_bytes(CUES.encode(encoding))
    assert [s.text for s in load_spans(path)] == ["Hello there.", "Bye."]


def test_binary_bytes_are_could_not_decode_naming_the_file(tmp_path):
    path = tmp_path / "binary.srt"
    path.write_bytes(b"\x00\x01\x02\x00\x00\x07\xff\x00\x10" * 50)
    with pytest.raises(SpanError, match=r"binary\.srt: could not decode"):
        load_spans(path)


def test_utf16_shaped_bytes_that_do_not_decode_are_named():
    data = "ab".encode("utf-16-le") * 50 + b"\x00\xd8\x00\x00"  # a lone high surrogate
    with pytest.raises(SpanError, match=r"subs\.srt: could not decode: it looks like UTF-16-LE"):
        decode_text(data, "subs.srt")


def test_json_nested_100k_deep_is_a_named_error(tmp_path):
    """Before: a bare RecursionError with no file named."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpanError, match=r"deep\.json: JSON nested too deeply"):
        load_spans(path)


@pytest.mark.parametrize("value", [5, 2.5, "clip.srt ", b"bytes", {"start": 1, "end": 2}, True])
def test_utterances_that_are_not_a_list_of_spans_are_named(value):
    """Before: `utterances: 5` gave a bare TypeError."""
    with pytest.raises(SpanError, match=r"sample 0 utterances: expected a subtitle file path or a list of spans"):
        as_spans(value, "sample 0 utterances")


@pytest.mark.parametrize("item", [(1, "x"), ("0", 1), (None, 2), (0, 1, 5)])
def test_a_span_tuple_with_wrong_types_names_the_item(item):
    with pytest.raises(SpanError, match=r"spans: item 0"):
        as_spans([item], "spans")


@pytest.mark.parametrize("bad_id", [-1, 10**6])
def test_an_input_id_outside_the_vocabulary_is_named(tiny_model, make_batch, bad_id):
    """Before: a bare IndexError from the embedding."""
    batch = make_batch(tiny_model.config, frames=[2], utterances=[1], audio_clips=[1])
    ids = batch["input_ids"].clone()
    ids[0, -1] = bad_id
    vocabulary = tiny_model.get_input_embeddings().num_embeddings
    with pytest.raises(ValueError, match=rf"`input_ids` holds the id {bad_id}, outside the vocabulary \[0, {vocabulary}\)"):
        with torch.no_grad():
            tiny_model(**dict(batch, input_ids=ids))


@pytest.mark.parametrize("video", [123, 1.5, True, b"clip.mp4", {"path": "clip.mp4"}, np.float32(2.0), "  "])
def test_a_video_that_is_not_a_path_or_frames_is_named_as_a_video(video):
    """Before: `path` 123 talked about frame shapes."""
    from microemo.processing.input_checks import check_video_source

    with pytest.raises((TypeError, ValueError), match=r"sample 0: the video .*expected a file path, a DecodedVideo, or frames"):
        check_video_source(video, "sample 0")


def test_a_batch_of_frames_in_one_videos_place_is_named():
    """Before: a 5-D frame array blamed `landmarks`."""
    from microemo.processing.input_checks import check_video_frames

    with pytest.raises(ValueError, match=r"conversation 0: frames of shape \(1, 2, 8, 8, 3\) are a batch of videos"):
        check_video_frames(np.zeros((1, 2, 8, 8, 3)), "conversation 0")


@pytest.fixture(scope="module")
def processor():
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    return MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(),
                                               build_tiny_qformer_tokenizer())  # fmt: skip


def test_content_given_as_a_dict_is_named(processor):
    """Before: "a content part needs a 'type', got 'type'"."""
    conversation = [{"role": "user", "content": {"type": "text", "text": "hi"}}]
    with pytest.raises(ValueError, match=r"conversation 0, message 0: content must be a string or a list of parts"):
        processor.apply_chat_template(conversation)


@pytest.mark.parametrize("video", [123, None])
def test_a_conversation_video_that_is_not_a_video_is_named(processor, video):
    """Before: `pipe(5)` / a video path of 123 talked about frame shapes, `pipe(None)` only about part keys."""
    conversation = processor.emer_conversation(video, question="Why?")
    with pytest.raises((TypeError, ValueError), match=r"conversation 0: (the video is int 123|no video given)"):
        processor.apply_chat_template(conversation, tokenize=True)


def test_a_batch_of_frames_in_a_conversations_video_part_is_named_not_blamed_on_landmarks(processor):
    frames = np.zeros((1, 2, 16, 16, 3), np.uint8)
    conversation = [{"role": "user", "content": [{"type": "video", "video": frames,
                                                  "landmarks": np.full((2, 478, 3), np.nan, np.float32)}]}]  # fmt: skip
    with pytest.raises(ValueError, match=r"conversation 0: frames of shape \(1, 2, 16, 16, 3\) are a batch of videos"):
        processor.apply_chat_template(conversation, tokenize=True)


def renamed_video_token_tokenizer():
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer

    tokenizer = build_tiny_llm_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<vid>"]})
    tokenizer.video_token = "<vid>"
    return tokenizer


def test_a_tokenizer_whose_video_token_was_renamed_is_refused_at_load():
    """Before: it loaded, then failed on the first prompt blaming `text`."""
    from microemo.processing.input_checks import check_placeholder_tokens
    from microemo.processing.processing_microemo import CHAT_TEMPLATE

    with pytest.raises(ValueError, match=r"video_token is '<vid>', but the chat template writes '<video>'"):
        check_placeholder_tokens(renamed_video_token_tokenizer(), CHAT_TEMPLATE, {"video_token": "<video>", "audio_token": "<audio>"})


def test_a_placeholder_that_is_not_a_single_token_is_refused_at_load():
    from microemo.processing.input_checks import check_placeholder_tokens
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer

    tokenizer = build_tiny_llm_tokenizer()
    tokenizer.video_token = "video"  # in the vocabulary, but not a token of its own in running text
    with pytest.raises(ValueError, match=r"(splits its video_token 'video' into pieces|has no video token)"):
        check_placeholder_tokens(tokenizer, None, {"video_token": "<video>"})


def test_the_shipped_tokenizer_and_template_pass_the_load_check():
    from microemo.processing.input_checks import check_placeholder_tokens
    from microemo.processing.processing_microemo import CHAT_TEMPLATE
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer

    check_placeholder_tokens(build_tiny_llm_tokenizer(), CHAT_TEMPLATE, {"video_token": "<video>", "audio_token": "<audio>"})
