"""Paper-size coverage without weights: every tensor of `--preset paper` comes from one of the released checkpoints
(except the paper's new modules), with the right shape, and every unused checkpoint tensor is unused on purpose.

The checkpoints' key / shape lists come from the originals' module trees built at their published sizes on the meta
device (InstructBLIP Vicuna-7B and LLaMA-2-7B-chat from transformers, ImageBind-Huge from `imagebind-unofficial`)
and, for Video-LLaMA-2's two branch files, from the key tables of `test_video_llama.py` at Video-LLaMA's sizes.
`python -m tests.fidelity.test_paper_coverage` prints the table of docs/model.md.
"""

from __future__ import annotations

import re

import pytest
import torch
from transformers import (
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
)

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import paper_config
from microemo.training.convert_checkpoints import SOURCES, convert_sources

from .conftest import import_imagebind_model
from .test_video_llama import VIDEO_LLAMA_EMBEDDING_KEYS, VIDEO_LLAMA_LAYER_KEYS

# LLaMA-2-7B(-chat)'s config.json (meta-llama/Llama-2-7b-chat-hf); Vicuna-7B in InstructBLIP has the same shapes.
LLAMA_2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5)  # fmt: skip

# Checkpoint tensors that are not used, on purpose (docs/model.md, "Paper-size coverage"):
UNUSED_ON_PURPOSE = {
    "instructblip": r"^(language_model|language_projection)\.",  # InstructBLIP's own Vicuna and its projection
    "language_model": r"$^",  # nothing
    "video_llama_video": r"^(Qformer|audio_Qformer)\.bert\.embeddings\.position_ids$|^video_Qformer\.bert\.embeddings\.position_ids$",
    "video_llama_audio": r"^(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.position_ids$",
    # ImageBind's other five modalities, and the audio post-processor's fixed logit scale (20, in the config).
    "imagebind": r"^modality_\w+\.(vision|text|depth|thermal|imu)\.|^modality_postprocessors\.audio\.1\.log_logit_scale$",
}
# MicroEmo tensors no checkpoint provides: the paper's new module (random; the fusion gate starts at zero).
NEW_ON_PURPOSE = r"^model\.local_clue_attention\."


def meta_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.state_dict())


def video_llama_branch(prefix: str, encoder_width: int, extra: dict[str, tuple[int, ...]],
                       buffers: tuple[str, ...]) -> dict[str, torch.Tensor]:  # fmt: skip
    """A Video-LLaMA-2 branch file's keys at its sizes (BERT-base width 768, FFN 3072, 2 layers), as meta tensors."""
    hidden, ffn = 768, 3072
    shapes: dict[str, tuple[int, ...]] = {}
    for lavis in VIDEO_LLAMA_EMBEDDING_KEYS:
        shapes[f"{prefix}.{lavis}.weight"] = shapes[f"{prefix}.{lavis}.bias"] = (hidden,)
    for layer in range(2):
        for lavis in VIDEO_LLAMA_LAYER_KEYS:
            name = f"{prefix}.bert.encoder.layer.{layer}.{lavis}"
            inputs = encoder_width if lavis in ("crossattention.self.key", "crossattention.self.value") else hidden
            rows = ffn if lavis == "intermediate_query.dense" else hidden
            cols = ffn if lavis == "output_query.dense" else inputs
            if lavis.endswith("LayerNorm"):
                shapes[f"{name}.weight"] = (hidden,)
            else:
                shapes[f"{name}.weight"] = (rows, cols)
            shapes[f"{name}.bias"] = (rows,) if not lavis.endswith("LayerNorm") else (hidden,)
    shapes |= extra
    state = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    state |= {name: torch.empty(1, 512, dtype=torch.long, device="meta") for name in buffers}
    return state


@pytest.fixture(scope="module")
def paper_sources() -> dict[str, dict[str, torch.Tensor]]:
    imagebind = import_imagebind_model()
    with torch.device("meta"):
        instructblip = InstructBlipForConditionalGeneration(InstructBlipConfig(
            qformer_config=dict(vocab_size=30523), text_config=dict(model_type="llama", **LLAMA_2_7B),
            num_query_tokens=32))  # fmt: skip
        llama = LlamaForCausalLM(LlamaConfig(**LLAMA_2_7B))
        # ImageBind computes its drop-path schedule with `torch.linspace(...).item()`: keep that one on the CPU.
        linspace = torch.linspace
        torch.linspace = lambda *args, **kwargs: linspace(*args, **{**kwargs, "device": kwargs.get("device", "cpu")})
        try:
            imagebind_huge = imagebind.imagebind_huge(pretrained=False)
        finally:
            torch.linspace = linspace
    position = ("video_Qformer.bert.embeddings.position_ids",)
    return {
        "instructblip": meta_state(instructblip),
        "language_model": meta_state(llama),
        "video_llama_video": video_llama_branch("video_Qformer", 768, {
            "video_query_tokens": (1, 32, 768), "video_frame_position_embedding.weight": (32, 768),
            "llama_proj.weight": (4096, 768), "llama_proj.bias": (4096,)},
            position + ("Qformer.bert.embeddings.position_ids", "audio_Qformer.bert.embeddings.position_ids")),
        "video_llama_audio": video_llama_branch("audio_Qformer", 1024, {
            "audio_query_tokens": (1, 8, 768), "audio_position_embedding.weight": (8, 1024),
            "audio_llama_proj.weight": (4096, 768), "audio_llama_proj.bias": (4096,)},
            ("audio_Qformer.bert.embeddings.position_ids", "Qformer.bert.embeddings.position_ids") + position),
        "imagebind": meta_state(imagebind_huge),
    }  # fmt: skip


def coverage(paper_sources) -> dict:
    config = paper_config()
    with torch.device("meta"):
        model = MicroEmoForConditionalGeneration(config)
    targets = model.state_dict()
    state, reports = convert_sources(config, paper_sources, targets)  # raises on any shape mismatch
    rows = {}
    for name, report in zip(SOURCES, reports, strict=True):
        source = paper_sources[name]
        unused = sorted(set(source) - set(report.converted))
        rows[name] = dict(keys=len(source), converted=len(set(source) & set(report.converted)), unused=unused,
                          unexpected=report.unexpected)  # fmt: skip
    missing = sorted(k for k in set(targets) - set(state) if not k.endswith(("position_ids", "inv_freq")))
    return dict(rows=rows, missing=missing, targets=len(targets), loaded=len(state))


def test_paper_preset_is_covered_by_the_released_checkpoints(paper_sources):
    result = coverage(paper_sources)
    for name, row in result["rows"].items():
        assert not row["unexpected"], (name, row["unexpected"][:5])
        surprising = [key for key in row["unused"] if not re.search(UNUSED_ON_PURPOSE[name], key)]
        assert not surprising, (name, surprising[:5])
    assert result["missing"], "the local clue attention is new: it cannot come from a checkpoint"
    assert all(re.match(NEW_ON_PURPOSE, key) for key in result["missing"]), result["missing"]
    # Both video Q-Formers come from the vision-language branch: every utterance Q-Former tensor is converted.
    assert result["rows"]["video_llama_video"]["converted"] > 0


def test_every_tensor_of_the_paper_preset_has_its_checkpoint_shape(paper_sources):
    """`convert_sources` raises on a shape mismatch; check it really compares: a wrong width is refused."""
    broken = dict(paper_sources)
    broken["video_llama_audio"] = dict(paper_sources["video_llama_audio"])
    broken["video_llama_audio"]["audio_position_embedding.weight"] = torch.empty(8, 768, device="meta")
    config = paper_config()
    with torch.device("meta"):
        targets = MicroEmoForConditionalGeneration(config).state_dict()
    with pytest.raises(ValueError, match=r"audio_position_embedding.weight.*\(8, 768\).*\(8, 1024\)"):
        convert_sources(config, broken, targets)


def markdown_table(result: dict) -> str:
    lines = ["| source | tensors in the file | converted | unused on purpose | unexpected |", "|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['keys']} | {row['converted']} | {len(row['unused'])} | {len(row['unexpected'])} |")
    lines.append(f"\nMicroEmo `--preset paper`: {result['targets']} tensors, {result['loaded']} from checkpoints, "
                 f"{len(result['missing'])} new (`local_clue_attention.*`); 0 shape mismatches.")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.modules.setdefault("tests.fidelity.test_paper_coverage", sys.modules["__main__"])
    print(markdown_table(coverage(paper_sources.__wrapped__())))
