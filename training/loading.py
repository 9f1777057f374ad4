"""What `sft.py` loads: the model and processor, the prepared dataset, and the LoRA configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.processing.processing_microemo import MicroEmoProcessor

#: LoRA goes on the language model's attention projections only (never on a Q-Former or the ViT, whose
#: layers use other names, nor on the bridges, which are trained in full as `modules_to_save`).
DEFAULT_LORA_TARGET_MODULES = r".*language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"

#: Parameters of the modules that start from scratch (the local clue attention, which owns the fusion gate): the
#: optimizer gives them `new_modules_learning_rate` (docs/training.md). The utterance Q-Former and its queries are
#: new in the paper too but start from Video-LLaMA's video Q-Former, so they train at the global rate.
NEW_MODULE_NAMES = ("local_clue_attention",)

BASE_MODEL_FOLDER = "base-model"
DATA_FOLDER = "data"


def is_new_module_parameter(name: str) -> bool:
    """Whether a parameter name (plain or PEFT-wrapped) belongs to one of :data:`NEW_MODULE_NAMES`."""
    parts = name.split(".")
    return any(module in parts for module in NEW_MODULE_NAMES)


def _tiny_processor(config) -> MicroEmoProcessor:
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    return MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())


def build_preset_base(preset: str, output_dir: str | os.PathLike, seed: int) -> Path:
    """Build a random model of ``preset`` (only ``tiny-random``: the paper preset needs its pretrained parts, see
    ``microemo build-model``) with its processor and save both in ``output_dir/base-model``; an existing folder
    is reused, so a resumed run starts from the same initial weights."""
    from microemo.presets import PRESETS

    if preset != "tiny-random":
        raise ValueError(
            f"preset={preset!r}: only 'tiny-random' is built on the fly; assemble the {preset!r} model from its "
            f"pretrained parts with `microemo build-model --preset {preset} OUT ...` and pass model_name_or_path=OUT"
        )
    folder = Path(output_dir) / BASE_MODEL_FOLDER
    if not (folder / "config.json").is_file():
        config = PRESETS[preset]()
        torch.manual_seed(seed)
        model = MicroEmoForConditionalGeneration(config)
        model.save_pretrained(folder)
        _tiny_processor(config).save_pretrained(folder)
    return folder


def load_model_and_processor(
    model_name_or_path: str, processor_name_or_path: str | None = None, dtype: str | None = None, **kwargs: Any
) -> tuple[MicroEmoForConditionalGeneration, MicroEmoProcessor]:
    """The model (frozen parts frozen) and its processor (from ``processor_name_or_path``, else the model's
    folder). Raises when the folder holds no processor, or when the processor disagrees with the model.

    ``kwargs`` override model config fields (``use_local_clue_attention``, ``use_utterance_windows``: the
    ablations); the processor follows ``use_utterance_windows``. With a half-precision ``dtype`` the modules
    that train stay in float32, so that small updates (lr 3e-5) are not rounded away.
    """
    torch_dtype = getattr(torch, dtype) if dtype not in (None, "auto") else dtype
    model = MicroEmoForConditionalGeneration.from_pretrained(model_name_or_path, dtype=torch_dtype, **kwargs)
    if model.dtype != torch.float32:
        upcast_trained_modules(model)
    source = processor_name_or_path or model_name_or_path
    try:
        # The folder was written by save_pretrained, which registers the video processor as remote code.
        processor = MicroEmoProcessor.from_pretrained(source, trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{source}: no MicroEmo processor could be loaded ({error}); save one next to the model "
            "(processor.save_pretrained) or pass processor_name_or_path"
        ) from error
    config = model.config
    expected = {
        "num_video_query_tokens": config.num_video_query_tokens,
        "num_audio_query_tokens": config.num_audio_query_tokens,
        "use_utterance_windows": config.use_utterance_windows,
        "image_size": config.vision_config.image_size,
        "patch_size": config.vision_config.patch_size,
    }
    if "use_utterance_windows" in kwargs:
        processor.use_utterance_windows = bool(kwargs["use_utterance_windows"])
    found = {key: getattr(processor, key) for key in expected}
    if found != expected:
        raise ValueError(f"the processor of {source} does not match the model: processor {found}, model {expected}")
    return model, processor


def upcast_trained_modules(model: MicroEmoForConditionalGeneration) -> None:
    """Cast the modules the paper trains to float32 (the frozen encoders and LLM keep their dtype)."""
    for name in model.trainable_module_names:
        module = getattr(model.model, name, None)
        if module is not None:
            module.float()


def lora_config(model: MicroEmoForConditionalGeneration, r: int, alpha: int, dropout: float,
                target_modules: list[str] | str | None = None, modules_to_save: list[str] | None = None,
                **kwargs: Any):  # fmt: skip
    """A PEFT ``LoraConfig``: LoRA on the LLM's attention projections, the paper's trained modules (and
    ``modules_to_save``, if any) in full."""
    from peft import LoraConfig

    present = [name for name in model.trainable_module_names if getattr(model.model, name, None) is not None]
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules or DEFAULT_LORA_TARGET_MODULES,
        modules_to_save=present + [name for name in modules_to_save or () if name not in present],
        bias="none",
        task_type="CAUSAL_LM",
        **kwargs,
    )


__all__ = [
    "DEFAULT_LORA_TARGET_MODULES", "NEW_MODULE_NAMES", "is_new_module_parameter", "build_preset_base",
    "load_model_and_processor", "lora_config",
]  # fmt: skip
