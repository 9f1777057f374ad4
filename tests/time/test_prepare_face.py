"""prepare-data --face: the training rows carry the clues of the person chosen, as predict and the pipeline do."""

from __future__ import annotations

import json

from microemo.cli import main
from microemo.training.data import load_prepared


def _prepared_masks(rows, processor_dir, output, face: str) -> bytes:
    assert main(["prepare-data", "jsonl", str(rows), "--processor", str(processor_dir), "--output", str(output),
                 "--face", face]) == 0  # fmt: skip
    (row,) = load_prepared(output)["train"]
    return json.dumps(row["clue_masks"], sort_keys=True, default=str).encode()


def test_prepare_data_prepares_the_clues_of_the_face_asked_for(dialogue_clip, tiny_processor, tmp_path):
    path, _ = dialogue_clip
    tiny_processor.save_pretrained(tmp_path / "processor")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"name": "dialogue", "video": str(path), "answer": "She is calm."}) + "\n")
    speaker = _prepared_masks(rows, tmp_path / "processor", tmp_path / "speaker", "speaker")
    left = _prepared_masks(rows, tmp_path / "processor", tmp_path / "left", "0")
    largest = _prepared_masks(rows, tmp_path / "processor", tmp_path / "largest", "largest")
    # The generated clip: the left person speaks, the right one is larger.
    assert speaker == left and largest != speaker


def test_prepare_data_refuses_a_face_it_cannot_use(dialogue_clip, tiny_processor, tmp_path, capsys):
    tiny_processor.save_pretrained(tmp_path / "processor")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"name": "dialogue", "video": str(dialogue_clip[0]), "answer": "calm"}) + "\n")
    code = main(["prepare-data", "jsonl", str(rows), "--processor", str(tmp_path / "processor"), "--output",
                 str(tmp_path / "out"), "--face", "loudest"])  # fmt: skip
    assert code != 0 and "--face must be 'speaker', 'largest' or a face index" in capsys.readouterr().err
