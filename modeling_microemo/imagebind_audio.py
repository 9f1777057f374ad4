"""An audio encoder with the shapes and parameter names of ImageBind's audio branch.

ImageBind (Girdhar et al., 2023) is not part of transformers; MicroEmo, like Video-LLaMA, uses its
audio encoder frozen. This file re-implements that branch as a `PreTrainedModel` so that it loads,
saves and ships with a MicroEmo checkpoint. With the default config it has ImageBind-Huge's audio
shapes (12 layers of width 768, output 1024). The input is one normalised 128-bin fbank image per
2-second clip, shape [N, 1, 128, 204]; the output is one L2-normalised embedding per clip, scaled by
20 as in ImageBind's post-processor.

Parameter names follow ImageBind's so that a converter needs only prefix renames:
`stem` <- `modality_preprocessors.audio.rgbt_stem.proj`, `blocks.N.attn.*` <- the same names under
`modality_trunks.audio`, and so on (see `training/convert_checkpoints.py`).
"""


from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput


class ImageBindAudioConfig(PreTrainedConfig):
    r"""
    Configuration of [`ImageBindAudioModel`]. The defaults are ImageBind-Huge's audio branch.

    Args:
        hidden_size (`int`, defaults to 768): width of the transformer trunk.
        num_hidden_layers (`int`, defaults to 12): number of pre-norm transformer blocks.
        num_attention_heads (`int`, defaults to 12): attention heads per block.
        intermediate_size (`int`, defaults to 3072): width of each block's MLP.
        num_mel_bins (`int`, defaults to 128): mel bins of the input fbank.
        target_length (`int`, defaults to 204): fbank frames per clip (2 s at a 10 ms shift, padded).
        patch_size (`int`, defaults to 16): kernel of the convolutional stem.
        patch_stride (`int`, defaults to 10): stride of the stem (overlapping patches, as in AST).
        projection_dim (`int`, defaults to 1024): width of the output embedding.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth at the last block (linear from 0).
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of the trunk and head layer norms.
        stem_layer_norm_eps (`float`, defaults to 1e-5): epsilon of the layer norm after the stem.
        logit_scale (`float`, defaults to 20.0): fixed scale applied after L2 normalisation.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal initialisation.
    """

    model_type = "microemo_imagebind_audio"
    base_config_key = "audio_config"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_mel_bins: int = 128
    target_length: int = 204
    patch_size: int = 16
    patch_stride: int = 10
    projection_dim: int = 1024
    drop_path_rate: float = 0.1
    layer_norm_eps: float = 1e-6
    stem_layer_norm_eps: float = 1e-5
    logit_scale: float = 20.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"ImageBindAudioConfig: hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        if self.num_mel_bins < self.patch_size or self.target_length < self.patch_size:
            raise ValueError(
                f"ImageBindAudioConfig: the fbank ({self.num_mel_bins} x {self.target_length}) must be at "
                f"least one patch ({self.patch_size}) in each direction."
            )

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(mel patches, time patches) produced by the stem; (12, 19) for ImageBind-Huge."""
        mel = (self.num_mel_bins - self.patch_size) // self.patch_stride + 1
        time = (self.target_length - self.patch_size) // self.patch_stride + 1
        return mel, time

    @property
    def num_patches(self) -> int:
        mel, time = self.patch_grid
        return mel * time


@dataclass
class ImageBindAudioOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(N, 1 + num_patches, hidden_size)`):
            trunk output (after the head's layer norm), CLS token first.
        pooler_output (`torch.FloatTensor` of shape `(N, projection_dim)`):
            the clip embedding: projected CLS token, L2-normalised and multiplied by `logit_scale`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability `rate`."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return hidden_states
        keep = 1.0 - self.rate
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        mask = hidden_states.new_empty(shape).bernoulli_(keep)
        return hidden_states * mask / keep


class ImageBindAudioMLP(nn.Module):
    def __init__(self, config: ImageBindAudioConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()  # exact GELU, as ImageBind
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class ImageBindAudioBlock(nn.Module):
    """Pre-norm block. The attention has learned extra key/value biases (`add_bias_kv`), as ImageBind."""

    def __init__(self, config: ImageBindAudioConfig, drop_path_rate: float):
        super().__init__()
        self.config = config
        self.norm_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = nn.MultiheadAttention(
            config.hidden_size, config.num_attention_heads, bias=True, add_bias_kv=True, batch_first=True
        )
        self.norm_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = ImageBindAudioMLP(config)
        self.drop_path = DropPath(drop_path_rate)

    def attention(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``nn.MultiheadAttention``'s computation on its own parameters (so checkpoints keep ImageBind's key
        names), with SDPA or the eager matmul-softmax as ``config._attn_implementation`` says."""
        attn = self.attn
        batch, length, width = hidden_states.shape
        heads = attn.num_heads
        query, key, value = nn.functional.linear(hidden_states, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        # add_bias_kv: one learned key / value appended after the sequence's own.
        key = torch.cat([key, attn.bias_k.transpose(0, 1).expand(batch, 1, width)], dim=1)
        value = torch.cat([value, attn.bias_v.transpose(0, 1).expand(batch, 1, width)], dim=1)
        query, key, value = (x.unflatten(-1, (heads, width // heads)).transpose(1, 2) for x in (query, key, value))
        if self.config._attn_implementation == "eager":
            weights = (query @ key.transpose(-1, -2)) * (width // heads) ** -0.5
            attended = weights.softmax(dim=-1) @ value
        else:
            attended = nn.functional.scaled_dot_product_attention(query, key, value)
        return attn.out_proj(attended.transpose(1, 2).reshape(batch, length, width))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attended = self.attention(self.norm_1(hidden_states))
        hidden_states = hidden_states + self.drop_path(attended)
        return hidden_states + self.drop_path(self.mlp(self.norm_2(hidden_states)))


class ImageBindAudioPreTrainedModel(PreTrainedModel):
    config: ImageBindAudioConfig
    base_model_prefix = "audio_encoder"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ImageBindAudioModel):
            init.trunc_normal_(module.cls_token, std=self.config.initializer_range)
            init.trunc_normal_(module.pos_embed, std=self.config.initializer_range)


class ImageBindAudioModel(ImageBindAudioPreTrainedModel):
    """ImageBind's audio branch: conv stem -> 12 pre-norm blocks -> CLS -> projection -> normalise x 20."""

    def __init__(self, config: ImageBindAudioConfig):
        super().__init__(config)
        self.stem = nn.Conv2d(
            1, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_stride, bias=False
        )
        self.stem_norm = nn.LayerNorm(config.hidden_size, eps=config.stem_layer_norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.num_patches, config.hidden_size))
        last = max(config.num_hidden_layers - 1, 1)  # plain Python: the model may be built on the meta device
        rates = [config.drop_path_rate * i / last for i in range(config.num_hidden_layers)]
        self.blocks = nn.ModuleList([ImageBindAudioBlock(config, rate) for rate in rates])
        self.head_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.head_proj = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        self.post_init()

    def forward(self, input_features: torch.Tensor, **kwargs) -> ImageBindAudioOutput:
        """`input_features`: [N, 1, num_mel_bins, target_length] normalised fbank, one per clip."""
        expected = (1, self.config.num_mel_bins, self.config.target_length)
        if input_features.ndim != 4 or tuple(input_features.shape[1:]) != expected:
            raise ValueError(
                f"ImageBindAudioModel: `input_features` has shape {tuple(input_features.shape)}, "
                f"expected (N, {', '.join(map(str, expected))})."
            )
        patches = self.stem(input_features.to(self.stem.weight.dtype))  # [N, D, mel, time]
        patches = self.stem_norm(patches.flatten(2).transpose(1, 2))  # [N, mel*time, D], mel-major
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        hidden_states = torch.cat([cls, patches], dim=1) + self.pos_embed
        for block in self.blocks:
            hidden_states = block(hidden_states)
        hidden_states = self.head_norm(hidden_states)
        embedding = self.head_proj(hidden_states[:, 0])
        embedding = nn.functional.normalize(embedding, dim=-1) * self.config.logit_scale
        return ImageBindAudioOutput(last_hidden_state=hidden_states, pooler_output=embedding)


__all__ = ["ImageBindAudioConfig", "ImageBindAudioModel", "ImageBindAudioPreTrainedModel"]
