"""MicroEmo behaves like a model of transformers itself (issue 18, model items 1-9).

transformers states its model contract as common test mixins; these are our own checks of the points where
MicroEmo used to differ, on the tiny random model. Numbers in the test names' docstrings refer to the issue.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Blip2QFormerConfig, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPooling

from microemo.modeling_microemo import (
    MicroEmoAudioQFormerConfig,
    MicroEmoConfig,
    MicroEmoForConditionalGeneration,
    MicroEmoVideoQFormerConfig,
)
from microemo.presets import tiny_random_config


@pytest.fixture(scope="module")
def model() -> MicroEmoForConditionalGeneration:
    torch.manual_seed(0)
    return MicroEmoForConditionalGeneration(tiny_random_config()).eval()


@pytest.fixture
def batch(model, make_batch):
    # Two samples: different frame / utterance counts, the second without audio.
    return make_batch(model.config, frames=[3, 2], utterances=[2, 1], audio_clips=[2, 0], seed=3)


# ---------------------------------------------------------------- 1. from_pretrained(output_loading_info=True)
def test_loading_info_is_returned_and_the_frozen_parts_stay_frozen(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = MicroEmoForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, tuple) and len(loaded) == 2
    reloaded, info = loaded
    assert isinstance(reloaded, MicroEmoForConditionalGeneration)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not any(p.requires_grad for p in reloaded.model.vision_model.parameters())
    assert all(p.requires_grad for p in reloaded.model.video_qformer.parameters())


# ---------------------------------------------------------------- 2. return_dict=False
def test_return_dict_false_gives_tuples_led_by_logits_and_last_hidden_state(model, batch):
    with torch.no_grad():
        as_dict = model(**batch)
        as_tuple = model(**batch, return_dict=False)
        backbone = model.model(**{k: v for k, v in batch.items() if k != "labels"}, return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(backbone, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.logits)
    torch.testing.assert_close(backbone[0], model.model(**batch).last_hidden_state)


def test_config_return_dict_false_is_honoured(batch):
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(tiny_random_config(return_dict=False)).eval()
    with torch.no_grad():
        assert isinstance(model(**batch), tuple)


# ---------------------------------------------------------------- 3. the cache, under either name, is used
@pytest.mark.parametrize("backbone", [False, True], ids=["with-head", "backbone"])
@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_a_cache_under_either_name_continues_exactly_like_one_forward(model, batch, name, backbone):
    module = model.model if backbone else model

    def result(output):
        return output.last_hidden_state if backbone else output.logits

    batch = {k: v for k, v in batch.items() if k != "labels"}
    new = 3  # text tokens fed after the cached prefix
    with torch.no_grad():
        whole = result(module(**batch))
        prefix = dict(batch, input_ids=batch["input_ids"][:, :-new], attention_mask=batch["attention_mask"][:, :-new])
        cache = module(**prefix, use_cache=True).cache
        assert isinstance(cache, DynamicCache) and cache.get_seq_length() == prefix["input_ids"].shape[1]
        rest = {"input_ids": batch["input_ids"][:, -new:], "attention_mask": batch["attention_mask"]}
        if name == "past_key_values":
            with pytest.warns(FutureWarning, match="past_key_values"):
                continued = result(module(**rest, past_key_values=cache, use_cache=True))
        else:
            continued = result(module(**rest, cache=cache, use_cache=True))
        # Without the cache the same three tokens see no video, audio or prompt: a dropped cache shows.
        alone = result(module(**rest))
    torch.testing.assert_close(continued, whole[:, -new:], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(alone, whole[:, -new:], atol=1e-3)


# ---------------------------------------------------------------- 4. feature getters
def test_get_video_features_returns_pooled_tokens_per_sample(model, batch):
    config = model.config
    with torch.no_grad():
        out = model.get_video_features(
            batch["pixel_values"], batch["frame_mask"], batch["qformer_input_ids"], batch["qformer_attention_mask"],
            batch["clue_masks"], batch["utterance_frame_mask"],
        )  # fmt: skip
        full = model(**batch)
    assert isinstance(out, BaseModelOutputWithPooling)
    assert [tuple(t.shape) for t in out.pooler_output] == [
        (config.num_video_tokens(2), config.text_config.hidden_size),
        (config.num_video_tokens(1), config.text_config.hidden_size),
    ]
    # The frame encoder's output, per sample and frame: padding frames are zero.
    assert out.last_hidden_state.shape == (2, 3, 1 + config.num_patches, config.vision_config.hidden_size)
    assert not out.last_hidden_state[1, 2].any()
    torch.testing.assert_close(torch.cat(out.pooler_output), full.video_embeds)


def test_get_audio_features_returns_pooled_tokens_per_sample_and_none_without_audio(model, batch):
    config = model.config
    with torch.no_grad():
        out = model.get_audio_features(batch["audio_values"], batch["audio_clip_mask"])
    assert isinstance(out, BaseModelOutputWithPooling)
    assert [tuple(t.shape) for t in out.pooler_output] == [
        (config.num_audio_query_tokens, config.text_config.hidden_size),
        (0, config.text_config.hidden_size),
    ]
    assert out.last_hidden_state.shape == (2, 2, config.audio_output_size)
    assert not out.last_hidden_state[1].any()


def test_feature_getters_honour_return_dict_and_output_hidden_states(model, batch):
    layers = model.config.vision_config.num_hidden_layers
    with torch.no_grad():
        as_tuple = model.get_video_features(batch["pixel_values"], batch["frame_mask"], return_dict=False)
        with_states = model.get_video_features(batch["pixel_values"], batch["frame_mask"], output_hidden_states=True)
        plain = model.get_video_features(batch["pixel_values"], batch["frame_mask"])
        audio_tuple = model.get_audio_features(batch["audio_values"], batch["audio_clip_mask"], return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(audio_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], plain.last_hidden_state)
    assert plain.hidden_states is None
    assert len(with_states.hidden_states) == layers + 1
    # Five real frames in the batch reach the encoder.
    assert with_states.hidden_states[-1].shape[0] == 5
    torch.testing.assert_close(torch.cat(with_states.pooler_output), torch.cat(plain.pooler_output))


def test_feature_getters_refuse_unknown_keywords(model, batch):
    with pytest.raises(TypeError, match=r"get_video_features: unexpected keyword argument\(s\) \['fps'\]"):
        model.get_video_features(batch["pixel_values"], fps=2)
    with pytest.raises(TypeError, match=r"get_audio_features: unexpected keyword argument\(s\) \['sampling_rate'\]"):
        model.get_audio_features(batch["audio_values"], sampling_rate=16000)


# ---------------------------------------------------------------- 5. inputs_embeds without input_ids
def test_inputs_embeds_alone_find_their_placeholders(model, batch):
    embeds = model.get_input_embeddings()(batch["input_ids"])
    with torch.no_grad():
        from_ids = model(**batch)
        from_embeds = model(**{k: v for k, v in batch.items() if k != "input_ids"}, inputs_embeds=embeds)
    torch.testing.assert_close(from_embeds.logits, from_ids.logits)
    torch.testing.assert_close(from_embeds.loss, from_ids.loss)


def test_generate_from_inputs_embeds_continues_like_generate_from_input_ids(model, batch):
    batch = {k: v for k, v in batch.items() if k != "labels"}
    embeds = model.get_input_embeddings()(batch["input_ids"])
    with torch.no_grad():
        from_ids = model.generate(**batch, max_new_tokens=3, do_sample=False)
        rest = {k: v for k, v in batch.items() if k != "input_ids"}
        from_embeds = model.generate(**rest, inputs_embeds=embeds, max_new_tokens=3, do_sample=False)
    # With inputs_embeds, generate returns only the new tokens.
    assert torch.equal(from_embeds, from_ids[:, batch["input_ids"].shape[1] :])


def test_inputs_embeds_with_a_wrong_placeholder_count_are_refused(model, batch):
    embeds = model.get_input_embeddings()(batch["input_ids"])
    embeds[0, 1] = embeds[0, 0]  # one video placeholder of sample 0 becomes an ordinary token
    with pytest.raises(ValueError, match=r"`inputs_embeds` holds .* video placeholder"):
        with torch.no_grad():
            model(**{k: v for k, v in batch.items() if k != "input_ids"}, inputs_embeds=embeds)


# ---------------------------------------------------------------- 6. RoPE scaling and the input length
def rope_model(max_positions: int, rope_parameters: dict | None) -> MicroEmoForConditionalGeneration:
    text_config = tiny_random_config().text_config.to_dict()
    text_config.update(max_position_embeddings=max_positions)
    if rope_parameters is not None:
        text_config["rope_parameters"] = {"rope_theta": 10000.0, **rope_parameters}
    torch.manual_seed(0)
    return MicroEmoForConditionalGeneration(tiny_random_config(text_config=text_config)).eval()


def test_linear_rope_scaling_extends_the_accepted_input_length():
    scaled = rope_model(16, {"rope_type": "linear", "factor": 4.0})
    plain = rope_model(16, None)
    ids = torch.full((1, 40), 11, dtype=torch.long)
    with torch.no_grad():
        assert scaled(input_ids=ids).logits.shape[1] == 40
        with pytest.raises(ValueError, match=r"40 tokens.*context \(max_position_embeddings=16\)"):
            plain(input_ids=ids)
        with pytest.raises(ValueError, match=r"65 tokens.*context \(64: 16 positions with linear RoPE scaling x4\)"):
            scaled(input_ids=torch.full((1, 65), 11, dtype=torch.long))


def test_rope_scaling_uses_the_original_length_when_the_config_names_one():
    model = rope_model(32, {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 24})
    with torch.no_grad():
        assert model(input_ids=torch.full((1, 48), 11, dtype=torch.long)).logits.shape[1] == 48
        with pytest.raises(ValueError, match=r"49 tokens.*context \(48: 24 positions with yarn RoPE scaling x2\)"):
            model(input_ids=torch.full((1, 49), 11, dtype=torch.long))


# ---------------------------------------------------------------- 7. encoder outputs for output_hidden_states users
def test_outputs_carry_the_encoders_outputs_with_their_hidden_states(model, batch):
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    config = model.config
    assert len(out.hidden_states) == config.text_config.num_hidden_layers + 1
    assert len(out.video_outputs.hidden_states) == config.vision_config.num_hidden_layers + 1
    torch.testing.assert_close(torch.cat(out.video_outputs.pooler_output), out.video_embeds)
    torch.testing.assert_close(torch.cat(out.audio_outputs.pooler_output), out.audio_embeds)
    backbone = model.model(**{k: v for k, v in batch.items() if k != "labels"})
    assert backbone.video_outputs is not None and backbone.audio_outputs is not None


def test_text_only_output_has_no_encoder_outputs(model):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 10, 11, 12]]))
    assert out.video_outputs is None and out.audio_outputs is None


# ---------------------------------------------------------------- 8. the temporal Q-Formers' own config classes
def test_temporal_qformer_configs_load_their_own_sub_config_from_a_checkpoint(tmp_path):
    config = tiny_random_config(
        qformer_config=dict(tiny_random_config().qformer_config.to_dict(), num_hidden_layers=3),
        video_qformer_config=dict(hidden_size=40, num_attention_heads=4, intermediate_size=64),
        audio_qformer_config=dict(hidden_size=24, num_attention_heads=4, intermediate_size=64),
    )
    config.save_pretrained(tmp_path)
    video = MicroEmoVideoQFormerConfig.from_pretrained(tmp_path)
    audio = MicroEmoAudioQFormerConfig.from_pretrained(tmp_path)
    assert (video.num_hidden_layers, video.hidden_size, video.cross_attention_frequency) == (2, 40, 1)
    assert (audio.num_hidden_layers, audio.hidden_size, audio.encoder_hidden_size) == (2, 24, config.audio_output_size)
    # The image Q-Former keeps its own key: the generic class still finds the 3-layer image Q-Former.
    assert Blip2QFormerConfig.from_pretrained(tmp_path).num_hidden_layers == 3


def test_a_config_saved_with_the_generic_qformer_type_still_loads(tmp_path):
    tiny_random_config().save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key in ("video_qformer_config", "audio_qformer_config"):
        saved[key]["model_type"] = "blip_2_qformer"  # as checkpoints written before the own classes
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = MicroEmoConfig.from_pretrained(tmp_path)
    assert isinstance(config.video_qformer_config, MicroEmoVideoQFormerConfig)
    assert config.video_qformer_config.num_hidden_layers == 2


# ---------------------------------------------------------------- 9. tied weights and the tensor-parallel plan
@pytest.mark.parametrize("tie", [False, True])
def test_the_tp_plan_shards_the_head_and_the_embedding_together(tie):
    text_config = dict(tiny_random_config().text_config.to_dict(), tie_word_embeddings=tie)
    model = MicroEmoForConditionalGeneration(tiny_random_config(text_config=text_config, tie_word_embeddings=tie))
    plan = model.tp_plan
    assert ("lm_head" in plan) == ("model.language_model.embed_tokens" in plan)
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tie
