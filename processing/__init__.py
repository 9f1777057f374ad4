"""MicroEmo's processing: raw media -> model inputs (see README.md).

Importing this package registers the processor and its video processor with transformers' Auto classes for
MicroEmo's config, as importing ``microemo.modeling_microemo`` registers the model: with the project installed,
``AutoProcessor`` / ``AutoVideoProcessor.from_pretrained(folder)`` use these classes like a library model's,
without ``trust_remote_code``. (This file does not ship to the Hub; the saved ``auto_map`` serves remote code.)
"""

from transformers import AutoProcessor, AutoVideoProcessor

from ..modeling_microemo.configuration_microemo import MicroEmoConfig
from .processing_microemo import MicroEmoProcessor
from .video_processing_microemo import MicroEmoVideoProcessor

AutoProcessor.register(MicroEmoConfig, MicroEmoProcessor, exist_ok=True)
AutoVideoProcessor.register(MicroEmoConfig, MicroEmoVideoProcessor, exist_ok=True)
