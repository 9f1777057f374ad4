"""Class E: values that used to be read as something else without a word are refused or noted."""

from __future__ import annotations

import json

import pytest

from microemo.processing.utterances import SpanError, load_spans, parse_json_spans


@pytest.mark.parametrize("start", [True, False, "1.0", None, [1], {"s": 1}])
def test_json_subtitle_times_must_be_numbers_not_booleans_or_strings(start):
    """Before: `"start": true` became 1.0 s."""
    with pytest.raises(SpanError, match=r"subs\.json: item 0: start/end must be numbers \(seconds\), got start="):
        parse_json_spans(json.dumps([{"start": start, "end": 2.0, "text": "hi"}]), "subs.json")


@pytest.mark.parametrize("text", [{"a": 1}, ["a", "b"], 3, True])
def test_json_subtitle_text_must_be_a_string(tmp_path, text):
    """Before: a dict `text` reached the prompt as its Python repr."""
    path = tmp_path / "subs.json"
    path.write_text(json.dumps({"utterances": [{"start": 0, "end": 1, "text": text}]}))
    with pytest.raises(SpanError, match=r"subs\.json: item 0: 'text' must be a string"):
        load_spans(path)


def test_json_subtitle_null_or_missing_text_is_empty():
    spans = parse_json_spans('[{"start": 0, "end": 1, "text": null}, {"start": 1, "end": 2}]', "subs.json")
    assert [s.text for s in spans] == ["", ""]
