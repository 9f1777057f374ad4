"""`microemo build-model`: the presets, the meta-device parameter table, and a saved tiny model."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

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
    assert "saved the model, its processor and a model card to" in capsys.readouterr().out
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


def test_build_model_writes_one_hub_ready_folder(tmp_path):
    """Weights, remote code, processor with its chat template, and a model card, loadable with the project blocked."""
    folder = tmp_path / "tiny"
    assert main(["build-model", "--preset", "tiny-random", str(folder)]) == 0
    card = (folder / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["license"] == "apache-2.0" and metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "video-text-to-text" and "custom_code" in metadata["tags"]
    assert "randomly initialised" in card and "trust_remote_code=True" in card and "10.1145/3689092.3689408" in card
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["microemo"] = None
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert "generation" in processor.chat_template, "the chat template must mark the answers"
        assert processor.tokenizer.convert_tokens_to_ids("<video>") == model.config.video_token_id
        print(type(processor).__name__, type(model).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["MicroEmoProcessor", "MicroEmoForConditionalGeneration"]


def test_build_model_into_an_existing_file_fails_and_saves_nothing(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"x")
    with pytest.raises(SystemExit) as stop:
        main(["build-model", "--preset", "tiny-random", str(target)])
    assert "exists and is not a directory" in str(stop.value.code)
    assert target.read_bytes() == b"x"


def test_push_sends_the_model_files_of_the_folder(tmp_path, monkeypatch):
    """`microemo push` uploads what build-model wrote (the Hub client is replaced: no network in tests)."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, folder_path, repo_id, repo_type, allow_patterns=None):
            files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
            calls.append(("upload_folder", sorted(filter_repo_objects(files, allow_patterns=allow_patterns)), repo_id))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    folder = tmp_path / "tiny"
    main(["build-model", "--preset", "tiny-random", str(folder)])
    assert main(["push", str(folder), "someone/microemo-tiny", "--private"]) == 0
    assert calls[0] == ("create_repo", "someone/microemo-tiny", {"private": True, "exist_ok": True, "repo_type": "model"})
    uploaded = calls[1][1]
    for name in ("config.json", "model.safetensors", "modeling_microemo.py", "processor_config.json",
                 "processing_microemo.py", "tokenizer.json", "chat_template.jinja", "README.md"):  # fmt: skip
        assert name in uploaded, name
    assert 'from_pretrained("someone/microemo-tiny"' in (folder / "README.md").read_text()
