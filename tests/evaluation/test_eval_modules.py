"""Both `evaluate` modules: loaded by path in a fresh process, and their behaviour on good and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from microemo.evaluation import EMER_SET_ACCURACY_PATH, EMOTION_WHEEL_PATH
from microemo.evaluation.emer import IncompleteEvaluationError
from microemo.evaluation.emer_set_accuracy.emer_set_accuracy import EmerSetAccuracy
from microemo.evaluation.emotion_wheel.emotion_wheel import EmotionWheel
from microemo.evaluation.labels import LabelListError
from microemo.evaluation.testing import Reply, ScriptedJudge, correct_reply

LEXICON = Path(__file__).parent / "lexicon"


def test_both_modules_load_by_path_in_a_fresh_process(tmp_path: Path):
    groupings = tmp_path / "openset-synonym"
    groupings.mkdir()
    np.save(groupings / "sample_1.npy", np.array("[['joyful', 'happy'], ['sad']]"))
    script = textwrap.dedent(
        f"""
        import json, evaluate
        emer = evaluate.load({EMER_SET_ACCURACY_PATH!r})
        wheel = evaluate.load({EMOTION_WHEEL_PATH!r})
        out = {{
            "emer": emer.compute(
                predictions=["['joyful']", []],
                references=["['happy', 'sad']", "['calm']"],
                names=["sample_1", "sample_2"],
                groupings={str(groupings)!r},
            ),
            "wheel": wheel.compute(predictions=[["calm"]], references=[["relaxed"]], lexicon={str(LEXICON)!r}),
            "lemma": wheel.compute(predictions=[["worry"]], references=[["worried", "sad"]]),
            "module": type(emer).__module__,
        }}
        print("RESULT" + json.dumps(out))
        """
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT", 1)[1])
    # sample_1: {happy} vs {happy, sad}: 1, 1/2; sample_2: empty prediction: 0, 0.
    assert result["emer"]["accuracy_s"] == pytest.approx(0.5)
    assert result["emer"]["recall_s"] == pytest.approx(0.25)
    assert result["emer"]["complete"] is True
    assert result["wheel"]["wheel_level1_fscore"] == pytest.approx(1.0)
    assert result["lemma"]["lemma_match_recall"] == pytest.approx(0.5)
    # The module was copied into the fresh process's own HF cache and imported from there.
    assert "emer_set_accuracy" in result["module"]


def metric() -> EmerSetAccuracy:
    return EmerSetAccuracy(keep_in_memory=True)


def test_mismatched_lengths_are_refused_with_both_counts():
    with pytest.raises(ValueError, match="2 predictions, 1 references"):
        metric().compute(predictions=[["a"], ["b"]], references=[["a"]])


def test_a_reference_that_is_not_a_list_is_named_by_index():
    with pytest.raises(LabelListError, match="reference 1: got int 7"):
        metric().compute(predictions=[["a"], ["b"]], references=[["a"], 7])


def test_names_must_match_the_samples():
    with pytest.raises(ValueError, match="1 names, 2 predictions"):
        metric().compute(predictions=[["a"], ["b"]], references=[["a"], ["b"]], names=["x"])


def test_label_lists_and_explanations_can_be_mixed_and_are_judged_over_http(judge_env):
    with ScriptedJudge() as server:
        result = metric().compute(
            predictions=[["joyful"], "He is clearly furious about it.", "[sad]"],
            references=[["happy"], ["angry"], ["sad", "calm"]],
            judge={"model": "m", "base_url": server.base_url, "cache_path": str(judge_env)},
            return_details=True,
        )
    # joyful ~ happy: 1, 1; extracted [furious] ~ angry: 1, 1; [sad] vs {sad, calm}: 1, 1/2.
    assert result["accuracy_s"] == pytest.approx(1.0)
    assert result["recall_s"] == pytest.approx(2.5 / 3)
    assert result["judge_stats"]["calls"] == server.calls == 4  # 1 extraction + 3 groupings
    assert result["details"][1]["prediction"] == ["furious"]


def test_unparsable_judge_replies_raise_unless_reporting_is_asked_for(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply("no idea") if "furious" in prompt else Reply(correct_reply(prompt))

    inputs = dict(predictions=[["joyful"], ["furious"]], references=[["happy"], ["angry"]])
    with ScriptedJudge(responder) as server:
        judge = {"model": "m", "base_url": server.base_url, "cache_path": str(judge_env), "parse_retries": 1}
        with pytest.raises(IncompleteEvaluationError, match=r"1 of 2 samples could not be scored.*\n  1: synonym"):
            metric().compute(**inputs, judge=judge)
        result = metric().compute(**inputs, judge=judge, on_failure="report")
    assert result["complete"] is False and result["failed_samples"] == ["1"]
    assert result["accuracy_s"] == 1.0 and result["num_scored"] == 1


def test_the_mer2024_config_reads_list_strings_like_the_original():
    result = EmerSetAccuracy(config_name="mer2024", keep_in_memory=True).compute(
        predictions=[["doubt"]],
        references=["[\"don't believe\", 'doubt']"],
        groupings={"0": [["doubt", "t believe"]]},
        return_details=True,
    )
    assert result["details"][0]["reference"] == ["don", "t believe", "doubt"]
    assert result["recall_s"] == pytest.approx(0.5)  # {don, doubt} after mapping


def test_an_unknown_config_name_is_refused():
    with pytest.raises(ValueError, match="expected 'default' or 'mer2024'"):
        EmerSetAccuracy(config_name="mer2025", keep_in_memory=True)


def test_the_wheel_module_reads_list_strings_and_refuses_non_lists():
    wheel = EmotionWheel(keep_in_memory=True)
    result = wheel.compute(predictions=["[worry, glad]"], references=["['worried']"], matching="exact")
    assert result["exact_match_recall"] == 0.0
    with pytest.raises(LabelListError, match="prediction 0: got dict"):
        EmotionWheel(keep_in_memory=True).compute(predictions=[{"a": 1}], references=[["a"]])
