"""Publishing a model folder: only the files a model repository needs go to the Hub (the client is replaced)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.utils import filter_repo_objects

from microemo.hub import plan_push, push_model_folder

MODEL_FILES = [
    "config.json", "generation_config.json", "model.safetensors", "configuration_microemo.py", "modeling_microemo.py",
    "processing_microemo.py", "face_regions.py", "pipeline_microemo.py", "processor_config.json", "tokenizer.json",
    "tokenizer_config.json", "chat_template.jinja", "qformer_tokenizer/tokenizer.json",
    "qformer_tokenizer/tokenizer_config.json", "README.md",
]  # fmt: skip
RUN_FILES = [
    "data/dataset/train/data-00000-of-00001.arrow", "data/frames/clip_a/000.jpg", "data/split.json",
    "checkpoint-10/model.safetensors", "checkpoint-10/optimizer.pt", "checkpoint-10/trainer_state.json",
    "base-model/model.safetensors", "base-model/config.json", "runs/events.out.tfevents", "trainer_state.json",
    "training_args.bin", "all_results.json", "predictions.jsonl", "report.html", "__pycache__/modeling_microemo.pyc",
]  # fmt: skip


class RecordingApi:
    """Stands in for ``huggingface_hub.HfApi``: records what the real client would upload (same filtering)."""

    def __init__(self) -> None:
        self.uploaded: list[str] | None = None
        self.created: list[tuple[str, dict]] = []

    def create_repo(self, repo_id: str, **kwargs) -> None:
        self.created.append((repo_id, kwargs))

    def upload_folder(self, *, folder_path: str, repo_id: str, repo_type: str, allow_patterns=None, ignore_patterns=None):
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        self.uploaded = sorted(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))


def trained_like_folder(root: Path, extra: list[str] = ()) -> Path:
    for name in MODEL_FILES + RUN_FILES + list(extra):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\nlicense: apache-2.0\n---\npath/to/this/folder\n" if name == "README.md" else "x")
    return root


def test_push_of_a_trained_folder_uploads_no_training_data_checkpoint_or_base_model(tmp_path):
    folder = trained_like_folder(tmp_path / "run")
    api, printed = RecordingApi(), []
    push_model_folder(folder, "someone/microemo", api=api, log=printed.append)
    assert api.uploaded == sorted(MODEL_FILES)
    assert not any(path.startswith(("data/", "checkpoint-", "base-model/", "runs/")) for path in api.uploaded)
    summary = "\n".join(printed)
    assert "uploading 15 files" in summary and "model.safetensors" in summary
    for left_out in ("data/ (3 files)", "checkpoint-10/ (3 files)", "base-model/ (2 files)", "training_args.bin"):
        assert left_out in summary, left_out
    assert 'someone/microemo' in (folder / "README.md").read_text()


def test_push_of_an_unmerged_lora_run_uploads_the_adapter(tmp_path):
    folder = trained_like_folder(tmp_path / "run", extra=["adapter_config.json", "adapter_model.safetensors"])
    api = RecordingApi()
    push_model_folder(folder, "someone/microemo-lora", api=api, log=lambda _: None)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(api.uploaded)


def test_push_include_adds_files_on_purpose_and_only_those(tmp_path):
    folder = trained_like_folder(tmp_path / "run")
    api = RecordingApi()
    push_model_folder(folder, "someone/microemo", include=["all_results.json", "runs/*"], api=api, log=lambda _: None)
    assert {"all_results.json", "runs/events.out.tfevents"} <= set(api.uploaded)
    assert not any(path.startswith(("data/", "base-model/")) for path in api.uploaded)


def test_file_names_with_pattern_characters_are_uploaded_as_named(tmp_path):
    folder = trained_like_folder(tmp_path / "run", extra=["model-[1].safetensors", "model-1.safetensors"])
    plan = plan_push(folder)
    assert "model-[1].safetensors" in plan.upload
    api = RecordingApi()
    push_model_folder(folder, "someone/microemo", api=api, log=lambda _: None)
    assert {"model-[1].safetensors", "model-1.safetensors"} <= set(api.uploaded)


def test_push_of_a_folder_without_a_model_refuses_before_touching_the_hub(tmp_path):
    folder = tmp_path / "run"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "x.arrow").write_text("x")
    (folder / "README.md").write_text("card")
    api = RecordingApi()
    with pytest.raises(FileNotFoundError, match="config.json or adapter_config.json"):
        push_model_folder(folder, "someone/microemo", api=api, log=lambda _: None)
    assert api.created == [] and api.uploaded is None
