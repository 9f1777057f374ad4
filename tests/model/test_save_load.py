"""Checkpoints: safetensors round trip, and remote-code loading where the project cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from microemo.modeling_microemo import MicroEmoForConditionalGeneration

MODEL_FILES = {"configuration_microemo.py", "modeling_microemo.py", "imagebind_audio.py"}


def test_save_load_round_trip_gives_identical_logits(tiny_model, make_batch, tmp_path):
    batch = make_batch(tiny_model.config, frames=[3, 2], utterances=[1, 2], audio_clips=[4, 0])
    tiny_model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    assert MODEL_FILES <= files

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "microemo"
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageTextToText"}

    reloaded = MicroEmoForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(tiny_model(**batch).logits, reloaded(**batch).logits)
    # Freezing is part of the model's definition, not of the training script: it survives a reload.
    assert not any(p.requires_grad for p in reloaded.model.vision_model.parameters())
    assert all(p.requires_grad for p in reloaded.model.video_qformer.parameters())


REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys, torch

    class BlockProject(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"microemo", "modeling_microemo", "processing", "training", "evaluation"}:
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, BlockProject())
    try:
        import microemo  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the project is still importable")

    from transformers import AutoModel, AutoModelForImageTextToText

    checkpoint, batch_file, logits_file = sys.argv[1:4]
    batch = torch.load(batch_file, weights_only=True)
    expected = torch.load(logits_file, weights_only=True)
    for auto_class in (AutoModel, AutoModelForImageTextToText):
        model = auto_class.from_pretrained(checkpoint, trust_remote_code=True).eval()
        assert type(model).__name__ == "MicroEmoForConditionalGeneration", type(model)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(**batch).logits
        assert torch.equal(logits, expected), (logits - expected).abs().max()
        generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
        assert generated.shape[1] == batch["input_ids"].shape[1] + 3
    print("REMOTE_OK")
    """
)


def test_remote_code_load_with_the_project_blocked(tiny_model, make_batch, tmp_path):
    batch = make_batch(tiny_model.config, frames=[2], utterances=[1], audio_clips=[2])
    checkpoint = tmp_path / "checkpoint"
    tiny_model.save_pretrained(checkpoint)
    with torch.no_grad():
        logits = tiny_model(**batch).logits
    torch.save(batch, tmp_path / "batch.pt")
    torch.save(logits, tmp_path / "logits.pt")
    (tmp_path / "remote.py").write_text(REMOTE_SCRIPT)

    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "remote.py"), str(checkpoint), str(tmp_path / "batch.pt"),
         str(tmp_path / "logits.pt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REMOTE_OK" in result.stdout
    copied = {path.name for path in Path(tmp_path / "hf_home").rglob("*.py")}
    assert MODEL_FILES <= copied
