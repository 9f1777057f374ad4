"""Bad tensors given to the model: non-finite values, wrong types and dtypes, a prompt longer than the context."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def batch(tiny_model, make_batch):
    return make_batch(tiny_model.config, frames=[4, 3], utterances=[2, 1], audio_clips=[3, 0])


@pytest.mark.parametrize("name", ["pixel_values", "audio_values"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_are_refused_by_sample(tiny_model, batch, name, value):
    """Before: NaN logits everywhere and generate() returning token 0 without a word."""
    tensor = batch[name].clone()
    tensor[0].view(-1)[5] = value
    with pytest.raises(ValueError, match=rf"`{name}` holds NaN or infinite values \(sample\(s\) \[0\]\)"), torch.no_grad():
        tiny_model(**dict(batch, **{name: tensor}))
    with pytest.raises(ValueError, match="NaN or infinite"), torch.no_grad():
        tiny_model.generate(**dict(batch, **{name: tensor}), max_new_tokens=2)


def test_float_input_ids_are_refused(tiny_model, batch):
    with pytest.raises(ValueError, match=r"`input_ids` has dtype torch.float32, expected integer token ids"):
        tiny_model(**dict(batch, input_ids=batch["input_ids"].float()))


def test_numpy_arrays_are_refused_with_the_fix(tiny_model, batch):
    with pytest.raises(TypeError, match=r"`pixel_values` is a numpy.ndarray, expected a torch.Tensor.*return_tensors='pt'"):
        tiny_model(**dict(batch, pixel_values=batch["pixel_values"].numpy()))


def test_a_prompt_longer_than_the_context_is_refused(tiny_model, batch):
    """Before: 80,095 ids against max_position_embeddings 2048 passed with no warning."""
    context = tiny_model.config.text_config.max_position_embeddings
    long_ids = torch.cat([torch.full((2, context), 15), batch["input_ids"]], dim=1)
    mask = torch.ones_like(long_ids)
    with pytest.raises(ValueError, match=rf"holds {long_ids.shape[1]} tokens, more than the language model's context \(max_position_embeddings={context}\)"):
        tiny_model(**dict(batch, input_ids=long_ids, attention_mask=mask))


def test_the_checks_leave_good_input_alone(tiny_model, batch):
    with torch.no_grad():
        assert torch.isfinite(tiny_model(**batch).logits).all()
    assert np.isfinite(batch["pixel_values"].numpy()).all()
