"""Reading EMER's prediction and reference files, and writing reports that are never half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microemo.evaluation.io import align, read_samples, write_json_atomic


def test_a_csv_exported_with_a_byte_order_mark_still_has_its_name_column(tmp_path: Path):
    path = tmp_path / "refs.csv"
    path.write_text("name,openset\nsample_1,\"['happy']\"\nsample_2,none\n", encoding="utf-8-sig")
    table = read_samples(path)
    assert table.field == "openset" and table.holds_labels
    assert table.values == {"sample_1": "['happy']", "sample_2": "none"}  # "none" is a word, not a missing value


def test_explanation_columns_are_found_when_there_are_no_labels(tmp_path: Path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"name": "s", "chinese": "高兴", "english": "He is happy."}) + "\n\n")
    table = read_samples(path)
    assert table.field == "english" and not table.holds_labels and table.values == {"s": "He is happy."}


def test_a_json_list_of_objects_is_read(tmp_path: Path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([{"name": "s", "labels": ["happy", "calm"]}]))
    assert read_samples(path).values == {"s": ["happy", "calm"]}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "sample,openset\ns,[]\n", "no 'name' column"),
        ("b.csv", "name,openset\ns,[]\ns,[happy]\n", "'s' appears twice"),
        ("c.csv", "name,score\ns,1\n", "none of the columns"),
        ("d.jsonl", '{"name": "s", "openset": []}\nnot json\n', "line 2: not JSON"),
        ("e.jsonl", '["s", []]\n', "line 1: got a JSON list"),
        ("f.txt", "name,openset\n", "unknown file type '.txt'"),
        ("g.csv", "name,openset\n,[happy]\n", "row 1 has no name"),
    ],
)
def test_malformed_files_are_named_with_the_problem(tmp_path: Path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_samples(path)


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        read_samples(tmp_path / "nope.csv")


def test_predictions_and_references_must_name_the_same_samples(tmp_path: Path):
    refs, preds = tmp_path / "r.csv", tmp_path / "p.csv"
    refs.write_text("name,openset\na,[x]\nb,[y]\n")
    preds.write_text("name,openset\nb,[y]\na,[x]\n")
    assert align(read_samples(preds), read_samples(refs)) == ["a", "b"]  # the references' order
    preds.write_text("name,openset\na,[x]\nb,[y]\nc,[z]\n")
    with pytest.raises(ValueError, match=r"unknown sample names\), e.g. \['c'\]"):
        align(read_samples(preds), read_samples(refs))


def test_a_report_write_that_fails_leaves_the_old_report_untouched(tmp_path: Path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"scores": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"scores": object()})  # not JSON: fails half-way through the dump
    assert json.loads(path.read_text()) == {"scores": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind
