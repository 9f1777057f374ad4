"""Class E: values that used to be read as something else without a word are refused or noted."""

from __future__ import annotations

import json

import pytest
import torch

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


@pytest.mark.parametrize("name", ["pixel_values", "audio_values"])
def test_finite_but_huge_features_are_refused_by_sample(tiny_model, make_batch, name):
    """Before: 1e30 gave non-finite logits without an error."""
    batch = make_batch(tiny_model.config, frames=[4, 3], utterances=[2, 1], audio_clips=[3, 2])
    tensor = batch[name].clone()
    tensor[1].view(-1)[3] = 1e30
    with pytest.raises(ValueError, match=rf"`{name}` holds values beyond \+-10000 \(sample\(s\) \[1\]\)"), torch.no_grad():
        tiny_model(**dict(batch, **{name: tensor}))
