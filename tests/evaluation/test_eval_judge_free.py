"""`microemo evaluate` without a judge: the judge-free scores, and a note that Accuracy_s / Recall_s need one."""

from __future__ import annotations

import json
import math
from pathlib import Path

from microemo.evaluation.runner import NEEDS_JUDGE_NOTE

from .test_eval_cli import REFERENCES_CSV, evaluate_cli

LABELS_JSONL = "\n".join(json.dumps(row) for row in [
    {"name": "sample_00000001", "openset": ["happy", "joyful"]},
    {"name": "sample_00000002", "openset": ["angry"]},
    {"name": "sample_00000003", "openset": ["calm"]},
]) + "\n"  # fmt: skip
EXPLANATIONS_CSV = """name,english
sample_00000001,"He smiles; he seems happy and excited."
sample_00000002,"She frowns; she is angry."
sample_00000003,"He looks sad."
"""


def run(tmp_path: Path, predictions: str, suffix: str) -> tuple[int, dict]:
    (tmp_path / "refs.csv").write_text(REFERENCES_CSV, encoding="utf-8")
    (tmp_path / f"pred{suffix}").write_text(predictions, encoding="utf-8")
    code = evaluate_cli("--predictions", str(tmp_path / f"pred{suffix}"), "--references", str(tmp_path / "refs.csv"),
                        "--output", str(tmp_path / "report.json"))  # fmt: skip
    return code, json.loads((tmp_path / "report.json").read_text())


def test_label_lists_without_a_judge_get_judge_free_scores_and_the_note(tmp_path, capsys):
    code, report = run(tmp_path, LABELS_JSONL, ".jsonl")
    out = capsys.readouterr().out
    assert code == 0
    # lemma match: 1 of 2 right (happy), 1 of 1 (angry), 0 of 1 (calm vs sad, worried)
    assert math.isclose(report["judge_free"]["lemma_match_precision"], (0.5 + 1 + 0) / 3)
    assert math.isnan(report["scores"]["accuracy_s"]) and math.isnan(report["scores"]["recall_s"])
    assert report["note"] == NEEDS_JUDGE_NOTE
    assert all(sample["accuracy"] is None for sample in report["samples"])
    assert "Accuracy_s / Recall_s need a judge" in out and "judge-free scores only" in out
    assert "| n/a" in out  # the table keeps its shape, with no made-up Accuracy_s


def test_explanations_without_a_judge_are_scored_on_their_emotion_words(tmp_path, capsys):
    code, report = run(tmp_path, EXPLANATIONS_CSV, ".csv")
    assert code == 0
    predictions = {sample["name"]: sample["prediction"] for sample in report["samples"]}
    assert {"happy", "excited"} <= set(predictions["sample_00000001"])
    assert "angry" in predictions["sample_00000002"]
    assert report["judge_free"]["lemma_match_recall"] > 0.5
    assert report["note"] == NEEDS_JUDGE_NOTE


def test_saved_groupings_that_cover_every_sample_still_give_accuracy_and_recall(tmp_path, capsys):
    groupings = {"sample_00000001": [["happy", "joyful"]], "sample_00000002": [], "sample_00000003": [["calm"], ["sad"]]}
    (tmp_path / "groupings.json").write_text(json.dumps({"samples": [{"name": k, "groups": v} for k, v in groupings.items()]}))
    (tmp_path / "refs.csv").write_text(REFERENCES_CSV, encoding="utf-8")
    (tmp_path / "pred.jsonl").write_text(LABELS_JSONL, encoding="utf-8")
    code = evaluate_cli("--predictions", str(tmp_path / "pred.jsonl"), "--references", str(tmp_path / "refs.csv"),
                        "--output", str(tmp_path / "report.json"), "--groupings", str(tmp_path / "groupings.json"))  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0 and report["note"] is None
    assert not math.isnan(report["scores"]["accuracy_s"])


def test_evaluate_help_prints_each_default_once(capsys):
    import pytest

    with pytest.raises(SystemExit):
        evaluate_cli("--help")
    text = capsys.readouterr().out
    assert text.count("(default: 8)") == 1 and "(default: 8) (default" not in text
    assert "default: None" not in text


def test_each_evaluate_module_says_plainly_that_it_needs_microemo():
    import evaluate

    root = Path(__file__).resolve().parents[2] / "evaluation"
    for name in ("emer_set_accuracy", "emotion_wheel"):
        card = (root / name / "README.md").read_text()
        assert "pip install microemo" in card and card.startswith("---\n"), name
        assert "pip install microemo" in evaluate.load(str(root / name)).description, name
