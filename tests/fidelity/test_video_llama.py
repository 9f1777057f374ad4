"""MicroEmo's video / utterance / audio Q-Former branches, assembled from checkpoints in Video-LLaMA's format, compute
what Video-LLaMA's branches compute with the same weights (random weights, tiny sizes, CPU, float32).

Reference: transformers' `Blip2QFormerModel`, the port of the same LAVIS BERT Q-Former, run the way Video-LLaMA runs
its branches (frame position added to every query token of a frame, all frames' tokens as one cross-attention
memory, then the projection to the LLM). Its weights are written under the key names Video-LLaMA's checkpoints hold,
listed below as data, and read back only through `training/convert_checkpoints.py`.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from microemo.training.convert_checkpoints import assemble_model

ATOL, RTOL = 1e-5, 1e-5

# Key names of one Q-Former layer in Video-LLaMA's checkpoints, and the transformers Blip2QFormerModel name of the
# same tensor. Read from DAMO-NLP-SG/Video-LLaMA:
#   video_llama/models/video_llama.py  (VideoLLAMA.__init__ / init_video_Qformer: BERT with 2 layers, cross-attention
#       in every layer; `cls`, word and position embeddings and every layer's text FFN `output` / `intermediate`
#       set to None, so only `intermediate_query` / `output_query` remain);
#   video_llama/models/Qformer.py      (BertEmbeddings: `LayerNorm` and the `position_ids` buffer; BertLayer:
#       `attention.self.{query,key,value}`, `attention.output.{dense,LayerNorm}`, the same under `crossattention`);
#   video_llama/runners/runner_base.py (_save_checkpoint: `{"model": state_dict}` keeping trainable parameters
#       and every buffer, so the frozen parts' buffers such as other Q-Formers' `position_ids` are in the file).
VIDEO_LLAMA_LAYER_KEYS = {
    "attention.self.query": "attention.attention.query",
    "attention.self.key": "attention.attention.key",
    "attention.self.value": "attention.attention.value",
    "attention.output.dense": "attention.output.dense",
    "attention.output.LayerNorm": "attention.output.LayerNorm",
    "crossattention.self.query": "crossattention.attention.query",
    "crossattention.self.key": "crossattention.attention.key",
    "crossattention.self.value": "crossattention.attention.value",
    "crossattention.output.dense": "crossattention.output.dense",
    "crossattention.output.LayerNorm": "crossattention.output.LayerNorm",
    "intermediate_query.dense": "intermediate_query.dense",
    "output_query.dense": "output_query.dense",
    "output_query.LayerNorm": "output_query.LayerNorm",
}
VIDEO_LLAMA_EMBEDDING_KEYS = {"bert.embeddings.LayerNorm": "layernorm"}
# Buffers of the frozen parts that the same files hold (video_llama.py builds them in both branches' models).
VL_FROZEN_BUFFERS = ("Qformer.bert.embeddings.position_ids", "audio_Qformer.bert.embeddings.position_ids")
AL_FROZEN_BUFFERS = ("Qformer.bert.embeddings.position_ids", "video_Qformer.bert.embeddings.position_ids")


def video_llama_qformer_state(prefix: str, reference: Blip2QFormerModel, layers: int = 2) -> dict[str, torch.Tensor]:
    """The reference Q-Former's tensors under Video-LLaMA's names (`video_Qformer.bert...`), with its buffer."""
    source = reference.state_dict()
    state = {}
    for lavis, ours in VIDEO_LLAMA_EMBEDDING_KEYS.items():
        for kind in ("weight", "bias"):
            state[f"{prefix}.{lavis}.{kind}"] = source[f"{ours}.{kind}"].clone()
    for index in range(layers):
        for lavis, ours in VIDEO_LLAMA_LAYER_KEYS.items():
            for kind in ("weight", "bias"):
                state[f"{prefix}.bert.encoder.layer.{index}.{lavis}.{kind}"] = (
                    source[f"encoder.layer.{index}.{ours}.{kind}"].clone()
                )
    state[f"{prefix}.bert.embeddings.position_ids"] = torch.arange(512)[None]
    assert len(state) == 2 + layers * len(VIDEO_LLAMA_LAYER_KEYS) * 2 + 1  # every reference tensor is named
    assert {k for k in source} == {ours + "." + kind for ours in [*VIDEO_LLAMA_EMBEDDING_KEYS.values()] + [
        f"encoder.layer.{i}.{name}" for i in range(layers) for name in VIDEO_LLAMA_LAYER_KEYS.values()]
        for kind in ("weight", "bias")}  # fmt: skip
    return state


def randomised(module: nn.Module, seed: int) -> nn.Module:
    """Every tensor perturbed (LayerNorms too: a swapped or dropped LayerNorm must change the output)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return module.eval()


def reference_qformer(config, encoder_width: int, seed: int) -> Blip2QFormerModel:
    qformer = Blip2QFormerConfig(
        hidden_size=config.hidden_size, num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, num_hidden_layers=2, cross_attention_frequency=1,
        encoder_hidden_size=encoder_width, layer_norm_eps=1e-12,
    )  # fmt: skip
    torch.manual_seed(seed)
    return randomised(Blip2QFormerModel(qformer), seed)


@pytest.fixture(scope="module")
def branches(tmp_path_factory, fidelity_config):
    """Random Video-LLaMA branches (reference modules + their checkpoints in Video-LLaMA's format)."""
    config = fidelity_config
    text_width = config.text_config.hidden_size
    video_width = config.video_qformer_config.hidden_size
    torch.manual_seed(21)
    video = dict(
        qformer=reference_qformer(config.video_qformer_config, config.qformer_config.hidden_size, 1),
        query_tokens=torch.randn(1, config.num_video_query_tokens, video_width),
        positions=torch.randn(config.max_frames, config.qformer_config.hidden_size),
        projection=randomised(nn.Linear(video_width, text_width), 2),
    )
    audio = dict(
        qformer=reference_qformer(config.audio_qformer_config, config.audio_output_size, 3),
        query_tokens=torch.randn(1, config.num_audio_query_tokens, config.audio_qformer_config.hidden_size),
        positions=torch.randn(config.max_audio_clips, config.audio_output_size),
        projection=randomised(nn.Linear(config.audio_qformer_config.hidden_size, text_width), 4),
    )
    root = tmp_path_factory.mktemp("video_llama")
    vl = video_llama_qformer_state("video_Qformer", video["qformer"])
    vl["video_query_tokens"] = video["query_tokens"]
    vl["video_frame_position_embedding.weight"] = video["positions"]
    vl["llama_proj.weight"], vl["llama_proj.bias"] = video["projection"].weight.data, video["projection"].bias.data
    vl |= {name: torch.arange(512)[None] for name in VL_FROZEN_BUFFERS}
    torch.save({"model": vl, "epoch": 2}, root / "VL_LLaMA_2_7B_Finetuned.pth")
    al = video_llama_qformer_state("audio_Qformer", audio["qformer"])
    al["audio_query_tokens"] = audio["query_tokens"]
    al["audio_position_embedding.weight"] = audio["positions"]
    al["audio_llama_proj.weight"] = audio["projection"].weight.data
    al["audio_llama_proj.bias"] = audio["projection"].bias.data
    al |= {name: torch.arange(512)[None] for name in AL_FROZEN_BUFFERS}
    torch.save({"model": al, "epoch": 2}, root / "AL_LLaMA_2_7B_Finetuned.pth")
    model, report = assemble_model(
        config, video_llama_video=root / "VL_LLaMA_2_7B_Finetuned.pth",
        video_llama_audio=root / "AL_LLaMA_2_7B_Finetuned.pth",
    )  # fmt: skip
    assert all(not r.unexpected for r in report.reports), report.summary()
    return model, video, audio


def run_reference(branch: dict, memory: torch.Tensor) -> torch.Tensor:
    """Video-LLaMA's branch on one sample's memory [L, D] (no padding: the reference never pads)."""
    output = branch["qformer"](
        query_embeds=branch["query_tokens"],
        encoder_hidden_states=memory[None],
        encoder_attention_mask=torch.ones(1, memory.shape[0], dtype=torch.long),
    ).last_hidden_state
    return branch["projection"](output[0])


def test_video_and_utterance_windows_match_video_llama_on_their_frames(branches, fidelity_config, record_property):
    model, video, _ = branches
    config = fidelity_config
    size, queries = config.vision_config.image_size, config.num_query_tokens
    torch.manual_seed(5)
    frames = [5, 3]
    pixel_values = torch.randn(2, 5, 3, size, size)
    frame_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    utterances = torch.zeros(2, 2, 5, dtype=torch.bool)
    utterances[0, 0, :2], utterances[0, 1, 2:5], utterances[1, 0, 1:3] = True, True, True

    captured = []
    hook = model.model.qformer.register_forward_hook(lambda m, i, o: captured.append(o.last_hidden_state[:, :queries]))
    with torch.no_grad():
        per_sample = model.model.get_video_features(pixel_values, frame_mask, utterance_frame_mask=utterances).pooler_output
    hook.remove()
    v = config.num_video_query_tokens
    assert [tokens.shape[0] // v for tokens in per_sample] == [3, 2]  # global + 2 utterances, global + 1
    embeds = torch.cat(per_sample)
    image_tokens = captured[0].split(frames)  # the image Q-Former's query outputs, sample by sample

    expected = []
    for sample, tokens in enumerate(image_tokens):
        # Video-LLaMA: frame position t added to all of frame t's query tokens; (t q) flattened into one memory.
        memory = tokens + video["positions"][: tokens.shape[0], None, :]
        with torch.no_grad():
            expected.append(run_reference(video, memory.flatten(0, 1)))  # the global window: every frame
            for window in utterances[sample]:
                if window.any():  # an utterance window: its own frames only, same weights (initialisation)
                    expected.append(run_reference(video, memory[window[: tokens.shape[0]]].flatten(0, 1)))
    expected = torch.cat(expected)
    assert embeds.shape == expected.shape == (5 * v, config.text_config.hidden_size)
    torch.testing.assert_close(embeds, expected, atol=ATOL, rtol=RTOL)
    record_property("max_abs_diff_video", float((embeds - expected).abs().max()))


def test_audio_branch_matches_video_llama_on_each_samples_clips(branches, fidelity_config, record_property):
    model, _, audio = branches
    config = fidelity_config.audio_config
    torch.manual_seed(6)
    values = torch.randn(2, 4, 1, config.num_mel_bins, config.target_length)
    clip_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    captured = []
    hook = model.model.audio_encoder.register_forward_hook(lambda m, i, o: captured.append(o.pooler_output))
    with torch.no_grad():
        per_sample = model.model.get_audio_features(values, clip_mask).pooler_output
    hook.remove()
    has_audio = [tokens.shape[0] > 0 for tokens in per_sample]
    embeds = torch.cat(per_sample)
    clips = captured[0].split([4, 2])
    with torch.no_grad():
        expected = torch.cat([run_reference(audio, c + audio["positions"][: c.shape[0]]) for c in clips])
    assert has_audio == [True, True]
    torch.testing.assert_close(embeds, expected, atol=ATOL, rtol=RTOL)
    record_property("max_abs_diff_audio", float((embeds - expected).abs().max()))
