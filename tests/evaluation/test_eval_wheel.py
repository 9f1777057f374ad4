"""The judge-free metrics: the emotion-wheel protocol on a hand-made lexicon, and exact / lemma matching."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from microemo.evaluation.labels import lemma_key, lemmatize
from microemo.evaluation.wheel import LexiconError, load_lexicon, matching_scores, wheel_scores

LEXICON = Path(__file__).parent / "lexicon"

REFERENCES = [["relaxed", "thrilled"], ["sadness", "irritation"], ["happy"], ["delighted"]]
PREDICTIONS = [["calm", "thrilling"], ["fury"], ["calm"], []]
# Worked out by hand from tests/evaluation/lexicon (see the comments in each test).
LEVEL1 = {"fscore": 5 / 6, "precision": 5 / 6, "recall": 5 / 6}
LEVEL2 = {"fscore": (1 / 3 + 6 / 7) / 2, "precision": (1 / 3 + 1) / 2, "recall": (1 / 3 + 3 / 4) / 2}


def test_labels_reach_wheel_emotions_through_word_forms_and_synonyms():
    lexicon = load_lexicon(LEXICON)
    wheel1_level1, wheel2_level2 = lexicon.wheel_map("wheel1", 1), lexicon.wheel_map("wheel2", 2)
    assert lexicon.map_label("irritation", wheel1_level1) == "anger"  # irritation -> irritated -> annoyed
    assert lexicon.map_label("calm", wheel2_level2) == "calm"  # calm -> calm -> relaxed (a synonym) -> calm
    assert lexicon.map_label("sadness", wheel1_level1) is None  # gloomy is on wheel 2 only
    assert lexicon.map_label("happy", wheel1_level1) is None  # not in the word-form table: dropped
    # At level 2, a level-1 word lands on the alphabetically first of its level-2 emotions.
    assert lexicon.map_label("delighted", lexicon.wheel_map("wheel1", 2)) == "content"


def test_wheel_scores_match_the_hand_computed_values():
    # wheel1 L1: s1 1/1, s2 1/1, s3 skipped (nothing maps), s4 0/0 (empty prediction) -> P = R = 2/3.
    # wheel2 L1: s1, s2 1/1, s3 and s4 skipped -> P = R = 1.      Mean F = P = R = 5/6.
    # wheel1 L2: s1 1/1, s2 0/0 (hostile vs frustrated), s4 0/0 -> 1/3.
    # wheel2 L2: s1 1/1, s2 P 1, R 1/2 -> P 1, R 3/4, F 6/7.
    result = wheel_scores(REFERENCES, PREDICTIONS, load_lexicon(LEXICON), return_details=True)
    for level, expected in ((1, LEVEL1), (2, LEVEL2)):
        for metric, value in expected.items():
            assert result[f"wheel_level{level}_{metric}"] == pytest.approx(value), (level, metric)
        assert result[f"wheel_level{level}_num_scored"] == 2
    assert result["details"]["level2"]["wheel2"]["fscore"] == pytest.approx(6 / 7)
    assert result["num_samples"] == 4


def test_xlsx_tables_read_the_same_as_csv(tmp_path: Path):
    for table in ("wheel1", "wheel2", "synonym"):
        pd.read_csv(LEXICON / f"{table}.csv", dtype=str).to_excel(tmp_path / f"{table}.xlsx", index=False)
    shutil.copy(LEXICON / "format.csv", tmp_path / "format.csv")
    from_xlsx = wheel_scores(REFERENCES, PREDICTIONS, load_lexicon(tmp_path))
    assert from_xlsx == wheel_scores(REFERENCES, PREDICTIONS, load_lexicon(LEXICON))


def test_a_lexicon_without_a_word_form_table_is_a_clear_error(tmp_path: Path):
    for table in ("wheel1.csv", "synonym.csv"):
        shutil.copy(LEXICON / table, tmp_path / table)
    with pytest.raises(LexiconError, match="no format.xlsx or format.csv"):
        load_lexicon(tmp_path)


def test_a_wheel_table_without_its_columns_is_a_clear_error(tmp_path: Path):
    shutil.copytree(LEXICON, tmp_path / "lex")
    (tmp_path / "lex" / "wheel1.csv").write_text("emotion,parent\njoy,\n")
    with pytest.raises(LexiconError, match=r"missing columns \['level1', 'level2', 'level3'\]"):
        load_lexicon(tmp_path / "lex")


def test_a_lexicon_path_that_is_not_a_folder_is_refused(tmp_path: Path):
    with pytest.raises(LexiconError, match="not a folder"):
        load_lexicon(tmp_path / "missing")


def test_exact_matching_credits_identical_labels_only():
    # s1: {worried, happy} vs {worry, happiness}: 0, 0.  s2: {angry} vs {angry, furious}: 1/2, 1.  s3: 0, 0.
    result = matching_scores(
        [["worried", "Happy"], ["angry"], ["surprised"]],
        [["worry", "happiness"], ["angry", "angry", "furious"], []],
        matching="exact",
    )
    assert result["exact_match_precision"] == pytest.approx(1 / 6)
    assert result["exact_match_recall"] == pytest.approx(1 / 3)
    assert result["exact_match_fscore"] == pytest.approx(2 / 9)
    assert not any(key.startswith("wheel") for key in result)


def test_lemma_matching_folds_inflections_but_not_derivations():
    # s1: worried ~ worry, happy !~ happiness: 1/2, 1/2.  s2: 1/2, 1.  s3: 0, 0.
    result = matching_scores(
        [["worried", "Happy"], ["angry"], ["surprised"]],
        [["worry", "happiness"], ["angry", "angry", "furious"], []],
        matching="lemma",
    )
    assert result["lemma_match_precision"] == pytest.approx(1 / 3)
    assert result["lemma_match_recall"] == pytest.approx(1 / 2)
    assert result["lemma_match_fscore"] == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    "forms",
    [
        ("excited", "exciting", "excite", "excites"),
        ("worried", "worries", "worry", "worrying"),
        ("surprised", "surprise", "surprising"),
        ("stunned", "stun", "stunning"),
        ("agreed", "agree", "agrees"),
        ("wishes", "wish", "wished"),
    ],
)
def test_inflected_forms_share_one_lemma_key(forms):
    assert len({lemmatize(word) for word in forms}) == 1


@pytest.mark.parametrize("word", ["nervous", "hopeless", "distress", "upset", "sad", "calm"])
def test_words_that_only_look_inflected_are_kept(word):
    assert lemmatize(word) in (word, word[:-1])  # at most a silent final e is dropped
    assert lemma_key(word) != lemma_key("happy")


def test_multi_word_and_hyphenated_labels_are_lemmatised_per_word():
    assert lemma_key("Self-Deprecating  feelings") == lemma_key("self-deprecated feeling")


def test_no_sample_with_a_mappable_reference_gives_nan_not_zero():
    result = matching_scores([[]], [["happy"]], matching="exact")
    assert result["exact_match_num_scored"] == 0
    assert result["exact_match_fscore"] != result["exact_match_fscore"]  # NaN


def test_unknown_matching_mode_is_refused():
    with pytest.raises(ValueError, match="expected 'exact' or 'lemma'"):
        matching_scores([["a"]], [["a"]], matching="fuzzy")
