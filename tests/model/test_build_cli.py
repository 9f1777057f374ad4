"""`microemo build-model`: the presets, the meta-device parameter table, and a saved tiny model."""

from __future__ import annotations

import re

import pytest
import torch

from microemo.cli import main
from microemo.modeling_microemo import MicroEmoForConditionalGeneration


def parameter_counts(output: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^(\w+)\s+([\d,]+)\s+[\d,]+", output, re.M)}


def test_paper_preset_on_meta_prints_the_papers_component_sizes(capsys):
    assert main(["build-model", "--preset", "paper", "--meta"]) == 0
    counts = parameter_counts(capsys.readouterr().out)
    assert 0.95e9 < counts["vision_model"] < 1.05e9  # EVA ViT-g/14: ~1.0B
    assert 6.6e9 < counts["language_model"] + counts["lm_head"] < 6.8e9  # LLaMA-2-7B: ~6.7B
    assert 80e6 < counts["audio_encoder"] < 90e6  # ImageBind-Huge audio branch
    assert counts["video_qformer"] == counts["utterance_qformer"]
    assert {"local_clue_attention", "audio_qformer", "video_projection", "utterance_query_tokens"} <= set(counts)


def test_tiny_random_preset_saves_a_loadable_model(tmp_path, capsys):
    assert main(["build-model", "--preset", "tiny-random", str(tmp_path / "tiny"), "--seed", "1"]) == 0
    assert "saved to" in capsys.readouterr().out
    model = MicroEmoForConditionalGeneration.from_pretrained(tmp_path / "tiny")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    assert size < 5e6  # "a few MB"
    torch.manual_seed(1)
    again = MicroEmoForConditionalGeneration(model.config)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)  # the seed makes the build reproducible


def test_paper_preset_without_weights_is_refused(tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["build-model", "--preset", "paper", str(tmp_path / "paper")])
    assert "--instructblip" in str(stop.value.code) and "--meta" in str(stop.value.code)
