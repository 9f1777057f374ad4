"""MicroEmo model configuration."""


from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.blip_2.configuration_blip_2 import Blip2QFormerConfig
from transformers.models.instructblip.configuration_instructblip import (
    InstructBlipQFormerConfig,
    InstructBlipVisionConfig,
)

from .imagebind_audio import ImageBindAudioConfig

# The audio sub-config is resolved by model type (ImageBind-style by default, any transformers audio
# encoder otherwise), so our own encoder's config must be known to AutoConfig wherever this file runs,
# including a remote-code process that has never imported the project.
AutoConfig.register(ImageBindAudioConfig.model_type, ImageBindAudioConfig, exist_ok=True)

# Video-LLaMA's video and audio Q-Formers: BERT with 2 layers, cross-attention in every layer and no text
# input; transformers' Blip2QFormerModel with these settings matches them key for key. A partial dict (e.g. only
# `hidden_size`) keeps that layout, since the defaults are the classes' own.


class MicroEmoVideoQFormerConfig(Blip2QFormerConfig):
    r"""
    Configuration of MicroEmo's global and utterance video Q-Formers (a [`Blip2QFormerModel`] over the frames'
    query tokens). Same fields as [`Blip2QFormerConfig`], with Video-LLaMA's defaults: 2 layers, cross-attention in
    every layer, no text input. Its own class (and `base_config_key`) so that
    `MicroEmoVideoQFormerConfig.from_pretrained(microemo_checkpoint)` returns this sub-config, not the image
    Q-Former's `qformer_config`.
    """

    model_type = "microemo_video_qformer"
    base_config_key = "video_qformer_config"

    num_hidden_layers: int = 2
    cross_attention_frequency: int = 1
    use_qformer_text_input: bool = False


class MicroEmoAudioQFormerConfig(Blip2QFormerConfig):
    r"""
    Configuration of MicroEmo's audio Q-Former (a [`Blip2QFormerModel`] over the audio clip embeddings): Video-LLaMA's
    defaults as [`MicroEmoVideoQFormerConfig`], loaded from a MicroEmo checkpoint's `audio_qformer_config`.
    """

    model_type = "microemo_audio_qformer"
    base_config_key = "audio_qformer_config"

    num_hidden_layers: int = 2
    cross_attention_frequency: int = 1
    use_qformer_text_input: bool = False


for _config_class in (MicroEmoVideoQFormerConfig, MicroEmoAudioQFormerConfig):
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)


class MicroEmoConfig(PreTrainedConfig):
    r"""
    Configuration of [`MicroEmoForConditionalGeneration`]. The defaults build the paper's model: EVA ViT-g/14 and
    the InstructBLIP Q-Former (`Salesforce/instructblip-vicuna-7b` shapes), Video-LLaMA's video and audio
    Q-Formers, an ImageBind-Huge-shaped audio encoder and LLaMA-2-7B (the chat model, on which Video-LLaMA-2's
    branches were trained).

    Sub-configurations:
        vision_config (`InstructBlipVisionConfig` or `dict`): frozen frame encoder (EVA ViT-g/14 at 224 px).
        qformer_config (`InstructBlipQFormerConfig` or `dict`): image Q-Former; its `encoder_hidden_size` is set
            to the vision width.
        video_qformer_config (`MicroEmoVideoQFormerConfig` or `dict`): the global video Q-Former and, when
            `use_utterance_windows`, the utterance Q-Former (2 layers, cross-attention in every layer, no text);
            its `encoder_hidden_size` is set to the image Q-Former width.
        audio_config (`dict` or config): audio encoder. `model_type="microemo_imagebind_audio"` (default) is the
            ImageBind-style encoder of `imagebind_audio.py`; any transformers audio model type (e.g. `hubert`,
            `whisper`) selects that model's encoder instead.
        audio_qformer_config (`MicroEmoAudioQFormerConfig` or `dict`): audio Q-Former (2 layers); its
            `encoder_hidden_size` is set to the audio encoder's output width.
        text_config (`dict` or config): the language model (`llama` by default), built with `AutoModel`.

    Args most users change:
        use_local_clue_attention (`bool`, defaults to `True`): the global-local attention visual encoder. Off
            gives the paper's "w/o global-local AVE" row: clue masks are ignored and the module does not exist.
        use_utterance_windows (`bool`, defaults to `True`): the utterance-aware video Q-Former. Off gives the
            "w/o utterance-aware V-QF" row: only the global video tokens, utterances are ignored.
        max_frames (`int`, defaults to 32): size of the frame position embedding, hence the most frames per
            video. Video-LLaMA's checkpoint has 32 (TimeChat 96); more frames than this raise an error instead of
            failing inside the embedding (Video-LLaMA issue #155).
        video_token_id, audio_token_id (`int`): ids of the `<video>` and `<audio>` placeholders in the tokenizer.

    Other args:
        num_query_tokens (`int`, defaults to 32): query tokens of the image Q-Former per frame.
        num_video_query_tokens (`int`, defaults to 32): output tokens per video window (global or utterance).
        num_audio_query_tokens (`int`, defaults to 8): output tokens of the audio Q-Former.
        max_audio_clips (`int`, defaults to 8): size of the audio clip position embedding.
        max_utterances (`int`, defaults to 16): most utterance windows per video (the processor merges beyond).
        clue_attention_num_heads (`int`, *optional*): heads of the local clue attention; defaults to the vision
            encoder's.
        freeze_vision_encoder, freeze_audio_encoder, freeze_language_model (`bool`, default `True`): as in the
            paper, the ViT, the audio encoder and the LLM base are frozen (`requires_grad=False`, and the two
            encoders stay in eval mode while the model trains). LoRA adapters are added by the training script.
        initializer_range (`float`, defaults to 0.02): std for the new modules' random initialisation.
    """

    model_type = "microemo"
    sub_configs_defaults = {
        "vision_config": InstructBlipVisionConfig,
        "qformer_config": InstructBlipQFormerConfig,
        "video_qformer_config": MicroEmoVideoQFormerConfig,
        "audio_config": SubConfigSpec(AutoConfig, model_type=ImageBindAudioConfig.model_type),
        "audio_qformer_config": MicroEmoAudioQFormerConfig,
        # LLaMA-2's 32000 tokens plus the `<video>` and `<audio>` placeholders.
        "text_config": SubConfigSpec(AutoConfig, model_type="llama", init_kwargs={"vocab_size": 32002}),
    }

    vision_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    video_qformer_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    audio_qformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None

    num_query_tokens: int = 32
    num_video_query_tokens: int = 32
    num_audio_query_tokens: int = 8
    max_frames: int = 32
    max_audio_clips: int = 8
    max_utterances: int = 16
    use_local_clue_attention: bool = True
    use_utterance_windows: bool = True
    clue_attention_num_heads: int | None = None
    video_token_id: int = 32000
    audio_token_id: int = 32001
    freeze_vision_encoder: bool = True
    freeze_audio_encoder: bool = True
    freeze_language_model: bool = True
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The cross-attention widths follow from the encoders; like InstructBlipConfig we derive them
        # rather than trust a value that could silently disagree.
        self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size
        self.video_qformer_config.encoder_hidden_size = self.qformer_config.hidden_size
        self.audio_qformer_config.encoder_hidden_size = self.audio_output_size
        self._validate()

    @property
    def audio_output_size(self) -> int:
        """Width of one clip embedding produced by the audio encoder."""
        # Compared by model type, not class: remote code may load this file and `imagebind_audio.py` as
        # separate module copies, so the config's class need not be the one imported here.
        if self.audio_config.model_type == ImageBindAudioConfig.model_type:
            return self.audio_config.projection_dim
        for name in ("output_hidden_size", "d_model", "hidden_size"):
            value = getattr(self.audio_config, name, None)
            if isinstance(value, int):
                return value
        raise ValueError(
            f"MicroEmoConfig: cannot tell the output width of audio encoder `{self.audio_config.model_type}`; "
            "expected one of `output_hidden_size`, `d_model` or `hidden_size` in its config."
        )

    @property
    def num_patches(self) -> int:
        """Patches per frame of the vision encoder (256 for ViT-g/14 at 224 px)."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    def num_video_tokens(self, num_utterances: int) -> int:
        """Video placeholder tokens for a sample with `num_utterances` utterance spans."""
        if num_utterances < 0:
            raise ValueError(f"num_utterances must be >= 0, got {num_utterances}.")
        windows = 1 + (num_utterances if self.use_utterance_windows else 0)
        return self.num_video_query_tokens * windows

    def _validate(self) -> None:
        positive = {
            "num_query_tokens": self.num_query_tokens,
            "num_video_query_tokens": self.num_video_query_tokens,
            "num_audio_query_tokens": self.num_audio_query_tokens,
            "max_frames": self.max_frames,
            "max_audio_clips": self.max_audio_clips,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"MicroEmoConfig: `{name}` must be >= 1, got {value}.")
        if self.max_utterances < 0:
            raise ValueError(f"MicroEmoConfig: `max_utterances` must be >= 0, got {self.max_utterances}.")
        if self.video_token_id == self.audio_token_id:
            raise ValueError(
                f"MicroEmoConfig: `video_token_id` and `audio_token_id` must differ, both are {self.video_token_id}."
            )
        vocab_size = self.text_config.vocab_size
        for name in ("video_token_id", "audio_token_id"):
            if not 0 <= getattr(self, name) < vocab_size:
                raise ValueError(
                    f"MicroEmoConfig: `{name}`={getattr(self, name)} is outside the language model's vocabulary "
                    f"[0, {vocab_size})."
                )
        heads = self.clue_attention_num_heads or self.vision_config.num_attention_heads
        if self.use_local_clue_attention and self.vision_config.hidden_size % heads != 0:
            raise ValueError(
                f"MicroEmoConfig: vision hidden size {self.vision_config.hidden_size} is not divisible by "
                f"clue_attention_num_heads={heads}."
            )


__all__ = ["MicroEmoAudioQFormerConfig", "MicroEmoConfig", "MicroEmoVideoQFormerConfig"]
