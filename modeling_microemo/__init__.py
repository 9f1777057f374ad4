"""The Hub-shipped MicroEmo model code: configuration, model, and the ImageBind-style audio encoder.

Importing this package registers the classes with transformers' Auto classes, and marks them for
`save_pretrained` to write an `auto_map` and copy these files, so that a saved model loads with
`AutoModel.from_pretrained(path, trust_remote_code=True)` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration_microemo import MicroEmoAudioQFormerConfig, MicroEmoConfig, MicroEmoVideoQFormerConfig
from .imagebind_audio import ImageBindAudioConfig, ImageBindAudioModel
from .modeling_microemo import (
    MicroEmoCausalLMOutputWithPast,
    MicroEmoForConditionalGeneration,
    MicroEmoModel,
    MicroEmoModelOutputWithPast,
    MicroEmoPreTrainedModel,
)

AutoConfig.register(MicroEmoConfig.model_type, MicroEmoConfig, exist_ok=True)
AutoModel.register(MicroEmoConfig, MicroEmoForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(MicroEmoConfig, MicroEmoForConditionalGeneration, exist_ok=True)

MicroEmoConfig.register_for_auto_class("AutoConfig")
MicroEmoForConditionalGeneration.register_for_auto_class("AutoModel")

__all__ = [
    "ImageBindAudioConfig",
    "ImageBindAudioModel",
    "MicroEmoAudioQFormerConfig",
    "MicroEmoCausalLMOutputWithPast",
    "MicroEmoConfig",
    "MicroEmoForConditionalGeneration",
    "MicroEmoModel",
    "MicroEmoModelOutputWithPast",
    "MicroEmoPreTrainedModel",
    "MicroEmoVideoQFormerConfig",
]
