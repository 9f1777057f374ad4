"""Sharded preparation: `prepare-data --num-shards N --shard-index I` per machine, then one combining step."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from microemo.cli import main
from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.training.data import load_prepared

ASSETS = Path(__file__).resolve().parents[1] / "assets"
WRITTEN = ("split.json", "bad_rows.jsonl", "test_references.csv")


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory) -> Path:
    config = tiny_random_config()
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    folder = tmp_path_factory.mktemp("processor")
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_jsonl(tmp_path_factory) -> Path:
    """Five rows: four usable videos (three kinds) and a corrupt one, which preparation reports."""
    root = tmp_path_factory.mktemp("rows")
    (root / "corrupt.mp4").write_bytes((ASSETS / "face_speech.mp4").read_bytes()[:3000])
    sources = ["face_speech.mp4", "noface_speech.mp4", "face_rotated_vfr_silent.mp4", "face_speech.mp4"]
    lines = [{"name": f"s{i}", "video": str(ASSETS / source), "answer": f"answer {i}", "openset": [f"label{i}"]}
             for i, source in enumerate(sources)]  # fmt: skip
    lines.insert(2, {"name": "bad", "video": "corrupt.mp4", "answer": "broken", "openset": ["none"]})
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def prepare(data_jsonl: Path, processor_dir: Path, output: Path, *extra: str) -> int:
    return main(["prepare-data", "jsonl", str(data_jsonl), "--processor", str(processor_dir), "--output", str(output),
                 "--test-fraction", "0.4", "--seed", "3", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def one_shot(data_jsonl, processor_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("one-shot")
    assert prepare(data_jsonl, processor_dir, output) == 0
    return output


def assert_same_preparation(folder: Path, reference: Path) -> None:
    ours, theirs = load_prepared(folder), load_prepared(reference)
    assert set(ours) == set(theirs) == {"train", "test"}
    for part in ("train", "test"):
        assert ours[part].column_names == theirs[part].column_names
        assert ours[part].to_list() == theirs[part].to_list()  # same rows, same order, same prepared bytes
    for name in WRITTEN:
        assert (folder / name).read_text() == (reference / name).read_text(), name


def test_two_shards_combined_equal_the_one_shot_preparation(data_jsonl, processor_dir, one_shot, tmp_path, capsys):
    output = tmp_path / "sharded"
    assert prepare(data_jsonl, processor_dir, output, "--num-shards", "2", "--shard-index", "1") == 0
    assert prepare(data_jsonl, processor_dir, output, "--num-shards", "2", "--shard-index", "0") == 0
    assert not (output / "dataset").exists()  # a shard alone writes no dataset
    assert prepare(data_jsonl, processor_dir, output, "--num-shards", "2") == 0
    assert_same_preparation(output, one_shot)
    assert len(load_prepared(output)["train"]) + len(load_prepared(output)["test"]) == 4
    assert "unusable video" in (output / "bad_rows.jsonl").read_text()


def test_combining_before_every_shard_is_done_names_the_missing_shards(data_jsonl, processor_dir, tmp_path, capsys):
    output = tmp_path / "sharded"
    assert prepare(data_jsonl, processor_dir, output, "--num-shards", "3", "--shard-index", "2") == 0
    assert prepare(data_jsonl, processor_dir, output, "--num-shards", "3") == 1
    err = capsys.readouterr().err
    assert "shard(s) [0, 1] of 3" in err and "--shard-index" in err
    assert not (output / "dataset").exists()


def test_a_shard_index_outside_the_shards_is_refused(data_jsonl, processor_dir, tmp_path, capsys):
    assert prepare(data_jsonl, processor_dir, tmp_path / "x", "--num-shards", "2", "--shard-index", "2") == 1
    assert prepare(data_jsonl, processor_dir, tmp_path / "x", "--shard-index", "0") == 1
    err = capsys.readouterr().err
    assert "--shard-index must be in [0, --num-shards=2), got 2" in err and "needs --num-shards" in err


def test_under_accelerate_launch_each_process_prepares_a_shard_and_the_main_one_combines(
    data_jsonl, processor_dir, one_shot, tmp_path
):
    from microemo.sharding import launch_command

    output = tmp_path / "launched"
    command = launch_command(2, "microemo.training.cli", [
        "prepare-data", "jsonl", str(data_jsonl), "--processor", str(processor_dir), "--output", str(output),
        "--test-fraction", "0.4", "--seed", "3"])  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (output / "shards").iterdir()) == ["shard-00000-of-00002", "shard-00001-of-00002"]
    assert_same_preparation(output, one_shot)
