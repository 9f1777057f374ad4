"""Pretrained initialisation of MicroEmo from the checkpoints the paper starts from (section 4.1).

Each source has an explicit key map to MicroEmo's parameter names:

- InstructBLIP, transformers format (`Salesforce/instructblip-vicuna-7b`): the EVA ViT-g, the image Q-Former and
  its query tokens.
- A causal language model, transformers format (`meta-llama/Llama-2-7b-chat-hf`, the LLM Video-LLaMA-2's branches were trained on): `model.*` -> `model.language_model.*`,
  `lm_head.*`; the vocabulary is grown by the `<video>` / `<audio>` rows (initialised to the mean embedding).
- Video-LLaMA's vision-language branch (`VL_LLaMA_2_7B_Finetuned.pth`, LAVIS `.pth`): the video Q-Former (also the
  initialisation of the utterance Q-Former, the same kind of module), its query tokens, the frame position embedding
  and the projection to the LLM.
- Video-LLaMA's audio-language branch (`AL_LLaMA_2_7B_Finetuned.pth`): the audio Q-Former, its query tokens, the clip
  position embedding and the projection.
- ImageBind-Huge (`imagebind_huge.pth`): the audio encoder.

`.pth` files are read with `torch.load(weights_only=True)`. Every source key that maps nowhere and every model key
that no source provides is reported; the model keys no source provides keep a fresh random initialisation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from microemo.modeling_microemo import MicroEmoConfig, MicroEmoForConditionalGeneration

StateDict = dict[str, torch.Tensor]

# LAVIS BERT Q-Former names -> transformers' Blip2QFormerModel names (as in transformers' BLIP-2 converter).
_LAVIS_QFORMER_RULES: tuple[tuple[str, str], ...] = (
    (r"^bert\.embeddings\.LayerNorm\.", "layernorm."),
    (r"^bert\.encoder\.", "encoder."),
    (r"\.attention\.self\.", ".attention.attention."),
    (r"\.crossattention\.self\.", ".crossattention.attention."),
)
# Buffers and text-only parts that the stripped Video-LLaMA Q-Formers do not use.
_LAVIS_DROPPED = re.compile(r"(position_ids|word_embeddings|position_embeddings|rotary_emb\.inv_freq|log_logit_scale)")


@dataclass
class ConversionReport:
    """What one conversion took from a source and what it left."""

    source: str
    converted: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.source}: {len(self.converted)} tensors converted, {len(self.unexpected)} source keys unused"]
        lines += [f"  unused: {key}" for key in self.unexpected]
        return "\n".join(lines)


def _rename_lavis_qformer(key: str) -> str:
    for pattern, replacement in _LAVIS_QFORMER_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def _resize_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Nearest-neighbour resize of an embedding table along its rows (frame positions: 32 in Video-LLaMA,
    96 in TimeChat); a no-op when the sizes agree."""
    if weight.shape[0] == rows:
        return weight
    index = torch.linspace(0, weight.shape[0] - 1, rows).round().long()
    return weight[index].clone()


def _grow_vocabulary(weight: torch.Tensor, rows: int, name: str) -> torch.Tensor:
    if weight.shape[0] > rows:
        raise ValueError(
            f"{name}: the checkpoint's vocabulary has {weight.shape[0]} rows, more than the config's {rows}; "
            "set text_config.vocab_size to at least the checkpoint's."
        )
    if weight.shape[0] == rows:
        return weight
    extra = weight.float().mean(dim=0, keepdim=True).to(weight.dtype).expand(rows - weight.shape[0], -1)
    return torch.cat([weight, extra], dim=0)


# ---------------------------------------------------------------------------------------------- readers
def load_pth(path: str | Path) -> StateDict:
    """A LAVIS / ImageBind `.pth` state dict (unwrapping `{"model": ...}`), loaded without executing pickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"checkpoint {path}: expected a state dict of tensors (or {{'model': state_dict}}).")
    return checkpoint


def load_safetensors_subset(source: str | Path, keep: Callable[[str], bool]) -> StateDict:
    """Tensors whose names pass `keep` from a transformers checkpoint (local folder or Hub id), reading only the
    shards that hold them: a 7B checkpoint's vision tower does not cost the language model's download."""
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    folder = Path(source)

    def fetch(filename: str) -> Path | None:
        if folder.is_dir():
            path = folder / filename
            return path if path.is_file() else None
        try:
            return Path(hf_hub_download(str(source), filename))
        except Exception as error:  # the Hub answers a missing file with several error types
            if "404" in str(error) or "not found" in str(error).lower() or "EntryNotFound" in type(error).__name__:
                return None
            raise

    index = fetch("model.safetensors.index.json")
    if index is not None:
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        shards = sorted({shard for key, shard in weight_map.items() if keep(key)})
    else:
        shards = ["model.safetensors"]
    state: StateDict = {}
    for shard in shards:
        path = fetch(shard)
        if path is None:
            raise FileNotFoundError(f"{source}: no {shard} (a transformers checkpoint in safetensors is expected)")
        with safe_open(str(path), framework="pt") as reader:
            for key in reader.keys():
                if keep(key):
                    state[key] = reader.get_tensor(key)
    if not state:
        raise ValueError(f"{source}: none of its tensors are of the expected kind (checked {len(shards)} shard(s)).")
    return state


# ---------------------------------------------------------------------------------------------- key maps
def convert_instructblip(state: StateDict) -> tuple[StateDict, ConversionReport]:
    """InstructBLIP (transformers format) -> ViT, image Q-Former and query tokens."""
    report, out = ConversionReport("instructblip"), {}
    for key, tensor in state.items():
        if key.startswith(("vision_model.", "qformer.")):
            out["model." + key] = tensor
            report.converted.append(key)
        elif key == "query_tokens":
            out["model.query_tokens.weight"] = tensor
            report.converted.append(key)
        elif not key.startswith(("language_model.", "language_projection.")):
            report.unexpected.append(key)
    return out, report


def convert_language_model(state: StateDict, vocab_size: int) -> tuple[StateDict, ConversionReport]:
    """Causal LM (transformers format) -> `model.language_model.*` and `lm_head.*`, vocabulary grown to `vocab_size`."""
    report, out = ConversionReport("language_model"), {}
    for key, tensor in state.items():
        if key.endswith("rotary_emb.inv_freq"):
            continue  # a stale buffer of older exports; recomputed from the config
        if key.startswith("model."):
            target = "model.language_model." + key[len("model.") :]
        elif key.startswith("lm_head."):
            target = key
        else:
            report.unexpected.append(key)
            continue
        if key.endswith(("embed_tokens.weight", "lm_head.weight")):
            tensor = _grow_vocabulary(tensor, vocab_size, key)
        out[target] = tensor
        report.converted.append(key)
    if "lm_head.weight" not in out and "model.language_model.embed_tokens.weight" in out:
        # A checkpoint with tied input/output embeddings stores the table once; MicroEmo's head is its own.
        out["lm_head.weight"] = out["model.language_model.embed_tokens.weight"].clone()
    return out, report


def _convert_lavis_branch(
    state: StateDict, source: str, qformer_prefix: str, mapping: dict[str, str], targets: Iterable[str]
) -> tuple[StateDict, ConversionReport]:
    report, out = ConversionReport(source), {}
    for key, tensor in state.items():
        if _LAVIS_DROPPED.search(key):
            continue
        if key.startswith(qformer_prefix + "bert."):  # not `cls.*`: BERT's MLM head has no place here
            renamed = _rename_lavis_qformer(key[len(qformer_prefix) :])
            for copy, target in enumerate(targets):
                # Separate storage for each target: shared tensors would tie the Q-Formers' training (and
                # safetensors refuses to save them).
                out[f"{target}.{renamed}"] = tensor.clone() if copy else tensor
            report.converted.append(key)
        elif key.split(".")[0] in mapping:
            head, _, rest = key.partition(".")
            out[mapping[head] + ("." + rest if rest else "")] = tensor
            report.converted.append(key)
        else:
            report.unexpected.append(key)
    return out, report


def convert_video_llama_video(state: StateDict, config: MicroEmoConfig) -> tuple[StateDict, ConversionReport]:
    """Video-LLaMA's vision-language branch -> video Q-Former (and utterance Q-Former), queries, frame positions,
    projection. Its frozen image Q-Former and ViT (BLIP-2's) are not used: the paper's come from InstructBLIP."""
    video_only = {k: v for k, v in state.items() if not k.startswith(("audio_", "Qformer.", "visual_encoder.",
                                                                       "ln_vision.", "query_tokens", "llama_model."))}  # fmt: skip
    mapping = {
        "video_query_tokens": "model.video_query_tokens.weight",
        "video_frame_position_embedding": "model.frame_position_embedding",
        "llama_proj": "model.video_projection",
    }
    targets = ["model.video_qformer"]
    if config.use_utterance_windows:
        targets.append("model.utterance_qformer")
        if "video_query_tokens" in video_only:
            video_only = dict(video_only, utterance_query_tokens=video_only["video_query_tokens"].clone())
            mapping["utterance_query_tokens"] = "model.utterance_query_tokens.weight"
    out, report = _convert_lavis_branch(video_only, "video_llama_video", "video_Qformer.", mapping, targets)
    if "model.frame_position_embedding.weight" in out:
        out["model.frame_position_embedding.weight"] = _resize_rows(
            out["model.frame_position_embedding.weight"], config.max_frames
        )
    return out, report


def convert_video_llama_audio(state: StateDict, config: MicroEmoConfig) -> tuple[StateDict, ConversionReport]:
    """Video-LLaMA's audio-language branch -> audio Q-Former, queries, clip positions, projection."""
    audio_only = {k: v for k, v in state.items() if k.startswith(("audio_Qformer.", "audio_query_tokens",
                                                                   "audio_position_embedding", "audio_llama_proj"))}  # fmt: skip
    mapping = {
        "audio_query_tokens": "model.audio_query_tokens.weight",
        "audio_position_embedding": "model.audio_position_embedding",
        "audio_llama_proj": "model.audio_projection",
    }
    out, report = _convert_lavis_branch(audio_only, "video_llama_audio", "audio_Qformer.", mapping, ["model.audio_qformer"])
    if "model.audio_position_embedding.weight" in out:
        out["model.audio_position_embedding.weight"] = _resize_rows(
            out["model.audio_position_embedding.weight"], config.max_audio_clips
        )
    return out, report


_IMAGEBIND_AUDIO_KEYS = {
    "modality_preprocessors.audio.cls_token": "cls_token",
    "modality_preprocessors.audio.rgbt_stem.proj.weight": "stem.weight",
    "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": "stem_norm.weight",
    "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": "stem_norm.bias",
    "modality_preprocessors.audio.pos_embedding_helper.pos_embed": "pos_embed",
    "modality_heads.audio.0.weight": "head_norm.weight",
    "modality_heads.audio.0.bias": "head_norm.bias",
    "modality_heads.audio.2.weight": "head_proj.weight",
}


def convert_imagebind_audio(state: StateDict) -> tuple[StateDict, ConversionReport]:
    """ImageBind (all modalities) -> the audio encoder. The fixed logit scale (20) lives in the config."""
    report, out = ConversionReport("imagebind"), {}
    for key, tensor in state.items():
        if ".audio." not in f".{key}.":
            continue  # the other modalities' branches
        if key in _IMAGEBIND_AUDIO_KEYS:
            out["model.audio_encoder." + _IMAGEBIND_AUDIO_KEYS[key]] = tensor
            report.converted.append(key)
        elif key.startswith("modality_trunks.audio.blocks."):
            out["model.audio_encoder." + key[len("modality_trunks.audio.") :]] = tensor
            report.converted.append(key)
        elif key == "modality_postprocessors.audio.1.log_logit_scale":
            continue
        else:
            report.unexpected.append(key)
    return out, report


# ---------------------------------------------------------------------------------------------- assembly
@dataclass
class AssemblyReport:
    reports: list[ConversionReport]
    missing: list[str]  # model keys no source provided: randomly initialised

    def summary(self) -> str:
        parts = [report.summary() for report in self.reports]
        parts.append(f"{len(self.missing)} model tensors randomly initialised (no source provided them)")
        parts += [f"  random: {key}" for key in self.missing]
        return "\n".join(parts)


def _materialise(model: nn.Module, loaded: set[str], dtype: torch.dtype) -> None:
    """Give every tensor still on the meta device real storage, then run the model's own initialisation on
    those only (`_is_hf_initialized` marks the loaded ones, which transformers' init functions skip)."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if tensor.device.type == "meta":
            # Parameters take the target dtype; buffers keep theirs (RoPE's inv_freq must stay float32).
            is_parameter = isinstance(tensor, nn.Parameter)
            storage_dtype = dtype if is_parameter and tensor.is_floating_point() else tensor.dtype
            fresh = torch.empty(tensor.shape, dtype=storage_dtype)
            if isinstance(tensor, nn.Parameter):
                setattr(owner, attribute, nn.Parameter(fresh, requires_grad=tensor.requires_grad))
            else:
                owner._buffers[attribute] = fresh
        elif name in loaded:
            tensor._is_hf_initialized = True
    model.initialize_weights()


def convert_sources(
    config: MicroEmoConfig, sources: dict[str, StateDict], targets: dict[str, torch.Tensor]
) -> tuple[StateDict, list[ConversionReport]]:
    """Run each source's key map (`sources` maps a name of :data:`SOURCES` to its state dict, which may hold meta
    tensors) and check every converted tensor against `targets` (a MicroEmo state dict of `config`): an unknown
    name or a shape that differs raises. Returns the converted state and one report per source."""
    unknown_sources = sorted(set(sources) - set(SOURCES))
    if unknown_sources:
        raise ValueError(f"unknown checkpoint source(s) {unknown_sources}; expected some of {list(SOURCES)}")
    state: StateDict = {}
    reports: list[ConversionReport] = []
    for name in SOURCES:  # a fixed order: later sources never silently overwrite earlier ones' keys
        if name not in sources:
            continue
        converted, report = SOURCES[name](sources[name], config)
        unknown = sorted(set(converted) - set(targets))
        if unknown:
            raise ValueError(f"{report.source}: converted keys the model does not have: {unknown[:10]}")
        for key, tensor in converted.items():
            target = targets[key]
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(
                    f"{report.source}: `{key}` has shape {tuple(tensor.shape)} in the checkpoint, the model expects "
                    f"{tuple(target.shape)}; does the preset match the checkpoint?"
                )
        state.update(converted)
        reports.append(report)
    return state, reports


#: Each source's key map, called as `convert(state, config)`.
SOURCES: dict[str, Callable[[StateDict, MicroEmoConfig], tuple[StateDict, ConversionReport]]] = {
    "instructblip": lambda state, config: convert_instructblip(state),
    "language_model": lambda state, config: convert_language_model(state, config.text_config.vocab_size),
    "video_llama_video": convert_video_llama_video,
    "video_llama_audio": convert_video_llama_audio,
    "imagebind": lambda state, config: convert_imagebind_audio(state),
}


def assemble_model(
    config: MicroEmoConfig,
    instructblip: str | Path | None = None,
    language_model: str | Path | None = None,
    video_llama_video: str | Path | None = None,
    video_llama_audio: str | Path | None = None,
    imagebind: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[MicroEmoForConditionalGeneration, AssemblyReport]:
    """Build MicroEmo on the meta device, load every given source through its key map, and initialise the rest."""
    with torch.device("meta"):
        model = MicroEmoForConditionalGeneration(config)
    targets = model.state_dict()
    loaded: dict[str, StateDict] = {}
    if instructblip is not None:
        loaded["instructblip"] = load_safetensors_subset(
            instructblip, lambda k: k.startswith(("vision_model.", "qformer.")) or k == "query_tokens")
    if language_model is not None:
        loaded["language_model"] = load_safetensors_subset(
            language_model, lambda k: k.startswith(("model.", "lm_head.")))
    if video_llama_video is not None:
        loaded["video_llama_video"] = load_pth(video_llama_video)
    if video_llama_audio is not None:
        loaded["video_llama_audio"] = load_pth(video_llama_audio)
    if imagebind is not None:
        loaded["imagebind"] = load_pth(imagebind)
    state, reports = convert_sources(config, loaded, targets)

    state = {key: tensor.to(dtype) if tensor.is_floating_point() else tensor for key, tensor in state.items()}
    model.load_state_dict(state, strict=False, assign=True)
    _materialise(model, set(state), dtype)
    model.freeze_pretrained_parts()
    missing = sorted(key for key in set(targets) - set(state) if not key.endswith(("position_ids", "inv_freq")))
    return model.eval(), AssemblyReport(reports, missing)
