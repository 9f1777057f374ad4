"""Accuracy_s / Recall_s by hand, label-list and grouping parsing, saved groupings, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from microemo.evaluation.emer import (
    MissingGroupingError,
    evaluate_emer,
    load_groupings,
    needs_grouping,
    score_sample,
)
from microemo.evaluation.labels import (
    GroupingParseError,
    LabelListError,
    parse_groupings,
    parse_label_list,
    synonym_map,
)
from microemo.evaluation.prompts import GROUPING_PROMPT, PROMPTS_SHA256, grouping_prompt

GROUPS = [["happy", "joyful", "glad"], ["angry", "furious"]]


# -- one sample, by hand ---------------------------------------------------------------------
def test_words_map_to_the_head_of_their_group_and_overlap_is_counted_on_heads():
    accuracy, recall, ref, pred = score_sample(["happy", "angry", "sad"], ["joyful", "furious"], GROUPS)
    assert (ref, pred) == (["angry", "happy", "sad"], ["angry", "happy"])
    assert accuracy == 1.0 and recall == pytest.approx(2 / 3)


def test_an_empty_prediction_scores_zero_on_both():
    assert score_sample(["happy"], [], GROUPS)[:2] == (0.0, 0.0)


def test_duplicates_and_case_differences_count_once():
    # "Happy", "happy " and "JOYFUL" are one label after lower-casing and grouping: 1 of 1 predicted is right.
    accuracy, recall, _, pred = score_sample(["happy", "sad"], ["Happy", "happy ", "JOYFUL", "joyful"], GROUPS)
    assert pred == ["happy"]
    assert (accuracy, recall) == (1.0, 0.5)


def test_words_in_no_group_map_to_themselves():
    accuracy, recall, ref, pred = score_sample(["calm", "happy"], ["calm", "bored", "glad"], GROUPS)
    assert pred == ["bored", "calm", "happy"]
    assert (accuracy, recall) == (pytest.approx(2 / 3), 1.0)


def test_group_members_written_in_capitals_still_match():
    assert score_sample(["happy"], ["glad"], [["Happy", "GLAD"]])[:2] == (1.0, 1.0)


def test_a_word_in_two_groups_takes_the_later_head_as_in_mertools():
    assert synonym_map([["a", "x"], ["b", "x"]])["x"] == "b"


def test_an_empty_reference_is_refused():
    with pytest.raises(ValueError, match="reference label list is empty"):
        score_sample([], ["happy"], GROUPS)


def test_grouping_is_skipped_only_where_it_cannot_change_the_score():
    assert not needs_grouping(["happy"], [])
    assert not needs_grouping(["Happy", "sad"], ["sad", "happy", "SAD"])
    assert needs_grouping(["happy"], ["joyful"])


# -- many samples ------------------------------------------------------------------------------
def test_means_over_samples_with_saved_groupings():
    names = ["a", "b", "c", "d"]
    references = [["happy", "sad"], "['angry']", ["calm"], ["sad"]]
    predictions = [["glad"], "[furious, happy]", [], ["sad"]]
    groupings = {"a": GROUPS, "b": "[['angry', 'furious'], ['happy']]"}
    evaluation = evaluate_emer(names, references, predictions, groupings=load_groupings(groupings), progress=False)
    # a: {happy} vs {happy, sad}: 1, 1/2.  b: {angry, happy} vs {angry}: 1/2, 1.  c: empty: 0, 0.  d: equal: 1, 1.
    assert evaluation.summary["accuracy_s"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert evaluation.summary["recall_s"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert evaluation.summary["avg"] == pytest.approx(((2.5 / 4) + (2.5 / 4)) / 2)
    assert [s.grouping_source for s in evaluation.samples] == ["saved", "saved", "not-needed", "not-needed"]


def test_mismatched_lengths_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="3 names, 2 references, 3 predictions"):
        evaluate_emer(["a", "b", "c"], [["x"], ["y"]], [["x"], ["y"], ["z"]], groupings={})


def test_duplicate_sample_names_are_refused():
    with pytest.raises(ValueError, match=r"not unique: \['a'\]"):
        evaluate_emer(["a", "a"], [["x"], ["y"]], [["x"], ["y"]])


def test_a_sample_without_grouping_or_judge_is_named():
    with pytest.raises(MissingGroupingError, match=r"1 samples \(e.g. \['b'\]\)"):
        evaluate_emer(["a", "b"], [["x"], ["y"]], [["x"], ["z"]], groupings={"a": [["x"]]})


def test_explanations_without_a_judge_are_refused_before_any_work():
    with pytest.raises(ValueError, match="free-form explanations.*needs a judge"):
        evaluate_emer(["a"], [["happy"]], ["He smiles broadly and seems happy."])


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (42, "reference labels of sample 'a': got int 42"),
        ({"happy": 1}, "got dict"),
        ("[['happy']]", "nested list"),
        ("['happy'", "unbalanced brackets"),
        ([], "are empty"),
        (["happy", 3], "item 1 is int"),
    ],
)
def test_a_reference_that_is_not_a_label_list_is_named(reference, message):
    with pytest.raises(LabelListError, match=message):
        evaluate_emer(["a"], [reference], [["happy"]], groupings={})


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("['excited', 'joyful', 'happy']", ["excited", "joyful", "happy"]),
        ('["excited", "joyful"]', ["excited", "joyful"]),
        ("[excited, joyful]", ["excited", "joyful"]),  # MER2025's form; MER2024 read it as one label
        ("excited, joyful", ["excited", "joyful"]),
        ("[]", []),
        ("", []),
        ("['self-deprecating', \"don't believe\"]", ["self-deprecating", "don't believe"]),
        ("['a, b', c]", ["a, b", "c"]),
    ],
)
def test_label_lists_are_read_in_both_forms(text, labels):
    assert parse_label_list(text) == labels


def test_mer2024_style_splits_apostrophes_like_the_original_scorer():
    assert parse_label_list("[\"don't believe\", 'doubt']", style="mer2024") == ["don", "t believe", "doubt"]
    assert parse_label_list("[happy, sad]", style="mer2024") == ["happy, sad"]


@pytest.mark.parametrize(
    ("reply", "groups"),
    [
        ("[['happy', 'joyful'], ['sad']]", [["happy", "joyful"], ["sad"]]),
        ("Output: [[happy, joyful], [sad]]", [["happy", "joyful"], ["sad"]]),
        ("```python\n[['happy'], ['sad']]\n```", [["happy"], ["sad"]]),
        ("[['happy', 'joyful'],['sad']]\n", [["happy", "joyful"], ["sad"]]),
        ("['happy', 'joyful']", [["happy", "joyful"]]),  # a flat list is one group, as in MERTools
        (np.array("[['a', 'b']]"), [["a", "b"]]),
    ],
)
def test_groupings_are_read_from_judge_replies(reply, groups):
    assert parse_groupings(reply) == groups


@pytest.mark.parametrize(
    "reply", ["These emotions are all similar.", "", "[['happy'], ['sad']", "[[]]", "[['happy'], 'sad']", "[1, 2]"]
)
def test_replies_that_are_not_groupings_are_rejected(reply):
    with pytest.raises(GroupingParseError):
        parse_groupings(reply)


def test_the_grouping_prompt_asks_about_the_sorted_union_whatever_the_set_order():
    prompt = grouping_prompt({"sad", "happy", "angry"})
    assert prompt == grouping_prompt(["happy", "angry", "sad"])
    assert prompt.count("['angry', 'happy', 'sad']") == 1
    assert prompt == GROUPING_PROMPT.replace("{labels}", "['angry', 'happy', 'sad']")
    assert len(PROMPTS_SHA256) == 64


# -- saved groupings -----------------------------------------------------------------------------
def test_a_mertools_style_npy_folder_is_read(tmp_path: Path):
    np.save(tmp_path / "sample_1.npy", np.array("[['joyful', 'happy'], ['sad']]"))
    np.save(tmp_path / "sample_2.npy", np.array("[['angry']]"))
    groupings = load_groupings(tmp_path)
    assert groupings == {"sample_1": [["joyful", "happy"], ["sad"]], "sample_2": [["angry"]]}


def test_a_pickled_npy_is_refused_rather_than_unpickled(tmp_path: Path):
    np.save(tmp_path / "bad.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(GroupingParseError, match="bad.npy"):
        load_groupings(tmp_path)


def test_an_unparsable_saved_grouping_names_its_file(tmp_path: Path):
    (tmp_path / "s.txt").write_text("no list here")
    with pytest.raises(GroupingParseError, match="s.txt"):
        load_groupings(tmp_path)


def test_groupings_are_read_back_from_a_json_map_and_from_an_earlier_report(tmp_path: Path):
    mapping = tmp_path / "groups.json"
    mapping.write_text(json.dumps({"a": [["x", "y"]], "b": "[['z']]"}))
    assert load_groupings(mapping) == {"a": [["x", "y"]], "b": [["z"]]}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"samples": [{"name": "a", "groups": [["x"]]}, {"name": "b", "groups": None}]}))
    assert load_groupings(report) == {"a": [["x"]]}


def test_missing_groupings_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_groupings(tmp_path / "nowhere")


MERTOOLS = os.environ.get("MICROEMO_MERTOOLS_DIR")


@pytest.mark.skipif(not MERTOOLS, reason="set MICROEMO_MERTOOLS_DIR to a MERTools checkout to run")
def test_the_published_mer2024_numbers_are_recomputed_from_the_archive(tmp_path: Path):
    """MERTools' MER2024/main-ov.py states: accuracy 0.581777108433735, recall 0.4977911646586345."""
    import zipfile

    import pandas as pd

    store = Path(MERTOOLS) / "MER2024" / "ov_store"
    with zipfile.ZipFile(store / "openset-synonym.zip") as archive:
        archive.extractall(tmp_path)
    references = pd.read_csv(store / "check-openset.csv")
    predictions = dict(pd.read_csv(store / "predict-openset.csv").itertuples(index=False))
    names = list(references["name"])
    evaluation = evaluate_emer(
        names,
        list(references["openset"]),
        [predictions[name] for name in names],
        groupings=load_groupings(tmp_path / "openset-synonym"),
        label_parsing="mer2024",
        progress=False,
    )
    assert evaluation.summary["accuracy_s"] == pytest.approx(0.581777108433735, abs=1e-12)
    assert evaluation.summary["recall_s"] == pytest.approx(0.4977911646586345, abs=1e-12)
