"""Pretrained initialisation: each source format maps onto MicroEmo key for key.

A reference tiny MicroEmo is exported into the five source formats (InstructBLIP and a causal LM in transformers'
safetensors layout, Video-LLaMA's two LAVIS `.pth` branches, ImageBind's `.pth`), with the key names those
projects use; assembling a model from them must give back the reference's outputs.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config
from microemo.training.convert_checkpoints import _resize_rows, assemble_model, load_pth


def lavis_qformer_key(key: str) -> str:
    """transformers Blip2QFormerModel name -> LAVIS BERT name (the names in Video-LLaMA's checkpoints)."""
    key = key.replace("layernorm.", "bert.embeddings.LayerNorm.", 1) if key.startswith("layernorm.") else "bert." + key
    return key.replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.", ".crossattention.self.")


IMAGEBIND_NAMES = {
    "cls_token": "modality_preprocessors.audio.cls_token",
    "stem.weight": "modality_preprocessors.audio.rgbt_stem.proj.weight",
    "stem_norm.weight": "modality_preprocessors.audio.rgbt_stem.norm_layer.weight",
    "stem_norm.bias": "modality_preprocessors.audio.rgbt_stem.norm_layer.bias",
    "pos_embed": "modality_preprocessors.audio.pos_embedding_helper.pos_embed",
    "head_norm.weight": "modality_heads.audio.0.weight",
    "head_norm.bias": "modality_heads.audio.0.bias",
    "head_proj.weight": "modality_heads.audio.2.weight",
}


@pytest.fixture(scope="module")
def reference_and_sources(tmp_path_factory):
    torch.manual_seed(3)
    config = tiny_random_config()
    reference = MicroEmoForConditionalGeneration(config).eval()
    # In the paper both video Q-Formers start from Video-LLaMA's; so does the reference.
    with torch.no_grad():
        reference.model.utterance_qformer.load_state_dict(reference.model.video_qformer.state_dict())
        reference.model.utterance_query_tokens.weight.copy_(reference.model.video_query_tokens.weight)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    root = tmp_path_factory.mktemp("sources")

    def sub(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    # InstructBLIP, sharded like the real checkpoint: vision + Q-Former in one shard, the LLM in another.
    instructblip = root / "instructblip"
    instructblip.mkdir()
    shard_1 = {"vision_model." + k: v for k, v in sub("model.vision_model.").items()}
    shard_1 |= {"qformer." + k: v for k, v in sub("model.qformer.").items()}
    shard_1["query_tokens"] = state["model.query_tokens.weight"]
    shard_1["language_projection.weight"] = torch.randn(64, 32)
    shard_2 = {"language_model.model.embed_tokens.weight": torch.randn(1024, 64)}
    save_file(shard_1, instructblip / "model-00001-of-00002.safetensors")
    save_file(shard_2, instructblip / "model-00002-of-00002.safetensors")
    weight_map = {k: "model-00001-of-00002.safetensors" for k in shard_1}
    weight_map |= {k: "model-00002-of-00002.safetensors" for k in shard_2}
    (instructblip / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))

    # The causal LM, with LLaMA-2's vocabulary: two rows fewer than MicroEmo's (no <video>, <audio>).
    llama = root / "llama"
    llama.mkdir()
    lm = {"model." + k: v for k, v in sub("model.language_model.").items() if "rotary" not in k}
    lm["model.embed_tokens.weight"] = lm["model.embed_tokens.weight"][:1022].clone()
    lm["lm_head.weight"] = state["lm_head.weight"][:1022].clone()
    save_file(lm, llama / "model.safetensors")

    # Video-LLaMA's vision-language branch (trainable parameters and buffers only, LAVIS names).
    video = {"video_Qformer." + lavis_qformer_key(k): v for k, v in sub("model.video_qformer.").items()}
    video["video_Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    video["video_query_tokens"] = state["model.video_query_tokens.weight"]
    video["video_frame_position_embedding.weight"] = state["model.frame_position_embedding.weight"]
    video["llama_proj.weight"] = state["model.video_projection.weight"]
    video["llama_proj.bias"] = state["model.video_projection.bias"]
    torch.save({"model": video, "epoch": 3}, root / "VL_LLaMA_2_7B_Finetuned.pth")

    audio = {"audio_Qformer." + lavis_qformer_key(k): v for k, v in sub("model.audio_qformer.").items()}
    audio["audio_query_tokens"] = state["model.audio_query_tokens.weight"]
    audio["audio_position_embedding.weight"] = state["model.audio_position_embedding.weight"]
    audio["audio_llama_proj.weight"] = state["model.audio_projection.weight"]
    audio["audio_llama_proj.bias"] = state["model.audio_projection.bias"]
    torch.save({"model": audio}, root / "AL_LLaMA_2_7B_Finetuned.pth")

    imagebind = {}
    for key, tensor in sub("model.audio_encoder.").items():
        name = IMAGEBIND_NAMES.get(key, "modality_trunks.audio." + key)
        imagebind[name] = tensor
    imagebind["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(2.9957)
    imagebind["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.randn(6, 2)  # another modality
    torch.save(imagebind, root / "imagebind_huge.pth")

    sources = dict(
        instructblip=instructblip,
        language_model=llama,
        video_llama_video=root / "VL_LLaMA_2_7B_Finetuned.pth",
        video_llama_audio=root / "AL_LLaMA_2_7B_Finetuned.pth",
        imagebind=root / "imagebind_huge.pth",
    )
    return reference, sources


def test_assembled_model_reproduces_the_reference(reference_and_sources, make_batch):
    reference, sources = reference_and_sources
    model, report = assemble_model(reference.config, **sources)

    # Only the paper's new modules start from scratch; the utterance Q-Former starts from Video-LLaMA's.
    assert {key.split(".")[1] for key in report.missing} == {"local_clue_attention"}
    assert all(not r.unexpected for r in report.reports), report.summary()
    torch.testing.assert_close(model.model.utterance_qformer.state_dict(), reference.model.video_qformer.state_dict())
    assert not any(p.device.type == "meta" for p in model.parameters())
    assert not any(p.requires_grad for p in model.model.language_model.parameters())

    batch = make_batch(reference.config, frames=[3, 2], utterances=[2, 1], audio_clips=[3, 0])
    with torch.no_grad():
        expected, got = reference(**batch).logits, model(**batch).logits
    # The zero-initialised fusion gate keeps the random local clue attention out of the outputs. The two rows the
    # vocabulary grew by are new (mean embedding), so only the checkpoint's 1022 rows are compared.
    torch.testing.assert_close(got[..., :1022], expected[..., :1022])


def test_assembled_model_saves_with_independent_video_qformers(reference_and_sources, tmp_path):
    """Both video Q-Formers start from one checkpoint tensor but must not share storage (nor train as one)."""
    reference, sources = reference_and_sources
    model, _ = assemble_model(reference.config, video_llama_video=sources["video_llama_video"])
    video, utterance = model.model.video_qformer, model.model.utterance_qformer
    for (name, a), b in zip(video.named_parameters(), utterance.parameters(), strict=True):
        assert a.data_ptr() != b.data_ptr(), name
    assert model.model.video_query_tokens.weight.data_ptr() != model.model.utterance_query_tokens.weight.data_ptr()
    model.save_pretrained(tmp_path)  # safetensors refuses shared tensors
    reloaded = MicroEmoForConditionalGeneration.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.model.utterance_qformer.state_dict(), video.state_dict())


def test_bfloat16_assembly_keeps_float32_rope_buffers(reference_and_sources):
    reference, sources = reference_and_sources
    model, _ = assemble_model(reference.config, language_model=sources["language_model"], dtype=torch.bfloat16)
    assert model.model.language_model.embed_tokens.weight.dtype == torch.bfloat16
    assert model.model.language_model.rotary_emb.inv_freq.dtype == torch.float32


def test_tied_embedding_language_model_fills_the_head(reference_and_sources, tmp_path):
    reference, sources = reference_and_sources
    from safetensors.torch import load_file

    tied = {k: v for k, v in load_file(sources["language_model"] / "model.safetensors").items() if k != "lm_head.weight"}
    tied["model.rotary_emb.inv_freq"] = torch.ones(8)  # a stale buffer some exports carry
    (tmp_path / "tied").mkdir()
    save_file(tied, tmp_path / "tied" / "model.safetensors")
    model, report = assemble_model(reference.config, language_model=tmp_path / "tied")
    assert "lm_head.weight" not in report.missing
    torch.testing.assert_close(model.lm_head.weight[:1022], tied["model.embed_tokens.weight"])


def test_grown_vocabulary_rows_are_the_mean_embedding(reference_and_sources):
    reference, sources = reference_and_sources
    model, _ = assemble_model(reference.config, language_model=sources["language_model"])
    embeddings = model.get_input_embeddings().weight
    torch.testing.assert_close(embeddings[1022], embeddings[:1022].mean(dim=0))


def test_unused_source_keys_are_reported(reference_and_sources, tmp_path):
    reference, sources = reference_and_sources
    checkpoint = load_pth(sources["video_llama_audio"])
    checkpoint["audio_Qformer.cls.predictions.bias"] = torch.zeros(4)
    torch.save(checkpoint, tmp_path / "extra.pth")
    _, report = assemble_model(reference.config, video_llama_audio=tmp_path / "extra.pth")
    assert report.reports[0].unexpected == ["audio_Qformer.cls.predictions.bias"]


def test_a_checkpoint_of_other_shapes_is_refused(reference_and_sources, tmp_path):
    reference, sources = reference_and_sources
    checkpoint = load_pth(sources["video_llama_video"])
    checkpoint["llama_proj.weight"] = torch.randn(4096, 768)
    torch.save(checkpoint, tmp_path / "7b.pth")
    with pytest.raises(ValueError, match=r"llama_proj|video_projection.*\(4096, 768\).*\(64, 32\)"):
        assemble_model(reference.config, video_llama_video=tmp_path / "7b.pth")


def test_pth_that_is_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        load_pth(tmp_path / "list.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_pth(tmp_path / "missing.pth")


def test_frame_positions_resize_by_nearest_row():
    table = torch.arange(32, dtype=torch.float32)[:, None].expand(32, 4)
    resized = _resize_rows(table, 8)
    assert resized[:, 0].tolist() == [0, 4, 9, 13, 18, 22, 27, 31]
    assert _resize_rows(table, 32) is table
