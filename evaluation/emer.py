"""EMER's set-level Accuracy_s / Recall_s, judged by an LLM or recomputed from saved groupings.

The protocol (MERTools `MER2024/main-ov.py`), per sample:

1. lower-case the reference labels G and the predicted labels P;
2. ask the judge to group the union of G and P into groups of same-meaning emotions;
3. map every word to the first word of its group (words in no group map to themselves);
4. Accuracy = |G ∩ P| / |P|, Recall = |G ∩ P| / |G|, both 0 when P is empty;

then Accuracy_s and Recall_s are the means over samples and the table's Avg is their mean.

Two calls are skipped because their answer cannot change the score: an empty P scores 0 whatever
the grouping, and P == G (as sets) scores 1 whatever the grouping.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .judge import Completion, JudgeClient, JudgeReplyError
from .labels import (
    GroupingParseError,
    LabelListError,
    LabelParsing,
    normalize_labels,
    parse_groupings,
    parse_label_list,
    synonym_map,
)
from .prompts import BUILT_IN_PROMPTS, PromptSet, resolve_prompts

__all__ = [
    "SampleResult",
    "EmerEvaluation",
    "PredictionType",
    "score_sample",
    "needs_grouping",
    "parse_extraction_reply",
    "load_groupings",
    "summarize",
    "evaluate_emer",
    "IncompleteEvaluationError",
    "MissingGroupingError",
]

PredictionType = Literal["auto", "labels", "description"]


class MissingGroupingError(ValueError):
    """A sample needs a grouping, none was saved for it, and there is no judge to ask."""


@dataclass
class SampleResult:
    """Everything needed to audit one sample's score.

    ``grouping_source`` is ``"judge"`` (asked now), ``"cache"`` (the judge's cached reply),
    ``"saved"`` (from saved groupings), ``"not-needed"`` (empty or identical prediction) or
    ``"failed"``; a failed sample has ``error`` set and no scores.
    """

    name: str
    reference: list[str]
    prediction: list[str]
    description: str | None = None
    extraction_reply: str | None = None
    groups: list[list[str]] | None = None
    grouping_reply: str | None = None
    grouping_source: str = "failed"
    mapped_reference: list[str] = field(default_factory=list)
    mapped_prediction: list[str] = field(default_factory=list)
    accuracy: float | None = None
    recall: float | None = None
    error: str | None = None
    failed_replies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EmerEvaluation:
    """Per-sample results, their summary (see :func:`summarize`) and the judge prompts used."""

    samples: list[SampleResult]
    summary: dict[str, Any]
    prompts: PromptSet = BUILT_IN_PROMPTS

    @property
    def failures(self) -> list[SampleResult]:
        return [sample for sample in self.samples if sample.error is not None]


def score_sample(
    reference: Sequence[str], prediction: Sequence[str], groups: Sequence[Sequence[str]] | None
) -> tuple[float, float, list[str], list[str]]:
    """Accuracy and recall of one sample, and both label sets after mapping to group heads.

    Labels are lower-cased and de-duplicated first. Raises ``ValueError`` for an empty reference
    (recall would divide by zero; EMER references hold 1 to 9 labels).
    """
    ref = normalize_labels(reference)
    pred = normalize_labels(prediction)
    if not ref:
        raise ValueError("the reference label list is empty; expected at least one emotion label")
    mapping = synonym_map(groups or [])
    mapped_ref = sorted({mapping.get(label, label) for label in ref})
    mapped_pred = sorted({mapping.get(label, label) for label in pred})
    if not mapped_pred:
        return 0.0, 0.0, mapped_ref, mapped_pred
    hits = len(set(mapped_ref) & set(mapped_pred))
    return hits / len(mapped_pred), hits / len(mapped_ref), mapped_ref, mapped_pred


def needs_grouping(reference: Sequence[str], prediction: Sequence[str]) -> bool:
    """False when the grouping cannot change the score: P empty, or P equal to G as sets."""
    pred = set(normalize_labels(prediction))
    return bool(pred) and pred != set(normalize_labels(reference))


def parse_extraction_reply(reply: str) -> list[str]:
    """Labels from the judge's answer to the extraction prompt; it must hold a ``[...]`` list."""
    start, end = reply.find("["), reply.rfind("]")
    if start < 0 or end < start:
        raise LabelListError(f"extraction reply {reply[:200]!r} holds no [...] list; expected e.g. [happy, relaxed]")
    return normalize_labels(parse_label_list(reply[start : end + 1], what="extraction reply"))


def load_groupings(source: str | Path | Mapping[str, Any]) -> dict[str, list[list[str]]]:
    """Saved groupings by sample name, from any of:

    * a folder of ``<name>.npy`` files, as in MERTools' ``openset-synonym`` archive (each a 0-d
      string array holding the judge's reply), or of ``<name>.json`` / ``<name>.txt`` files;
    * a JSON file mapping names to groupings (lists of lists, or reply strings);
    * the JSON report of an earlier ``microemo evaluate`` run (its ``samples[*].groups``);
    * a mapping in memory, with the same values.
    """
    if isinstance(source, Mapping):
        return {str(name): parse_groupings(value, what=f"grouping of sample {name}") for name, value in source.items()}
    path = Path(source)
    if path.is_dir():
        groupings: dict[str, list[list[str]]] = {}
        files = sorted(p for p in path.iterdir() if p.suffix in {".npy", ".json", ".txt"})
        if not files:
            raise FileNotFoundError(f"groupings folder {path}: no .npy, .json or .txt files; expected one per sample")
        for file in files:
            what = f"grouping file {file}"
            if file.suffix == ".npy":
                try:
                    value: Any = np.load(file, allow_pickle=False)
                except ValueError as error:  # object arrays need pickle: refuse rather than unpickle
                    raise GroupingParseError(f"{what}: {error}; expected a numpy string array") from error
            elif file.suffix == ".json":
                value = json.loads(file.read_text(encoding="utf-8"))
            else:
                value = file.read_text(encoding="utf-8")
            groupings[file.stem] = parse_groupings(value, what=what)
        return groupings
    if not path.is_file():
        raise FileNotFoundError(f"groupings {path}: no such file or folder; expected a folder of <name>.npy or a JSON file")
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("samples"), list):  # our own report
        return {
            str(sample["name"]): parse_groupings(sample["groups"], what=f"{path}: grouping of sample {sample['name']}")
            for sample in data["samples"]
            if sample.get("groups")
        }
    if not isinstance(data, dict):
        raise GroupingParseError(f"groupings file {path}: got a JSON {type(data).__name__}; expected an object name -> groups")
    return {str(name): parse_groupings(value, what=f"{path}: grouping of sample {name}") for name, value in data.items()}


def summarize(samples: Sequence[SampleResult]) -> dict[str, Any]:
    """Accuracy_s, Recall_s and Avg over the scored samples, with the counts that qualify them."""
    scored = [sample for sample in samples if sample.error is None]
    if scored:
        accuracy = float(np.mean([sample.accuracy for sample in scored]))
        recall = float(np.mean([sample.recall for sample in scored]))
    else:
        accuracy = recall = math.nan
    return {
        "accuracy_s": accuracy,
        "recall_s": recall,
        "avg": (accuracy + recall) / 2,
        "num_samples": len(samples),
        "num_scored": len(scored),
        "num_failed": len(samples) - len(scored),
        "complete": len(scored) == len(samples),
    }


def _classify_prediction(
    value: Any, prediction_type: PredictionType, what: str, style: LabelParsing
) -> tuple[list[str] | None, str | None]:
    """(labels, None) for a label list, (None, description) for a free-form explanation."""
    if prediction_type not in ("auto", "labels", "description"):
        raise ValueError(f"prediction_type: got {prediction_type!r}; expected 'auto', 'labels' or 'description'")
    if isinstance(value, str):
        text = value.strip()
        if prediction_type == "description" or (
            prediction_type == "auto" and not (text.startswith("[") and text.endswith("]"))
        ):
            return None, value
    elif prediction_type == "description":
        raise LabelListError(f"{what}: got {type(value).__name__}; prediction_type='description' expects strings")
    return normalize_labels(parse_label_list(value, what=what, style=style)), None


def evaluate_emer(
    names: Sequence[str],
    references: Sequence[Any],
    predictions: Sequence[Any],
    *,
    judge: JudgeClient | None = None,
    groupings: Mapping[str, Sequence[Sequence[str]]] | None = None,
    judge_prompts: PromptSet | str | Path | None = None,
    prediction_type: PredictionType = "auto",
    label_parsing: LabelParsing = "lenient",
    progress: bool = True,
) -> EmerEvaluation:
    """Score predictions against references with EMER's Accuracy_s / Recall_s.

    Args:
        names: one unique sample name per row (keys of ``groupings`` and of the report).
        references: label lists (lists of strings or list strings).
        predictions: label lists, or free-form explanations whose labels the judge extracts first.
            ``prediction_type="auto"`` treats a string that starts with ``[`` and ends with ``]``
            as a label list and any other string as an explanation.
        judge: asked for label extraction and for every grouping not found in ``groupings``.
        groupings: saved groupings by sample name (see :func:`load_groupings`); used before the judge.
        judge_prompts: the judge's grouping and extraction templates: ``None`` for the built-in
            ones, a :class:`~microemo.evaluation.prompts.PromptSet`, or the path of a JSON / YAML
            prompts file (see :func:`~microemo.evaluation.prompts.load_prompts`).
        label_parsing: how list strings are read; ``"mer2024"`` only to recompute numbers published
            with MERTools' MER2024 groupings (see :func:`~microemo.evaluation.labels.parse_label_list`).
        progress: show progress bars.

    Samples whose judge replies never parse are returned with ``error`` set and left out of
    the means; ``summary["complete"]`` is then false. Bad input raises before any judge call.
    """
    if not (len(names) == len(references) == len(predictions)):
        raise ValueError(
            f"lengths differ: {len(names)} names, {len(references)} references, {len(predictions)} predictions; "
            "expected one of each per sample"
        )
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"sample names are not unique: {duplicates[:10]}; expected one row per sample")
    groupings = dict(groupings or {})
    prompts = resolve_prompts(judge_prompts)

    samples: list[SampleResult] = []
    descriptions: dict[int, str] = {}
    for index, (name, reference, prediction) in enumerate(zip(names, references, predictions, strict=True)):
        ref = normalize_labels(
            parse_label_list(reference, what=f"reference labels of sample {name!r}", style=label_parsing)
        )
        if not ref:
            raise LabelListError(
                f"reference labels of sample {name!r} are empty; expected at least one label (Recall_s divides by it)"
            )
        labels, description = _classify_prediction(
            prediction, prediction_type, f"prediction of sample {name!r}", label_parsing
        )
        samples.append(SampleResult(name=str(name), reference=ref, prediction=labels or [], description=description))
        if description is not None:
            descriptions[index] = description

    if judge is None:
        if descriptions:
            first = samples[next(iter(descriptions))].name
            raise ValueError(
                f"{len(descriptions)} predictions are free-form explanations (e.g. sample {first!r}); extracting "
                "their labels needs a judge; pass one, or give label lists"
            )
        missing = [s.name for s in samples if needs_grouping(s.reference, s.prediction) and s.name not in groupings]
        if missing:
            raise MissingGroupingError(
                f"no saved grouping for {len(missing)} samples (e.g. {missing[:5]}) and no judge to ask; "
                "expected a grouping for every sample whose prediction is neither empty nor equal to its reference"
            )

    # Step 0: labels from explanations, through the same client.
    to_extract = [index for index, text in descriptions.items() if text.strip()]
    if to_extract and judge is not None:
        texts = [prompts.extraction_prompt(descriptions[index]) for index in to_extract]
        replies = judge.complete_many(texts, parse_extraction_reply, desc="extract labels", progress=progress)
        for index, reply in zip(to_extract, replies, strict=True):
            sample = samples[index]
            if isinstance(reply, JudgeReplyError):
                sample.error = f"label extraction failed: {reply}"
                sample.failed_replies = reply.replies
            else:
                sample.prediction = list(reply.value)
                sample.extraction_reply = reply.text

    # Step 2: groupings, saved ones first, then the judge.
    to_group: list[int] = []
    for index, sample in enumerate(samples):
        if sample.error is not None:
            continue
        if not needs_grouping(sample.reference, sample.prediction):
            sample.grouping_source = "not-needed"
        elif sample.name in groupings:
            sample.groups = [list(group) for group in groupings[sample.name]]
            sample.grouping_source = "saved"
        else:
            to_group.append(index)
    if to_group:
        if judge is None:  # reachable only when extraction produced labels; guarded above otherwise
            raise MissingGroupingError(f"no saved grouping for samples {[samples[i].name for i in to_group][:5]} and no judge")
        texts = [prompts.grouping_prompt(set(samples[i].reference) | set(samples[i].prediction)) for i in to_group]
        replies_g = judge.complete_many(texts, parse_groupings, desc="group synonyms", progress=progress)
        for index, reply in zip(to_group, replies_g, strict=True):
            sample = samples[index]
            if isinstance(reply, JudgeReplyError):
                sample.error = f"synonym grouping failed: {reply}"
                sample.failed_replies = reply.replies
                continue
            assert isinstance(reply, Completion)
            sample.groups = reply.value
            sample.grouping_reply = reply.text
            sample.grouping_source = "cache" if reply.cached else "judge"

    # Steps 3-4.
    for sample in samples:
        if sample.error is not None:
            continue
        sample.accuracy, sample.recall, sample.mapped_reference, sample.mapped_prediction = score_sample(
            sample.reference, sample.prediction, sample.groups
        )
    return EmerEvaluation(samples=samples, summary=summarize(samples), prompts=prompts)


class IncompleteEvaluationError(RuntimeError):
    """Some samples could not be scored (their judge replies never parsed)."""

    def __init__(self, evaluation: EmerEvaluation) -> None:
        failed = evaluation.failures
        lines = [f"  {sample.name}: {sample.error}" for sample in failed[:10]]
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        super().__init__(
            f"{len(failed)} of {len(evaluation.samples)} samples could not be scored; they are not counted as "
            "zero. Re-run to ask the judge again (finished samples come from the cache), or pass "
            "on_failure='report' to score the rest:\n" + "\n".join(lines) + more
        )
        self.evaluation = evaluation
