"""MicroEmo's frame encoder and LLM, assembled from transformers-format checkpoints, compute what the original
InstructBLIP and LLaMA compute with the same weights (random weights, tiny sizes, CPU, float32).

The references are transformers' own `InstructBlipForConditionalGeneration` and `LlamaForCausalLM`: their weights
are written with `save_pretrained` (the released checkpoints' format) and read back only through
`training/convert_checkpoints.py`.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
)

from microemo.processing.batching import TIMESTAMP_TEMPLATE
from microemo.processing.tiny_tokenizers import build_tiny_qformer_tokenizer
from microemo.training.convert_checkpoints import assemble_model

# float32 on CPU: the same operations in the same order agree to rounding; 1e-5 leaves room for SDPA vs eager.
ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def instructblip(tmp_path_factory, fidelity_config):
    """A random InstructBLIP with the tiny preset's vision and Q-Former sizes, saved as the Hub checkpoint is."""
    vision = fidelity_config.vision_config.to_dict()
    qformer = fidelity_config.qformer_config.to_dict()
    config = InstructBlipConfig(
        vision_config=vision,
        qformer_config=qformer,
        text_config=dict(model_type="llama", vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2),  # fmt: skip
        num_query_tokens=fidelity_config.num_query_tokens,
    )
    torch.manual_seed(11)
    reference = InstructBlipForConditionalGeneration(config).eval()
    with torch.no_grad():  # zero-initialised in transformers; random here so that a dropped tensor shows
        reference.query_tokens.normal_()
    folder = tmp_path_factory.mktemp("instructblip")
    reference.save_pretrained(folder)
    return reference, folder


def timestamp_ids(count: int, fps: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The image Q-Former's instruction: one timestamp sentence per frame, tokenised as the processor does."""
    tokenizer = build_tiny_qformer_tokenizer()
    texts = [TIMESTAMP_TEMPLATE.format(t=round(index / fps, 1)) for index in range(count)]
    encoded = tokenizer(texts, padding="longest", return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def test_instructblip_vision_and_qformer_match_the_reference(instructblip, fidelity_config, record_property):
    reference, folder = instructblip
    model, report = assemble_model(fidelity_config, instructblip=folder)
    assert not report.reports[0].unexpected, report.summary()
    torch.manual_seed(0)
    size = fidelity_config.vision_config.image_size
    pixel_values = torch.randn(5, 3, size, size)
    ids, mask = timestamp_ids(5)
    mask[3, -2:] = 0  # a padded instruction: the mask must reach the Q-Former's text self-attention

    with torch.no_grad():
        expected = reference.get_image_features(pixel_values, qformer_input_ids=ids, qformer_attention_mask=mask)
        vision = model.model.vision_model(pixel_values=pixel_values).last_hidden_state
        # MicroEmo's global path: no clue masks (so no local pass), frame position embedding removed afterwards.
        positions = torch.arange(5)
        frames = model.model.get_frame_features(pixel_values, ids, mask, clue_masks=None, frame_positions=positions)
        frames = frames - model.model.frame_position_embedding(positions)[:, None, :]

    torch.testing.assert_close(vision, expected.vision_outputs.last_hidden_state, atol=ATOL, rtol=RTOL)
    queries = expected.qformer_outputs.last_hidden_state[:, : fidelity_config.num_query_tokens]
    torch.testing.assert_close(frames, queries, atol=ATOL, rtol=RTOL)
    record_property("max_abs_diff_vision", float((vision - expected.vision_outputs.last_hidden_state).abs().max()))
    record_property("max_abs_diff_qformer", float((frames - queries).abs().max()))


def test_instructblip_global_path_is_unchanged_by_a_closed_fusion_gate(instructblip, fidelity_config):
    """With the local clue path on (faces present) and the fusion gate at its initial zero, the frame tokens are
    still InstructBLIP's."""
    reference, folder = instructblip
    model, _ = assemble_model(fidelity_config, instructblip=folder)
    assert torch.count_nonzero(model.model.local_clue_attention.fusion_gate) == 0
    size, patches = fidelity_config.vision_config.image_size, fidelity_config.num_patches
    torch.manual_seed(1)
    pixel_values = torch.randn(3, 3, size, size)
    ids, mask = timestamp_ids(3)
    clue_masks = torch.zeros(3, 2, patches, dtype=torch.bool)
    clue_masks[:, 0, :6] = True
    clue_masks[:, 1, 20:30] = True
    with torch.no_grad():
        expected = reference.get_image_features(pixel_values, qformer_input_ids=ids, qformer_attention_mask=mask)
        frames = model.model.get_frame_features(pixel_values, ids, mask, clue_masks, torch.zeros(3, dtype=torch.long))
        frames = frames - model.model.frame_position_embedding.weight[0]
    queries = expected.qformer_outputs.last_hidden_state[:, : fidelity_config.num_query_tokens]
    torch.testing.assert_close(frames, queries, atol=ATOL, rtol=RTOL)


@pytest.fixture(scope="module")
def llama(tmp_path_factory, fidelity_config):
    """A random LLaMA with the tiny preset's sizes and a vocabulary two rows short (no `<video>`, `<audio>`)."""
    text = fidelity_config.text_config.to_dict()
    keep = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "max_position_embeddings", "rms_norm_eps", "rope_parameters", "pad_token_id", "bos_token_id",
            "eos_token_id")  # fmt: skip
    config = LlamaConfig(**{key: text[key] for key in keep if key in text}, vocab_size=text["vocab_size"] - 2)
    torch.manual_seed(12)
    reference = LlamaForCausalLM(config).eval()
    folder = tmp_path_factory.mktemp("llama")
    reference.save_pretrained(folder)
    return reference, folder


def test_llama_text_logits_match_the_reference_including_the_two_new_rows(llama, fidelity_config, record_property):
    reference, folder = llama
    model, report = assemble_model(fidelity_config, language_model=folder)
    assert not report.reports[0].unexpected, report.summary()
    old_vocab = reference.config.vocab_size
    torch.manual_seed(2)
    input_ids = torch.randint(3, old_vocab, (2, 17))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :4] = 0  # left padding, as batched generation has
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        got = model(input_ids=input_ids, attention_mask=attention_mask).logits

    assert got.shape[-1] == old_vocab + 2
    torch.testing.assert_close(got[..., :old_vocab], expected.logits, atol=ATOL, rtol=RTOL)
    # The two added rows of the output head are the mean of LLaMA's rows: their logits are the mean logit.
    head_mean = reference.lm_head.weight.mean(dim=0)
    new_logits = expected.hidden_states[-1] @ head_mean
    torch.testing.assert_close(got[..., old_vocab:], new_logits[..., None].expand(-1, -1, 2), atol=ATOL, rtol=RTOL)
    record_property("max_abs_diff_logits", float((got[..., :old_vocab] - expected.logits).abs().max()))
    # The added input rows are the mean embedding, so a `<video>` id embeds as the mean of LLaMA's table.
    table = model.get_input_embeddings().weight
    torch.testing.assert_close(table[old_vocab:], reference.get_input_embeddings().weight.mean(0).expand(2, -1))
