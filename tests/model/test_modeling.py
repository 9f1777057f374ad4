"""The paper's claims about the architecture, checked on a tiny random MicroEmo."""

from __future__ import annotations

import pytest
import torch

from microemo.modeling_microemo.modeling_microemo import MicroEmoLocalClueAttention


def video_token_count(config, utterances: int) -> int:
    return config.num_video_query_tokens * (1 + utterances)


@pytest.mark.parametrize("frames", [1, 3, 16])
@pytest.mark.parametrize("utterances", [0, 1, 3])
@pytest.mark.parametrize("audio_clips", [0, 8])
def test_output_shapes(tiny_model, make_batch, frames, utterances, audio_clips):
    config = tiny_model.config
    utterances = min(utterances, frames)
    batch = make_batch(config, frames=[frames], utterances=[utterances], audio_clips=[audio_clips])
    with torch.no_grad():
        out = tiny_model(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, config.text_config.vocab_size)
    assert out.video_embeds.shape == (video_token_count(config, utterances), config.text_config.hidden_size)
    expected_audio = config.num_audio_query_tokens if audio_clips else 0
    assert out.audio_embeds.shape == (expected_audio, config.text_config.hidden_size)
    assert torch.isfinite(out.logits).all()


def test_video_tokens_are_32_per_window_and_match_placeholders(make_model, make_batch):
    model = make_model(num_video_query_tokens=32)
    batch = make_batch(model.config, frames=[6], utterances=[3], audio_clips=[2])
    with torch.no_grad():
        out = model(**batch)
    placeholders = int((batch["input_ids"] == model.config.video_token_id).sum())
    assert out.video_embeds.shape[0] == 32 * (1 + 3) == placeholders


def test_mixed_batch_equals_samples_alone(tiny_model, make_batch):
    """Padding frames, utterances and clips of one sample never leak into another's tokens."""
    config = tiny_model.config
    frames, utterances, clips = [1, 5, 3], [0, 3, 1], [3, 0, 8]
    batch = make_batch(config, frames=frames, utterances=utterances, audio_clips=clips, seed=1)
    with torch.no_grad():
        out = tiny_model(**batch)
    assert out.video_embeds.shape[0] == sum(video_token_count(config, u) for u in utterances)
    assert out.audio_embeds.shape[0] == 2 * config.num_audio_query_tokens

    video_parts, audio_parts = [], []
    for b, (t, u, c) in enumerate(zip(frames, utterances, clips, strict=True)):
        alone = make_batch(config, frames=[t], utterances=[u], audio_clips=[c])
        alone["pixel_values"] = batch["pixel_values"][b : b + 1, :t]
        alone["qformer_input_ids"] = batch["qformer_input_ids"][b : b + 1, :t]
        alone["audio_values"] = batch["audio_values"][b : b + 1, : max(c, 1)]
        with torch.no_grad():
            single = tiny_model(**alone)
        video_parts.append(single.video_embeds)
        audio_parts.append(single.audio_embeds)
    torch.testing.assert_close(out.video_embeds, torch.cat(video_parts), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.audio_embeds, torch.cat(audio_parts), rtol=1e-4, atol=1e-5)


def test_no_utterances_gives_only_the_global_video_tokens(tiny_model, make_batch):
    config = tiny_model.config
    batch = make_batch(config, frames=[4], utterances=[0])
    with torch.no_grad():
        without = tiny_model(**batch).video_embeds
        batch.pop("utterance_frame_mask")
        absent = tiny_model(**batch).video_embeds
    assert without.shape[0] == config.num_video_query_tokens
    torch.testing.assert_close(without, absent)


class TestLocalClueAttention:
    def setup_method(self):
        torch.manual_seed(0)
        self.attention = MicroEmoLocalClueAttention(hidden_size=16, num_heads=2, layer_norm_eps=1e-6, fusion_size=8).eval()
        self.features = torch.randn(1, 12, 16)
        self.masks = torch.zeros(1, 2, 12, dtype=torch.bool)
        self.masks[0, 0, [0, 1, 2]] = True  # region A
        self.masks[0, 1, [5, 6]] = True  # region B

    def run(self, features):
        with torch.no_grad():
            return self.attention(features, self.masks)

    def test_patch_outside_every_region_does_not_change_local_features(self):
        local, patch_mask = self.run(self.features)
        perturbed = self.features.clone()
        perturbed[0, 9] += torch.randn(16) * 3  # patch 9 lies in no region
        local_after, _ = self.run(perturbed)
        assert torch.equal(local, local_after)
        assert patch_mask[0].nonzero().flatten().tolist() == [0, 1, 2, 5, 6]
        assert torch.equal(local[0, 9], torch.zeros(16))

    def test_patch_inside_a_region_changes_only_its_region(self):
        local, _ = self.run(self.features)
        perturbed = self.features.clone()
        perturbed[0, 1] += torch.randn(16) * 3  # patch 1 lies in region A
        local_after, _ = self.run(perturbed)
        changed = (local - local_after).abs().amax(dim=-1)[0] > 1e-6
        assert changed[[0, 1, 2]].all()
        assert not changed[[5, 6]].any()


def test_fusion_gate_at_init_leaves_the_global_path_exact(tiny_model, make_batch):
    inner = tiny_model.model
    batch = make_batch(tiny_model.config, frames=[3], utterances=[1])
    pixels, ids = batch["pixel_values"][0], batch["qformer_input_ids"][0]
    masks = batch["clue_masks"][0]
    with torch.no_grad():
        fused = inner.get_frame_features(pixels, ids, None, masks)
        global_only = inner.get_frame_features(pixels, ids, None, None)
        assert torch.equal(fused, global_only)
        inner.local_clue_attention.fusion_gate.fill_(0.5)
        assert not torch.allclose(inner.get_frame_features(pixels, ids, None, masks), global_only)


def test_frame_without_face_uses_the_global_path_only(tiny_model, make_batch):
    inner = tiny_model.model
    batch = make_batch(tiny_model.config, frames=[3], utterances=[1])
    pixels, ids, masks = batch["pixel_values"][0], batch["qformer_input_ids"][0], batch["clue_masks"][0].clone()
    masks[1] = False  # no face found on frame 1
    with torch.no_grad():
        inner.local_clue_attention.fusion_gate.fill_(0.5)
        fused = inner.get_frame_features(pixels, ids, None, masks)
        global_only = inner.get_frame_features(pixels, ids, None, None)
    assert torch.equal(fused[1], global_only[1])
    assert not torch.allclose(fused[0], global_only[0])


def test_local_clue_attention_switch_removes_its_effect(make_model, make_batch):
    on, off = make_model(), make_model(use_local_clue_attention=False)
    assert off.model.local_clue_attention is None
    assert not any("local_clue" in name for name, _ in off.named_parameters())
    batch = make_batch(on.config, frames=[3], utterances=[1])
    other = dict(batch, clue_masks=torch.roll(batch["clue_masks"], shifts=7, dims=-1))
    with torch.no_grad():
        on.model.local_clue_attention.fusion_gate.fill_(0.5)
        assert not torch.allclose(on(**batch).logits, on(**other).logits)
        assert torch.equal(off(**batch).logits, off(**other).logits)


def test_utterance_windows_switch_removes_its_effect(make_model, make_batch):
    on, off = make_model(), make_model(use_utterance_windows=False)
    assert off.model.utterance_qformer is None
    assert not any("utterance" in name for name, _ in off.named_parameters())
    assert off.config.num_video_tokens(3) == off.config.num_video_query_tokens
    frames = 4
    one = make_batch(off.config, frames=[frames], utterances=[1])
    two = make_batch(off.config, frames=[frames], utterances=[2])
    two["input_ids"], two["attention_mask"] = one["input_ids"], one["attention_mask"]
    with torch.no_grad():
        assert torch.equal(off(**one).logits, off(**two).logits)
        with_windows = on(**make_batch(on.config, frames=[frames], utterances=[2])).video_embeds
    assert with_windows.shape[0] == 3 * on.config.num_video_query_tokens


def test_both_switches_off_is_the_baseline_row(make_model):
    baseline = make_model(use_local_clue_attention=False, use_utterance_windows=False)
    full = make_model()
    extra = {name.split(".")[1] for name, _ in full.named_parameters()} - {
        name.split(".")[1] for name, _ in baseline.named_parameters()
    }
    assert extra == {"local_clue_attention", "utterance_qformer", "utterance_query_tokens"}


def test_loss_is_finite_and_gradients_reach_exactly_the_trainable_modules(make_model, make_batch):
    model = make_model()
    model.train()
    assert not model.model.vision_model.training and not model.model.audio_encoder.training
    with torch.no_grad():
        model.model.local_clue_attention.fusion_gate.fill_(0.5)  # a zero gate passes no gradient to the local branch
    batch = make_batch(model.config, frames=[4, 2], utterances=[2, 1], audio_clips=[3, 0], answer=[30, 31, 32, 2])
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()

    last_qformer_layer = f"model.qformer.encoder.layer.{model.config.qformer_config.num_hidden_layers - 1}."
    frozen_prefixes = (
        "model.vision_model.",
        "model.audio_encoder.",
        "model.language_model.",
        "lm_head.",
        # the image Q-Former's last text feed-forward: only query outputs are kept, so it never reaches the loss
        last_qformer_layer + "intermediate.",
        last_qformer_layer + "output.",
    )
    for name, parameter in model.named_parameters():
        if name.startswith(frozen_prefixes):
            assert not parameter.requires_grad and parameter.grad is None, name
        else:
            assert parameter.requires_grad, name
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_only_the_answer_is_supervised(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, frames=[2], utterances=[1], answer=[40, 41, 2])
    with torch.no_grad():
        logits = tiny_model(**batch).logits
        loss = tiny_model(**batch).loss
    # The loss is the mean NLL of the 3 answer tokens, each predicted from the previous position.
    log_probs = logits[0, -4:-1].log_softmax(-1)
    expected = -log_probs[torch.arange(3), torch.tensor([40, 41, 2])].mean()
    torch.testing.assert_close(loss, expected)


def test_generate_with_cache_equals_generate_without(tiny_model, make_batch):
    batch = make_batch(tiny_model.config, frames=[4, 2], utterances=[2, 0], audio_clips=[3, 0])
    with_cache = tiny_model.generate(**batch, max_new_tokens=10, do_sample=False, use_cache=True)
    without = tiny_model.generate(**batch, max_new_tokens=10, do_sample=False, use_cache=False)
    assert with_cache.shape == (2, batch["input_ids"].shape[1] + 10)
    assert torch.equal(with_cache, without)


def test_half_precision_forward(make_model, make_batch):
    """Inputs arrive in float32 from the processor; a bfloat16 model casts them where they enter."""
    model = make_model().to(torch.bfloat16)
    batch = make_batch(model.config, frames=[3, 1], utterances=[1, 0], audio_clips=[2, 0])
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()


def test_every_trainable_parameter_gets_a_gradient_even_when_branches_are_skipped(make_model, make_batch):
    """DDP without find_unused_parameters needs a gradient for every trainable parameter in every step: a batch
    with no face, no utterance and no audio must still reach them (with zeros)."""
    model = make_model()
    model.train()
    batch = make_batch(model.config, frames=[2], utterances=[0], audio_clips=[0], answer=[30, 2])
    batch["clue_masks"] = torch.zeros_like(batch["clue_masks"])
    for key in ("audio_values", "audio_clip_mask"):
        batch.pop(key)
    out = model(**batch)
    out.loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert model.model.audio_qformer.layernorm.weight.grad.abs().sum() == 0  # touched, not trained


def test_peft_lora_with_modules_to_save_trains_what_the_paper_trains(make_model):
    peft = pytest.importorskip("peft")
    model = make_model()
    config = peft.LoraConfig(
        r=4, lora_alpha=4, target_modules=r".*language_model.*\.(q_proj|v_proj)",
        modules_to_save=list(model.trainable_module_names),
    )  # fmt: skip
    peft_model = peft.get_peft_model(model, config)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    # PEFT names a saved module's trainable copy `<module>.modules_to_save.default.<parameter>`.
    for module, parameter in (("model.query_tokens", "weight"), ("video_query_tokens", "weight"),
                              ("utterance_query_tokens", "weight"), ("audio_query_tokens", "weight"),
                              ("local_clue_attention", "fusion_gate"), ("local_clue_attention", "qkv.weight"),
                              ("video_projection", "weight"), ("q_proj", "lora_A.default.weight")):
        assert any(module in name and name.endswith(parameter) for name in trainable), (module, parameter)  # fmt: skip
    assert not any("vision_model" in name or "audio_encoder" in name for name in trainable)
    assert not any("language_model" in name and "lora_" not in name for name in trainable)


def test_generation_never_emits_a_placeholder(tiny_model, make_batch):
    """Even a model whose head prefers the placeholder ids generates plain tokens (and does not fail mid-way)."""
    config = tiny_model.config
    with torch.no_grad():
        tiny_model.lm_head.weight[config.audio_token_id] = 10 * tiny_model.lm_head.weight.abs().max()
    batch = make_batch(config, frames=[2], utterances=[1], audio_clips=[2])
    for use_cache in (True, False):
        generated = tiny_model.generate(**batch, max_new_tokens=4, do_sample=False, use_cache=use_cache)
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        assert not torch.isin(new_tokens, torch.tensor([config.video_token_id, config.audio_token_id])).any()
