"""PyTorch MicroEmo: time-sensitive multimodal emotion recognition with subtle clue dynamics.

Reads top-down: the new building blocks (local clue attention), the `PreTrainedModel` base, the backbone
`MicroEmoModel` (encoders, Q-Formers, projections, language model), then `MicroEmoForConditionalGeneration`
(backbone + LM head + generation). The model's inputs are documented in `MicroEmoModel.forward` and in the
project's `docs/model-inputs.md`.

Shapes used in comments: B samples, T frames (padded), U utterances (padded), C audio clips (padded),
P patches per frame, R clue regions, Q image queries (32), V video queries (32), A audio queries (8),
Dv / Dq / Da / D the vision, Q-Former, audio and language-model widths, N real frames in the batch.
"""


import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel
from transformers.models.instructblip.modeling_instructblip import (
    InstructBlipQFormerModel,
    InstructBlipVisionModel,
)
from transformers.utils import cached_file, logging
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple

from .configuration_microemo import MicroEmoConfig
from .imagebind_audio import ImageBindAudioConfig, ImageBindAudioModel

logger = logging.get_logger(__name__)

# The pipeline that ships beside the model (`pipeline_microemo.py`, kept out of this file's imports so that loading
# the model never imports transformers' pipelines): `pipeline(TASK, model=folder, trust_remote_code=True)`.
DEFAULT_CUSTOM_PIPELINES = {
    "video-emotion-explanation": {
        "impl": "pipeline_microemo.MicroEmoEmotionPipeline", "pt": ["AutoModel"], "type": "multimodal"
    }
}

# Largest magnitude accepted in `pixel_values` / `audio_values` (normalised features lie within a few units of 0).
MAX_ABS_FEATURE = 1e4

# Inputs that only the prefill step consumes: once their tokens sit in the KV cache, later decoding steps
# must not encode them again (transformers already drops `pixel_values` itself).
_MULTIMODAL_INPUT_NAMES = (
    "pixel_values",
    "frame_mask",
    "qformer_input_ids",
    "qformer_attention_mask",
    "clue_masks",
    "utterance_frame_mask",
    "audio_values",
    "audio_clip_mask",
)


@dataclass
class MicroEmoModelOutputWithPast(MultimodalBaseModelOutputWithPast):
    """
    Output of [`MicroEmoModel`]: the language model's output, the encoders' outputs (BLIP-family style, for
    `output_hidden_states` users) and the multimodal tokens that were scattered in.

    Args:
        last_hidden_state, cache, hidden_states, attentions: the language model's.
        video_outputs (`BaseModelOutputWithPooling`, *optional*): as returned by [`MicroEmoModel.get_video_features`]:
            the frame encoder's states per sample and frame, its `hidden_states` / `attentions` when requested,
            and `pooler_output`, one tensor of projected video tokens per sample.
        audio_outputs (`BaseModelOutputWithPooling`, *optional*): as returned by
            [`MicroEmoModel.get_audio_features`], the same for the audio encoder.
        video_embeds (`torch.FloatTensor` of shape `(num_video_tokens, hidden_size)`, *optional*):
            projected video tokens of the whole batch, sample by sample, each sample's global window first and
            then one window per utterance (`video_outputs.pooler_output` concatenated).
        audio_embeds (`torch.FloatTensor` of shape `(num_audio_tokens, hidden_size)`, *optional*):
            projected audio tokens of the samples that have audio, sample by sample.
    """

    video_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None


@dataclass
class MicroEmoCausalLMOutputWithPast(MultimodalCausalLMOutputWithPast):
    """
    Output of [`MicroEmoForConditionalGeneration`].

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, *optional*): language-modelling loss on the `labels` that are
            not -100 (the answer), returned when `labels` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, vocab_size)`): LM head scores.
        cache (`Cache`, *optional*): the language model's KV cache.
        hidden_states, attentions: the language model's, when requested.
        video_outputs, audio_outputs, video_embeds, audio_embeds: as in [`MicroEmoModelOutputWithPast`].
    """

    video_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None


def _max_input_length(text_config) -> tuple[int, str]:
    """Longest input the language model's positions cover, and how it follows from the config.

    `max_position_embeddings`, stretched by a scaled RoPE (`linear`, `dynamic`, `yarn`, `llama3`, ...), which covers
    `factor` times the length it was trained on (`original_max_position_embeddings` where the config has one); some
    configs already store the extended length as `max_position_embeddings`, hence the max.
    """
    context = text_config.max_position_embeddings
    rope = getattr(text_config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") == "default" or not rope.get("factor"):
        return context, f"max_position_embeddings={context}"
    original = rope.get("original_max_position_embeddings") or context
    limit = max(context, int(original * float(rope["factor"])))
    return limit, f"{limit}: {original} positions with {rope['rope_type']} RoPE scaling x{float(rope['factor']):g}"


def _encoder_kwargs(method: str, kwargs: dict) -> dict:
    """The keywords a feature getter hands its encoder; any other keyword is refused, never swallowed."""
    allowed = ("output_hidden_states", "output_attentions")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"MicroEmo.{method}: unexpected keyword argument(s) {unknown}; it takes {list(allowed)}.")
    return {key: kwargs[key] for key in allowed if key in kwargs}


class MicroEmoQueryTokens(nn.Module):
    """Learned query tokens of a Q-Former, as a module (not a bare parameter) so that PEFT's `modules_to_save`
    and other name-based tools can select them."""

    def __init__(self, num_tokens: int, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, num_tokens, hidden_size))

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.weight.expand(batch_size, -1, -1)  # [batch_size, num_tokens, hidden_size]


class MicroEmoLocalClueAttention(nn.Module):
    """Local clue attention (paper section 3.2): patch i attends to patch j only where both lie in a common
    facial clue region, so each patch gathers fine-grained features from its own region(s) only.

    The paper does not give the layer's form; we use one pre-norm multi-head attention layer with a residual
    connection over the ViT's patch features. Patches outside every region produce zeros and are masked out
    of the Q-Former's local pass. The module also owns `fusion_gate`, the zero-initialised per-channel gate with
    which the local pass's query outputs join the global ones (`global + tanh(gate) * local`).
    """

    def __init__(self, hidden_size: int, num_heads: int, layer_norm_eps: float, fusion_size: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.fusion_gate = nn.Parameter(torch.zeros(fusion_size))

    def fuse(self, global_tokens: torch.Tensor, local_tokens: torch.Tensor) -> torch.Tensor:
        """Gated fusion of the Q-Former's global and local query outputs, both [N, Q, Dq]."""
        return global_tokens + torch.tanh(self.fusion_gate).to(global_tokens.dtype) * local_tokens

    def forward(self, patch_features: torch.Tensor, clue_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`patch_features` [N, P, Dv], `clue_masks` [N, R, P] bool -> (local features [N, P, Dv], patch mask [N, P])."""
        num_frames, num_patches, hidden_size = patch_features.shape
        regions = clue_masks.to(patch_features.dtype)
        # [N, P, P]: True where two patches share at least one region.
        pair_mask = torch.einsum("nrp,nrq->npq", regions, regions) > 0
        patch_mask = clue_masks.any(dim=1)  # [N, P]
        # A patch outside every region would have an all-masked row (NaN in softmax); let it see itself, its
        # output is zeroed below anyway.
        pair_mask = pair_mask | torch.eye(num_patches, dtype=torch.bool, device=pair_mask.device)

        qkv = self.qkv(self.layer_norm(patch_features))
        qkv = qkv.view(num_frames, num_patches, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=pair_mask[:, None])
        attended = attended.transpose(1, 2).reshape(num_frames, num_patches, hidden_size)
        local_features = (patch_features + self.out_proj(attended)) * patch_mask[..., None]
        return local_features, patch_mask


class MicroEmoPreTrainedModel(PreTrainedModel):
    config: MicroEmoConfig
    base_model_prefix = "model"
    input_modalities = ("video", "audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = [
        "InstructBlipEncoderLayer",
        "InstructBlipQFormerLayer",
        "Blip2QFormerLayer",
        "ImageBindAudioBlock",
        "LlamaDecoderLayer",
    ]
    # The modules the paper trains (section 4.1); everything else is frozen. PEFT users pass these as
    # `modules_to_save`; they are named so that no suffix match can catch a language-model layer.
    trainable_module_names = (
        "local_clue_attention",
        "query_tokens",
        "qformer",
        "video_query_tokens",
        "video_qformer",
        "utterance_query_tokens",
        "utterance_qformer",
        "video_projection",
        "audio_query_tokens",
        "audio_qformer",
        "audio_projection",
        "frame_position_embedding",
        "audio_position_embedding",
    )

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        # With `output_loading_info=True` transformers returns `(model, loading_info)`.
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loading replaces parameters, which resets `requires_grad`; the frozen parts are frozen again.
        model.freeze_pretrained_parts()
        return loaded

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self._save_custom_pipeline_files(Path(save_directory))

    def _save_custom_pipeline_files(self, save_directory: Path) -> None:
        """`config.custom_pipelines` sends `pipeline(folder)` to a file inside the folder; write that file whenever
        the config names it: from beside this file, else from the folder or repo the model was loaded from."""
        for task, info in (getattr(self.config, "custom_pipelines", None) or {}).items():
            name = info["impl"].rsplit(".", 1)[0] + ".py"
            source = Path(__file__).with_name(name)
            if not source.is_file() and self.config._name_or_path:
                found = cached_file(
                    self.config._name_or_path, name,
                    _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
                )  # fmt: skip
                source = Path(found) if found else source
            target = save_directory / name
            if not source.is_file():
                logger.warning(
                    f"config.custom_pipelines names `{name}` for task {task!r}, but the file is neither beside "
                    f"{Path(__file__).name} nor in {self.config._name_or_path!r}; `pipeline()` on {save_directory} "
                    "will not find it."
                )
            elif not target.exists() or not target.samefile(source):
                shutil.copyfile(source, target)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, MicroEmoQueryTokens):
            init.trunc_normal_(module.weight, std=std)
        elif isinstance(module, MicroEmoLocalClueAttention):
            # Zero gate: at initialisation the fused frame tokens equal the pretrained global path exactly.
            init.zeros_(module.fusion_gate)


class MicroEmoModel(MicroEmoPreTrainedModel):
    """MicroEmo without the LM head: frame encoder, local clue attention, image / video / utterance / audio
    Q-Formers, projections and the language model backbone. Returns the language model's last hidden state."""

    def __init__(self, config: MicroEmoConfig):
        super().__init__(config)
        vision_config, qformer_config = config.vision_config, config.qformer_config
        text_hidden = config.text_config.hidden_size

        # (a) global-local attention visual encoder
        self.vision_model = InstructBlipVisionModel(vision_config)
        self.query_tokens = MicroEmoQueryTokens(config.num_query_tokens, qformer_config.hidden_size)
        self.qformer = InstructBlipQFormerModel(qformer_config)
        if config.use_local_clue_attention:
            heads = config.clue_attention_num_heads or vision_config.num_attention_heads
            self.local_clue_attention = MicroEmoLocalClueAttention(
                vision_config.hidden_size, heads, vision_config.layer_norm_eps, qformer_config.hidden_size
            )
        else:
            self.local_clue_attention = None
        self.frame_position_embedding = nn.Embedding(config.max_frames, qformer_config.hidden_size)

        # (b) utterance-aware video Q-Former: a global one over all frames, one window per utterance
        video_hidden = config.video_qformer_config.hidden_size
        self.video_query_tokens = MicroEmoQueryTokens(config.num_video_query_tokens, video_hidden)
        self.video_qformer = Blip2QFormerModel(config.video_qformer_config)
        if config.use_utterance_windows:
            self.utterance_query_tokens = MicroEmoQueryTokens(config.num_video_query_tokens, video_hidden)
            self.utterance_qformer = Blip2QFormerModel(config.video_qformer_config)
        else:
            self.utterance_query_tokens = None
            self.utterance_qformer = None
        self.video_projection = nn.Linear(video_hidden, text_hidden)

        # audio branch
        if config.audio_config.model_type == ImageBindAudioConfig.model_type:
            self.audio_encoder = ImageBindAudioModel(config.audio_config)
        else:
            audio_model = AutoModel.from_config(config.audio_config)
            # Encoder-decoder speech models (Whisper) contribute their encoder only.
            is_seq2seq = getattr(config.audio_config, "is_encoder_decoder", False)
            self.audio_encoder = audio_model.get_encoder() if is_seq2seq else audio_model
        self.audio_position_embedding = nn.Embedding(config.max_audio_clips, config.audio_output_size)
        audio_hidden = config.audio_qformer_config.hidden_size
        self.audio_query_tokens = MicroEmoQueryTokens(config.num_audio_query_tokens, audio_hidden)
        self.audio_qformer = Blip2QFormerModel(config.audio_qformer_config)
        self.audio_projection = nn.Linear(audio_hidden, text_hidden)

        # (c) language model
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()
        self.freeze_pretrained_parts()

    def freeze_pretrained_parts(self) -> None:
        """Freeze what the paper freezes (per the config's `freeze_*` switches); the rest keeps its state."""
        frozen = {
            "vision_model": self.config.freeze_vision_encoder,
            "audio_encoder": self.config.freeze_audio_encoder,
            "language_model": self.config.freeze_language_model,
        }
        for name, freeze in frozen.items():
            if freeze:
                getattr(self, name).requires_grad_(False)
        # Only the query outputs of the image Q-Former are kept, so its last layer's text feed-forward never
        # reaches the loss. Trainable-but-unused parameters would stall DDP (unused-parameter error); freeze them.
        last_layer = self.qformer.encoder.layer[-1]
        for name in ("intermediate", "output"):
            if hasattr(last_layer, name):
                getattr(last_layer, name).requires_grad_(False)

    def train(self, mode: bool = True) -> "MicroEmoModel":
        super().train(mode)
        # Frozen encoders stay in eval mode (no dropout / drop-path noise), as in LAVIS and Video-LLaMA.
        if self.config.freeze_vision_encoder:
            self.vision_model.eval()
        if self.config.freeze_audio_encoder:
            self.audio_encoder.eval()
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ validation
    def _check_inputs(
        self,
        input_ids: torch.Tensor | None,
        pixel_values: torch.Tensor | None,
        frame_mask: torch.Tensor | None,
        qformer_input_ids: torch.Tensor | None,
        qformer_attention_mask: torch.Tensor | None,
        clue_masks: torch.Tensor | None,
        utterance_frame_mask: torch.Tensor | None,
        audio_values: torch.Tensor | None,
        audio_clip_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> None:
        """Shape, dtype and device checks, once, before any encoder runs. Never broadcast silently."""

        def fail(name: str, tensor: torch.Tensor, expected: str, problem: str = "has shape") -> None:
            raise ValueError(f"MicroEmo: `{name}` {problem} {tuple(tensor.shape)}, expected {expected}.")

        def check_device(name: str, tensor: torch.Tensor, module: nn.Module) -> None:
            if hasattr(module, "_hf_hook"):
                return  # dispatched with a device_map: accelerate's hook moves inputs to the module itself
            device = next(module.parameters()).device
            if device.type != "meta" and tensor.device != device:
                raise ValueError(f"MicroEmo: `{name}` is on {tensor.device}, but the module using it is on {device}.")

        def check_mask(name: str, tensor: torch.Tensor) -> None:
            if tensor.dtype != torch.bool and (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
                raise ValueError(f"MicroEmo: `{name}` has dtype {tensor.dtype}, expected torch.bool (or 0/1 integers).")

        named = {
            "input_ids": input_ids, "pixel_values": pixel_values, "frame_mask": frame_mask,
            "qformer_input_ids": qformer_input_ids, "qformer_attention_mask": qformer_attention_mask,
            "clue_masks": clue_masks, "utterance_frame_mask": utterance_frame_mask, "audio_values": audio_values,
            "audio_clip_mask": audio_clip_mask,
        }  # fmt: skip
        for name, value in named.items():
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"MicroEmo: `{name}` is a {type(value).__module__}.{type(value).__name__}, expected a torch.Tensor "
                    "(the processor returns tensors with return_tensors='pt')."
                )
        if input_ids is not None and (input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool):
            raise ValueError(f"MicroEmo: `input_ids` has dtype {input_ids.dtype}, expected integer token ids (torch.long).")
        if input_ids is not None:
            vocabulary = self.get_input_embeddings().num_embeddings
            if input_ids.numel() and input_ids.device.type != "meta" and (
                int(input_ids.min()) < 0 or int(input_ids.max()) >= vocabulary
            ):
                bad = input_ids[(input_ids < 0) | (input_ids >= vocabulary)].flatten()[0].item()
                raise ValueError(
                    f"MicroEmo: `input_ids` holds the id {bad}, outside the vocabulary [0, {vocabulary}); was it made by "
                    "another tokenizer?"
                )
        if inputs_embeds is not None and inputs_embeds.ndim != 3:
            fail("inputs_embeds", inputs_embeds, "(batch, sequence, hidden_size)")
        text = input_ids if input_ids is not None else inputs_embeds
        if text is not None:
            context, reason = _max_input_length(self.config.text_config)
            if text.shape[1] > context:
                name = "input_ids" if input_ids is not None else "inputs_embeds"
                raise ValueError(
                    f"MicroEmo: `{name}` holds {text.shape[1]} tokens, more than the language model's context "
                    f"({reason}); shorten the prompt or lower max_utterances."
                )

        batch_size = text.shape[0] if text is not None else None
        if pixel_values is not None:
            size = self.config.vision_config.image_size
            if pixel_values.ndim != 5 or tuple(pixel_values.shape[2:]) != (3, size, size):
                fail("pixel_values", pixel_values, f"(batch, frames, 3, {size}, {size})")
            if not pixel_values.dtype.is_floating_point:
                raise ValueError(f"MicroEmo: `pixel_values` has dtype {pixel_values.dtype}, expected a float dtype.")
            check_device("pixel_values", pixel_values, self.vision_model)
            b, t = pixel_values.shape[:2]
            if batch_size is not None and b != batch_size:
                fail("pixel_values", pixel_values, f"batch size {batch_size} as the text")
            if t > self.config.max_frames:
                fail("pixel_values", pixel_values, f"at most max_frames={self.config.max_frames} frames")
            if frame_mask is not None:
                check_mask("frame_mask", frame_mask)
                if tuple(frame_mask.shape) != (b, t):
                    fail("frame_mask", frame_mask, f"({b}, {t}) to match `pixel_values`")
                empty = (~frame_mask.bool().any(dim=1)).nonzero().flatten().tolist()
                if empty:
                    raise ValueError(f"MicroEmo: `frame_mask` marks no frame for sample(s) {empty}; each sample "
                                     "with video needs at least one frame.")
            frames = frame_mask.bool() if frame_mask is not None else torch.ones(b, t, dtype=torch.bool)
            for name, tensor in (("qformer_input_ids", qformer_input_ids), ("qformer_attention_mask", qformer_attention_mask)):
                if tensor is not None and (tensor.ndim != 3 or tuple(tensor.shape[:2]) != (b, t)):
                    fail(name, tensor, f"({b}, {t}, text_length)")
            if (
                qformer_input_ids is not None
                and qformer_attention_mask is not None
                and qformer_input_ids.shape != qformer_attention_mask.shape
            ):
                fail("qformer_attention_mask", qformer_attention_mask, f"{tuple(qformer_input_ids.shape)} as `qformer_input_ids`")
            if clue_masks is not None and self.config.use_local_clue_attention:
                check_mask("clue_masks", clue_masks)
                p = self.config.num_patches
                if clue_masks.ndim != 4 or tuple(clue_masks.shape[:2]) != (b, t) or clue_masks.shape[3] != p:
                    fail("clue_masks", clue_masks, f"({b}, {t}, regions, {p}) on the {int(p**0.5)}x{int(p**0.5)} patch grid")
            if utterance_frame_mask is not None and self.config.use_utterance_windows:
                check_mask("utterance_frame_mask", utterance_frame_mask)
                if utterance_frame_mask.ndim != 3 or utterance_frame_mask.shape[0] != b or utterance_frame_mask.shape[2] != t:
                    fail("utterance_frame_mask", utterance_frame_mask, f"({b}, utterances, {t})")
                if utterance_frame_mask.shape[1] > self.config.max_utterances:
                    fail("utterance_frame_mask", utterance_frame_mask,
                         f"at most max_utterances={self.config.max_utterances} utterances")
                outside = utterance_frame_mask.bool() & ~frames.to(utterance_frame_mask.device)[:, None, :]
                if outside.any():
                    sample, utterance, frame = outside.nonzero()[0].tolist()
                    raise ValueError(
                        f"MicroEmo: `utterance_frame_mask` assigns frame {frame} to utterance {utterance} of sample "
                        f"{sample}, but that frame is padding (the sample has {int(frames[sample].sum())} frames)."
                    )
        else:
            for name, tensor in (("clue_masks", clue_masks), ("utterance_frame_mask", utterance_frame_mask),
                                 ("qformer_input_ids", qformer_input_ids), ("frame_mask", frame_mask)):
                if tensor is not None:
                    raise ValueError(f"MicroEmo: `{name}` was given without `pixel_values`.")

        if audio_values is not None:
            if audio_values.ndim < 3:
                fail("audio_values", audio_values, "(batch, clips, *features)")
            if not audio_values.dtype.is_floating_point:
                raise ValueError(f"MicroEmo: `audio_values` has dtype {audio_values.dtype}, expected a float dtype.")
            check_device("audio_values", audio_values, self.audio_encoder)
            b, c = audio_values.shape[:2]
            if batch_size is not None and b != batch_size:
                fail("audio_values", audio_values, f"batch size {batch_size} as the text")
            if c > self.config.max_audio_clips:
                fail("audio_values", audio_values, f"at most max_audio_clips={self.config.max_audio_clips} clips")
            if self.config.audio_config.model_type == ImageBindAudioConfig.model_type:
                cfg = self.config.audio_config
                if tuple(audio_values.shape[2:]) != (1, cfg.num_mel_bins, cfg.target_length):
                    fail("audio_values", audio_values, f"({b}, {c}, 1, {cfg.num_mel_bins}, {cfg.target_length})")
            if audio_clip_mask is not None:
                check_mask("audio_clip_mask", audio_clip_mask)
                if tuple(audio_clip_mask.shape) != (b, c):
                    fail("audio_clip_mask", audio_clip_mask, f"({b}, {c}) to match `audio_values`")
        elif audio_clip_mask is not None:
            raise ValueError("MicroEmo: `audio_clip_mask` was given without `audio_values`.")
        for name, tensor in (("pixel_values", pixel_values), ("audio_values", audio_values)):
            # A NaN anywhere turns every logit into NaN and generate() into token 0: refuse it here, by sample.
            if tensor is None or tensor.device.type == "meta" or not tensor.dtype.is_floating_point:
                continue
            if not torch.isfinite(tensor).all():
                bad = (~torch.isfinite(tensor)).flatten(1).any(dim=1).nonzero().flatten().tolist()
                raise ValueError(f"MicroEmo: `{name}` holds NaN or infinite values (sample(s) {bad}); every value must be finite.")
            # Finite but huge values (1e30) overflow inside the encoders into the same NaN logits.
            if not bool((tensor.abs() <= MAX_ABS_FEATURE).all()):
                bad = (tensor.abs() > MAX_ABS_FEATURE).flatten(1).any(dim=1).nonzero().flatten().tolist()
                raise ValueError(
                    f"MicroEmo: `{name}` holds values beyond +-{MAX_ABS_FEATURE:g} (sample(s) {bad}); expected the "
                    "processor's normalised features, within a few units of 0."
                )

    # ------------------------------------------------------------------ video
    def get_frame_features(
        self,
        pixel_values: torch.Tensor,
        qformer_input_ids: torch.Tensor | None = None,
        qformer_attention_mask: torch.Tensor | None = None,
        clue_masks: torch.Tensor | None = None,
        frame_positions: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Timestamp-conditioned image Q-Former tokens of N real frames, global and local paths fused.

        `pixel_values` [N, 3, H, W], `qformer_input_ids` / `qformer_attention_mask` [N, L], `clue_masks` [N, R, P],
        `frame_positions` [N] (index of each frame in its video), `image_embeds` [N, 1+P, Dv] the frame encoder's
        output when the caller already has it. Returns [N, Q, Dq].
        """
        num_frames = pixel_values.shape[0]
        if image_embeds is None:
            image_embeds = self.vision_model(pixel_values=pixel_values).last_hidden_state  # [N, 1+P, Dv]
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=image_embeds.device)

        encoder_states, encoder_mask = image_embeds, image_mask
        text_ids, text_mask = qformer_input_ids, qformer_attention_mask
        face_frames = None
        if self.local_clue_attention is not None and clue_masks is not None:
            clue_masks = clue_masks.bool()
            # Frames with no face bypass the local path: an all-masked Q-Former pass would attend uniformly to
            # every patch (prior-art 7), which is noise, not a fallback.
            face_frames = clue_masks.flatten(1).any(dim=1).nonzero().flatten()
            if face_frames.numel() > 0:
                local, patch_mask = self.local_clue_attention(image_embeds[face_frames, 1:], clue_masks[face_frames])
                # The local pass reuses the image Q-Former in the same batched call, with the CLS slot masked.
                local = torch.cat([torch.zeros_like(local[:, :1]), local], dim=1)
                local_mask = torch.cat([torch.zeros_like(patch_mask[:, :1]), patch_mask], dim=1).long()
                encoder_states = torch.cat([image_embeds, local], dim=0)
                encoder_mask = torch.cat([image_mask, local_mask], dim=0)
                if text_ids is not None:
                    text_ids = torch.cat([text_ids, text_ids[face_frames]], dim=0)
                    if text_mask is not None:
                        text_mask = torch.cat([text_mask, text_mask[face_frames]], dim=0)

        rows = encoder_states.shape[0]
        query_tokens = self.query_tokens(rows)
        attention_mask = None
        if text_ids is not None:
            query_mask = torch.ones(query_tokens.shape[:2], dtype=torch.long, device=query_tokens.device)
            text_mask = torch.ones_like(text_ids) if text_mask is None else text_mask
            attention_mask = torch.cat([query_mask, text_mask.to(query_mask.device)], dim=1)
        query_output = self.qformer(
            input_ids=text_ids,
            attention_mask=attention_mask,
            query_embeds=query_tokens,
            encoder_hidden_states=encoder_states,
            encoder_attention_mask=encoder_mask,
        ).last_hidden_state[:, : self.config.num_query_tokens]  # keep the queries only (TimeChat #28 kept text too)

        frame_tokens = query_output[:num_frames]
        if face_frames is not None and face_frames.numel() > 0:
            fused = self.local_clue_attention.fuse(frame_tokens[face_frames], query_output[num_frames:])
            frame_tokens = frame_tokens.index_copy(0, face_frames, fused)
        if frame_positions is None:
            frame_positions = torch.arange(num_frames, device=frame_tokens.device)
        return frame_tokens + self.frame_position_embedding(frame_positions)[:, None, :]

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        qformer_input_ids: torch.Tensor | None = None,
        qformer_attention_mask: torch.Tensor | None = None,
        clue_masks: torch.Tensor | None = None,
        utterance_frame_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Video tokens of a batch, with the frame encoder's outputs.

        Inputs as in [`MicroEmoModel.forward`]; `output_hidden_states` / `output_attentions` (keywords or config)
        ask the frame encoder for its per-layer states, `return_dict=False` gives a tuple. Returns a
        `BaseModelOutputWithPooling` with:
            last_hidden_state [B, T, 1+P, Dv]: the frame encoder's output per sample and frame (zeros on padding);
            pooler_output: one tensor per sample, its projected video tokens [(1 + U_b) * V, D], the global window
                first, then its utterances in order (what replaces the sample's `<video>` placeholders);
            hidden_states / attentions: the frame encoder's over the batch's N real frames, when requested.
        """
        batch_size, num_frames = pixel_values.shape[:2]
        device = pixel_values.device
        if frame_mask is None:
            frame_mask = torch.ones(batch_size, num_frames, dtype=torch.bool, device=device)
        frame_mask = frame_mask.bool().to(device)
        real = frame_mask.nonzero()  # [N, 2] (sample, frame index), only real frames reach the encoders

        def per_frame(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)[real[:, 0], real[:, 1]]

        frames = pixel_values[real[:, 0], real[:, 1]]
        encoder_kwargs = _encoder_kwargs("get_video_features", kwargs)
        vision_outputs = self.vision_model(pixel_values=frames, return_dict=True, **encoder_kwargs)
        frame_tokens = self.get_frame_features(
            frames,
            per_frame(qformer_input_ids),
            per_frame(qformer_attention_mask),
            per_frame(clue_masks),
            frame_positions=real[:, 1],
            image_embeds=vision_outputs.last_hidden_state,
        )  # [N, Q, Dq]
        queries, hidden = frame_tokens.shape[1:]
        padded = frame_tokens.new_zeros(batch_size, num_frames, queries, hidden)
        padded[real[:, 0], real[:, 1]] = frame_tokens
        padded = padded.flatten(1, 2)  # [B, T*Q, Dq]

        global_tokens = self.video_qformer(
            query_embeds=self.video_query_tokens(batch_size),
            encoder_hidden_states=padded,
            encoder_attention_mask=frame_mask.repeat_interleave(queries, dim=1).long(),
        ).last_hidden_state  # [B, V, Dq]
        windows = [global_tokens[:, None]]
        window_valid = [torch.ones(batch_size, 1, dtype=torch.bool, device=device)]

        if self.utterance_qformer is not None and utterance_frame_mask is not None and utterance_frame_mask.shape[1] > 0:
            utterance_frame_mask = utterance_frame_mask.bool().to(device)
            utterance_valid = utterance_frame_mask.any(dim=-1)  # [B, U]
            sample_idx, utterance_idx = utterance_valid.nonzero(as_tuple=True)
            utterance_tokens = global_tokens.new_zeros(batch_size, utterance_frame_mask.shape[1], *global_tokens.shape[1:])
            if sample_idx.numel() > 0:
                # All utterance windows of the batch in one Q-Former call.
                window_mask = utterance_frame_mask[sample_idx, utterance_idx].repeat_interleave(queries, dim=1)
                utterance_tokens[sample_idx, utterance_idx] = self.utterance_qformer(
                    query_embeds=self.utterance_query_tokens(sample_idx.numel()),
                    encoder_hidden_states=padded[sample_idx],
                    encoder_attention_mask=window_mask.long(),
                ).last_hidden_state
            windows.append(utterance_tokens)
            window_valid.append(utterance_valid)

        windows_tensor = torch.cat(windows, dim=1)  # [B, 1+U, V, Dq]
        valid = torch.cat(window_valid, dim=1)  # [B, 1+U]
        video_embeds = self.video_projection(windows_tensor[valid].flatten(0, 1))
        per_sample = (valid.sum(dim=1) * self.config.num_video_query_tokens).tolist()

        image_embeds = vision_outputs.last_hidden_state
        frame_states = image_embeds.new_zeros(batch_size, num_frames, *image_embeds.shape[1:])
        frame_states[real[:, 0], real[:, 1]] = image_embeds
        return BaseModelOutputWithPooling(
            last_hidden_state=frame_states,
            pooler_output=tuple(video_embeds.split(per_sample)),
            hidden_states=vision_outputs.hidden_states,
            attentions=vision_outputs.attentions,
        )

    # ------------------------------------------------------------------ audio
    @can_return_tuple
    def get_audio_features(
        self, audio_values: torch.Tensor, audio_clip_mask: torch.Tensor | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        """Audio tokens of a batch, with the audio encoder's outputs.

        `audio_values` [B, C, *F], `audio_clip_mask` [B, C] as in [`MicroEmoModel.forward`]. Returns a
        `BaseModelOutputWithPooling` with:
            last_hidden_state [B, C, Da]: one embedding per clip from the audio encoder (zeros on padded clips);
            pooler_output: one tensor per sample, its projected audio tokens [A, D] ([0, D] without audio);
            hidden_states / attentions: the audio encoder's over the real clips, when it provides them.
        """
        batch_size, num_clips = audio_values.shape[:2]
        device = audio_values.device
        if audio_clip_mask is None:
            audio_clip_mask = torch.ones(batch_size, num_clips, dtype=torch.bool, device=device)
        audio_clip_mask = audio_clip_mask.bool().to(device)
        has_audio = audio_clip_mask.any(dim=1)
        text_hidden = self.config.text_config.hidden_size
        clip_states = audio_values.new_zeros(batch_size, num_clips, self.config.audio_output_size)
        encoder_kwargs = _encoder_kwargs("get_audio_features", kwargs)
        if not has_audio.any():
            empty = tuple(audio_values.new_zeros(0, text_hidden) for _ in range(batch_size))
            return BaseModelOutputWithPooling(last_hidden_state=clip_states, pooler_output=empty)

        encoder_output = self.audio_encoder(
            audio_values[audio_clip_mask].to(self.audio_encoder.dtype), return_dict=True, **encoder_kwargs
        )
        clip_embeds = getattr(encoder_output, "pooler_output", None)
        if clip_embeds is None:  # sequence encoders (HuBERT, Whisper): mean over time
            clip_embeds = encoder_output.last_hidden_state.mean(dim=1)
        clip_states = clip_states.to(clip_embeds.dtype)
        clip_states[audio_clip_mask] = clip_embeds
        positioned = clip_states + self.audio_position_embedding(torch.arange(num_clips, device=device))

        audio_tokens = self.audio_qformer(
            query_embeds=self.audio_query_tokens(int(has_audio.sum())),
            encoder_hidden_states=positioned[has_audio],
            encoder_attention_mask=audio_clip_mask[has_audio].long(),
        ).last_hidden_state  # [B_audio, A, Dq]
        audio_embeds = self.audio_projection(audio_tokens.flatten(0, 1))
        per_sample = (has_audio.long() * self.config.num_audio_query_tokens).tolist()
        return BaseModelOutputWithPooling(
            last_hidden_state=clip_states,
            pooler_output=tuple(audio_embeds.split(per_sample)),
            hidden_states=getattr(encoder_output, "hidden_states", None),
            attentions=getattr(encoder_output, "attentions", None),
        )

    def _unused_branch_anchor(self) -> torch.Tensor:
        """Zero, computed from one element of every trainable parameter outside the language model.

        A batch without faces, utterances or audio skips whole branches, and the image Q-Former's last text
        feed-forward never reaches the loss (it is frozen, but PEFT's `modules_to_save` copy un-freezes it).
        DDP without `find_unused_parameters` requires every trainable parameter to receive a gradient in every
        step; adding this zero puts them all in the graph at the cost of a few hundred one-element slices.
        """
        slices = [
            parameter.reshape(-1)[:1].sum()  # [:1] is empty for an FSDP shard holding no element
            for name, parameter in self.named_parameters()
            if parameter.requires_grad and not name.startswith("language_model.")
        ]
        if not slices:
            return torch.zeros((), device=self.get_input_embeddings().weight.device)
        return torch.stack([s.float() for s in slices]).sum() * 0.0

    # ------------------------------------------------------------------ merge
    def get_placeholder_mask(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor, token_id: int
    ) -> torch.Tensor:
        """[B, S] True at the placeholder `token_id`: from `input_ids`, or, without them, where `inputs_embeds`
        holds that token's embedding (as LLaVA does), so embeddings built by the caller still get their features."""
        if input_ids is not None:
            return input_ids == token_id
        token = torch.tensor(token_id, dtype=torch.long, device=inputs_embeds.device)
        return (inputs_embeds == self.get_input_embeddings()(token).to(inputs_embeds.dtype)).all(dim=-1)

    @staticmethod
    def _scatter_placeholders(
        inputs_embeds: torch.Tensor,
        placeholder_mask: torch.Tensor,
        features: torch.Tensor,
        expected_per_sample: list[int],
        modality: str,
        token_id: int,
        source: str,
    ) -> torch.Tensor:
        found = placeholder_mask.sum(dim=1).tolist()
        if found != expected_per_sample:
            raise ValueError(
                f"MicroEmo: `{source}` holds {found} {modality} placeholder tokens (id {token_id}) per sample, but the "
                f"{modality} inputs produce {expected_per_sample} {modality} tokens per sample ({features.shape[0]} in "
                "all). Expand the placeholders with the processor."
            )
        mask = placeholder_mask[..., None].expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, features.to(inputs_embeds.device, inputs_embeds.dtype))

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        frame_mask: torch.Tensor | None = None,
        qformer_input_ids: torch.LongTensor | None = None,
        qformer_attention_mask: torch.LongTensor | None = None,
        clue_masks: torch.Tensor | None = None,
        utterance_frame_mask: torch.Tensor | None = None,
        audio_values: torch.FloatTensor | None = None,
        audio_clip_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> MicroEmoModelOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, S)`): text with the `<video>` / `<audio>` placeholders
                already expanded to the exact token counts (`config.num_video_tokens(U)`, `num_audio_query_tokens`).
            inputs_embeds (`torch.FloatTensor` of shape `(B, S, D)`): instead of `input_ids`; the placeholders are
                the positions holding the `<video>` / `<audio>` token's embedding.
            cache (`Cache`): the language model's KV cache to continue from (`past_key_values` is the deprecated
                name of the same argument).
            pixel_values (`torch.FloatTensor` of shape `(B, T, 3, H, W)`): sampled frames, normalised.
            frame_mask (`torch.BoolTensor` of shape `(B, T)`): real frames (samples with fewer frames are padded).
            qformer_input_ids, qformer_attention_mask (`(B, T, L)`): the timestamp text of every frame,
                `This frame is sampled at {t} second.`, in the Q-Former tokenizer's ids.
            clue_masks (`torch.BoolTensor` of shape `(B, T, R, P)`): facial clue regions on the patch grid; a frame
                with no face is all False and uses the global path only.
            utterance_frame_mask (`torch.BoolTensor` of shape `(B, U, T)`): frames of each utterance; padded
                utterances are all False. No utterances (U = 0 or None) gives the global video tokens only.
            audio_values (`torch.FloatTensor` of shape `(B, C, *F)`): audio encoder inputs per clip.
            audio_clip_mask (`torch.BoolTensor` of shape `(B, C)`): real clips; an all-False row means no audio and
                no audio tokens for that sample.
            output_hidden_states, output_attentions, return_dict: as in transformers; the encoders' states are in
                `video_outputs` / `audio_outputs`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("MicroEmo: pass exactly one of `input_ids` and `inputs_embeds`.")
        self._check_inputs(
            input_ids, pixel_values, frame_mask, qformer_input_ids, qformer_attention_mask,
            clue_masks, utterance_frame_mask, audio_values, audio_clip_mask, inputs_embeds=inputs_embeds,
        )  # fmt: skip

        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        # Both masks before any scatter: a scattered feature could in principle equal a placeholder embedding.
        video_mask = self.get_placeholder_mask(input_ids, inputs_embeds, self.config.video_token_id)
        audio_mask = self.get_placeholder_mask(input_ids, inputs_embeds, self.config.audio_token_id)
        source = "input_ids" if input_ids is not None else "inputs_embeds"
        encoder_kwargs = {key: kwargs[key] for key in ("output_hidden_states", "output_attentions") if key in kwargs}

        video_outputs = audio_outputs = video_embeds = audio_embeds = None
        if pixel_values is not None:
            video_outputs = self.get_video_features(
                pixel_values, frame_mask, qformer_input_ids, qformer_attention_mask, clue_masks, utterance_frame_mask,
                return_dict=True, **encoder_kwargs,
            )  # fmt: skip
            video_embeds = torch.cat(video_outputs.pooler_output)
            counts = [tokens.shape[0] for tokens in video_outputs.pooler_output]
            inputs_embeds = self._scatter_placeholders(
                inputs_embeds, video_mask, video_embeds, counts, "video", self.config.video_token_id, source
            )
        if audio_values is not None:
            audio_outputs = self.get_audio_features(audio_values, audio_clip_mask, return_dict=True, **encoder_kwargs)
            audio_embeds = torch.cat(audio_outputs.pooler_output)
            counts = [tokens.shape[0] for tokens in audio_outputs.pooler_output]
            inputs_embeds = self._scatter_placeholders(
                inputs_embeds, audio_mask, audio_embeds, counts, "audio", self.config.audio_token_id, source
            )
        if self.training and torch.is_grad_enabled():
            inputs_embeds = inputs_embeds + self._unused_branch_anchor().to(inputs_embeds.dtype)
        decoding = cache is not None and cache.get_seq_length() > 0
        if not decoding:
            # Placeholders with no features to fill them would silently feed the placeholder embedding. (While
            # decoding, the multimodal tokens are already in the cache and the new tokens are plain text.)
            for mask, given, modality in ((video_mask, pixel_values is not None, "video"),
                                          (audio_mask, audio_values is not None, "audio")):  # fmt: skip
                if not given and mask.any():
                    raise ValueError(
                        f"MicroEmo: `{source}` holds {int(mask.sum())} {modality} placeholder tokens but no {modality} "
                        "inputs were given."
                    )

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return MicroEmoModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=video_outputs,
            audio_outputs=audio_outputs,
            video_embeds=video_embeds,
            audio_embeds=audio_embeds,
        )


class MicroEmoForConditionalGeneration(MicroEmoPreTrainedModel, GenerationMixin):
    """MicroEmo with the language-modelling head: the model to fine-tune and to `generate` with."""

    # With `tie_word_embeddings` the head IS the embedding; the language model's plan shards the embedding
    # (`embedding_rowwise`), so the head is sharded too, as in LlamaForCausalLM and LLaVA.
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: MicroEmoConfig):
        super().__init__(config)
        self.model = MicroEmoModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()
        self.freeze_pretrained_parts()
        # A generated placeholder id would be a token with no features behind it: never generate one.
        suppressed = set(self.generation_config.suppress_tokens or [])
        self.generation_config.suppress_tokens = sorted(suppressed | {config.video_token_id, config.audio_token_id})
        # `register_for_auto_class` records one Auto class; `save_pretrained` adds AutoConfig and AutoModel to the
        # `auto_map`, the image-text-to-text entry is ours to add.
        auto_map = dict(getattr(config, "auto_map", None) or {})
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map.setdefault("AutoModelForImageTextToText", f"{module}.{type(self).__name__}")
        config.auto_map = auto_map
        if getattr(config, "custom_pipelines", None) is None:
            config.custom_pipelines = copy.deepcopy(DEFAULT_CUSTOM_PIPELINES)

    def freeze_pretrained_parts(self) -> None:
        """Freeze the vision encoder, audio encoder and LLM (with its head) as the config says."""
        self.model.freeze_pretrained_parts()
        if self.config.freeze_language_model:
            self.lm_head.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_video_features(self, *args, **kwargs) -> BaseModelOutputWithPooling | tuple:
        """See [`MicroEmoModel.get_video_features`]."""
        return self.model.get_video_features(*args, **kwargs)

    def get_audio_features(self, *args, **kwargs) -> BaseModelOutputWithPooling | tuple:
        """See [`MicroEmoModel.get_audio_features`]."""
        return self.model.get_audio_features(*args, **kwargs)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        frame_mask: torch.Tensor | None = None,
        qformer_input_ids: torch.LongTensor | None = None,
        qformer_attention_mask: torch.LongTensor | None = None,
        clue_masks: torch.Tensor | None = None,
        utterance_frame_mask: torch.Tensor | None = None,
        audio_values: torch.FloatTensor | None = None,
        audio_clip_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MicroEmoCausalLMOutputWithPast:
        r"""
        Inputs as in [`MicroEmoModel.forward`], plus:
            labels (`torch.LongTensor` of shape `(B, S)`): token ids to predict, -100 where not supervised (the
                processor supervises only the answer). Shifted inside the loss.
            logits_to_keep (`int` or `torch.Tensor`): compute logits for the last `logits_to_keep` positions only
                (0 = all), as in transformers' causal LMs.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            frame_mask=frame_mask,
            qformer_input_ids=qformer_input_ids,
            qformer_attention_mask=qformer_attention_mask,
            clue_masks=clue_masks,
            utterance_frame_mask=utterance_frame_mask,
            audio_values=audio_values,
            audio_clip_mask=audio_clip_mask,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:] if logits_to_keep > 0 else hidden_states
        else:
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape if input_ids is not None else labels.shape[:2] != inputs_embeds.shape[:2]:
                raise ValueError(
                    f"MicroEmo: `labels` has shape {tuple(labels.shape)}, expected the shape of `input_ids` "
                    f"{tuple((input_ids if input_ids is not None else inputs_embeds).shape[:2])}."
                )
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )

        return MicroEmoCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=outputs.video_outputs,
            audio_outputs=outputs.audio_outputs,
            video_embeds=outputs.video_embeds,
            audio_embeds=outputs.audio_embeds,
        )

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Cache | None = None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        # The explicit `inputs_embeds` tells `generate` that the first step may start from embeddings.
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, next_sequence_length=next_sequence_length, cache=cache, attention_mask=attention_mask,
            inputs_embeds=inputs_embeds, is_first_iteration=is_first_iteration, **kwargs,
        )  # fmt: skip
        if not is_first_iteration and kwargs.get("use_cache", True):
            # The video and audio tokens are in the cache after prefill; encoding them again would fail the
            # placeholder check (the new token is not a placeholder) and waste the encoders' time.
            for name in _MULTIMODAL_INPUT_NAMES:
                model_inputs.pop(name, None)
        return model_inputs


__all__ = ["MicroEmoForConditionalGeneration", "MicroEmoModel", "MicroEmoPreTrainedModel"]
