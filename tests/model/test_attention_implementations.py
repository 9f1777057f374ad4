"""`attn_implementation="sdpa"` and `"eager"` both load and run, and agree."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.modeling_microemo.imagebind_audio import ImageBindAudioBlock, ImageBindAudioConfig


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_imagebind_attention_equals_torch_multihead_attention(implementation):
    """The audio block computes nn.MultiheadAttention(add_bias_kv=True) on its own parameters, as ImageBind does."""
    torch.manual_seed(0)
    config = ImageBindAudioConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64)
    config._attn_implementation = implementation
    block = ImageBindAudioBlock(config, drop_path_rate=0.0).eval()
    nn.init.normal_(block.attn.bias_k)
    nn.init.normal_(block.attn.bias_v)
    hidden = torch.randn(3, 7, 32)
    expected = block.attn(hidden, hidden, hidden, need_weights=False)[0]
    torch.testing.assert_close(block.attention(hidden), expected, atol=1e-5, rtol=1e-5)


def test_sdpa_and_eager_load_and_give_the_same_logits(tiny_model, make_batch, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    batch = make_batch(tiny_model.config, frames=(4, 3), utterances=(2, 0), audio_clips=(3, 0))
    logits = {}
    for implementation in ("eager", "sdpa"):
        model = MicroEmoForConditionalGeneration.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        assert model.config.audio_config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = model(**batch).logits
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(logits["sdpa"][mask], logits["eager"][mask], atol=1e-4, rtol=1e-4)
