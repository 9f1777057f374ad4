"""Named model configurations: `tiny-random` for tests and the demo, `paper` for the paper's model."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a preset is built: the command line lists the names without transformers
    from microemo.modeling_microemo import MicroEmoConfig

# Reserved ids of the tiny vocabulary: the processor's tiny tokenizer places `<video>` and `<audio>`
# at the top of its 1024 ids.
TINY_VOCAB_SIZE = 1024
TINY_VIDEO_TOKEN_ID = 1022
TINY_AUDIO_TOKEN_ID = 1023


def tiny_random_config(**overrides) -> MicroEmoConfig:
    """A MicroEmo of a few MB with the real architecture: 64 px frames on an 8 x 8 patch grid, 2-layer
    ViT / Q-Formers / LLaMA, an ImageBind-style audio encoder on the real 128 x 204 fbank."""
    config = dict(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=64, patch_size=8, initializer_range=0.02,
        ),
        qformer_config=dict(
            vocab_size=TINY_VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, cross_attention_frequency=1,
        ),
        video_qformer_config=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64),
        audio_qformer_config=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64),
        audio_config=dict(
            model_type="microemo_imagebind_audio", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, projection_dim=48,
        ),
        text_config=dict(
            model_type="llama", vocab_size=TINY_VOCAB_SIZE, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        num_query_tokens=8,
        num_video_query_tokens=8,
        num_audio_query_tokens=4,
        max_frames=16,
        max_audio_clips=8,
        max_utterances=8,
        video_token_id=TINY_VIDEO_TOKEN_ID,
        audio_token_id=TINY_AUDIO_TOKEN_ID,
    )  # fmt: skip
    config.update(overrides)
    from microemo.modeling_microemo import MicroEmoConfig

    return MicroEmoConfig(**config)


def paper_config(**overrides) -> MicroEmoConfig:
    """The paper's model (section 4.1): EVA ViT-g/14 + InstructBLIP Q-Former (`Salesforce/instructblip-vicuna-7b`
    shapes), Video-LLaMA's video / audio Q-Formers, ImageBind-Huge audio shapes, LLaMA-2-7B (the chat model's
    shapes), 8 frames by default (the processor samples them), 32 image / video queries and 8 audio queries."""
    config = dict(
        vision_config=dict(),  # InstructBlipVisionConfig defaults are ViT-g/14 at 224 px
        qformer_config=dict(vocab_size=30523),  # bert-base-uncased + InstructBLIP's [DEC] token
        text_config=dict(
            model_type="llama", vocab_size=32002, hidden_size=4096, intermediate_size=11008,
            num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
            rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        num_query_tokens=32,
        num_video_query_tokens=32,
        num_audio_query_tokens=8,
        max_frames=32,
        max_audio_clips=8,
        video_token_id=32000,
        audio_token_id=32001,
    )  # fmt: skip
    config.update(overrides)
    from microemo.modeling_microemo import MicroEmoConfig

    return MicroEmoConfig(**config)


PRESETS = {"tiny-random": tiny_random_config, "paper": paper_config}
