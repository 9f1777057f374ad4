"""The ImageBind-style audio encoder and the option of a transformers audio encoder instead."""

from __future__ import annotations

import torch

from microemo.modeling_microemo import ImageBindAudioConfig, ImageBindAudioModel


def test_imagebind_huge_shapes_and_parameter_names():
    config = ImageBindAudioConfig()
    assert config.patch_grid == (12, 19) and config.num_patches == 228
    with torch.device("meta"):
        model = ImageBindAudioModel(config)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["stem.weight"] == (768, 1, 16, 16)
    assert shapes["pos_embed"] == (1, 229, 768)
    assert shapes["blocks.0.attn.in_proj_weight"] == (2304, 768)
    assert shapes["blocks.11.attn.bias_k"] == (1, 1, 768)  # the extra key token of add_bias_kv
    assert shapes["head_proj.weight"] == (1024, 768)
    assert len(model.blocks) == 12
    # ImageBind-Huge's audio branch has about 86M parameters.
    assert 85e6 < sum(p.numel() for p in model.parameters()) < 88e6


def test_clip_embeddings_are_normalised_and_scaled():
    config = ImageBindAudioConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                                  projection_dim=16)  # fmt: skip
    model = ImageBindAudioModel(config).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 128, 204))
    assert out.last_hidden_state.shape == (3, 229, 32)
    torch.testing.assert_close(out.pooler_output.norm(dim=-1), torch.full((3,), 20.0))


def test_hubert_audio_encoder_instead_of_imagebind(make_model, make_batch):
    hubert = dict(
        model_type="hubert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    model = make_model(audio_config=hubert)
    assert type(model.model.audio_encoder).__name__ == "HubertModel"
    assert model.config.audio_qformer_config.encoder_hidden_size == 32
    batch = make_batch(model.config, frames=[2, 2], utterances=[1, 0], audio_clips=[3, 0])
    batch["audio_values"] = torch.randn(2, 3, 3200)  # raw 16 kHz waveform clips (0.2 s)
    with torch.no_grad():
        out = model(**batch)
    assert out.audio_embeds.shape == (model.config.num_audio_query_tokens, model.config.text_config.hidden_size)


def test_whisper_encoder_instead_of_imagebind(make_model, make_batch):
    whisper = dict(
        model_type="whisper", d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=20,
    )  # fmt: skip
    model = make_model(audio_config=whisper)
    assert type(model.model.audio_encoder).__name__ == "WhisperEncoder"
    batch = make_batch(model.config, frames=[2], utterances=[1], audio_clips=[2])
    batch["audio_values"] = torch.randn(1, 2, 16, 40)  # log-mel features, 2 x max_source_positions frames
    with torch.no_grad():
        out = model(**batch)
    assert out.audio_embeds.shape[0] == model.config.num_audio_query_tokens
