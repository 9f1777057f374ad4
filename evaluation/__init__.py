"""EMER evaluation: the LLM-judged Accuracy_s / Recall_s, a judge-free metric, and their runner.

`evaluate` modules (load with ``evaluate.load(path)``):

* :data:`EMER_SET_ACCURACY_PATH`: Accuracy_s / Recall_s with a judge or saved groupings;
* :data:`EMOTION_WHEEL_PATH`: the judge-free emotion-wheel metric, or exact / lemma matching.

Names below are imported on first use, so that ``microemo --help`` does not load openai or pandas.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent

#: Folder of the `evaluate` module for EMER Accuracy_s / Recall_s.
EMER_SET_ACCURACY_PATH = str(_HERE / "emer_set_accuracy")
#: Folder of the judge-free `evaluate` module.
EMOTION_WHEEL_PATH = str(_HERE / "emotion_wheel")

_EXPORTS = {
    "JudgeConfig": "judge",
    "JudgeClient": "judge",
    "JudgeCache": "judge",
    "JudgeStats": "judge",
    "JudgeError": "judge",
    "JudgeUnavailableError": "judge",
    "JudgeReplyError": "judge",
    "MissingAPIKeyError": "judge",
    "evaluate_emer": "emer",
    "score_sample": "emer",
    "load_groupings": "emer",
    "IncompleteEvaluationError": "emer",
    "MissingGroupingError": "emer",
    "parse_label_list": "labels",
    "parse_groupings": "labels",
    "LabelListError": "labels",
    "GroupingParseError": "labels",
    "load_lexicon": "wheel",
    "wheel_scores": "wheel",
    "matching_scores": "wheel",
    "LexiconError": "wheel",
    "EvaluationRequest": "runner",
    "run_evaluation": "runner",
    "format_table": "runner",
    "PROMPTS_SHA256": "prompts",
    "BUILT_IN_PROMPTS": "prompts",
    "PromptSet": "prompts",
    "PromptFileError": "prompts",
    "load_prompts": "prompts",
}

__all__ = ["EMER_SET_ACCURACY_PATH", "EMOTION_WHEEL_PATH", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
