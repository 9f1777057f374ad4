"""The evaluation runner behind `microemo evaluate`: files in, a Table-1-shaped table and an audit report out."""

from __future__ import annotations

import datetime as _dt
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .emer import evaluate_emer, load_groupings, needs_grouping
from .io import align, read_samples, write_json_atomic
from .judge import JudgeClient, JudgeConfig
from .labels import LabelParsing
from .prompts import resolve_prompts
from .wheel import Matching, load_lexicon, matching_scores, wheel_scores

__all__ = ["EvaluationRequest", "run_evaluation", "format_table", "REPORT_VERSION", "NEEDS_JUDGE_NOTE"]

REPORT_VERSION = 1
NEEDS_JUDGE_NOTE = (
    "Accuracy_s / Recall_s need a judge (--judge-model) or saved groupings (--groupings) to merge synonyms; "
    "without them only the judge-free scores are given"
)


@dataclass
class EvaluationRequest:
    """Everything one evaluation run needs; the CLI fills it from its flags.

    ``judge_prompts`` is a JSON / YAML file with the judge's two templates; ``None`` uses the
    built-in ones (see :mod:`microemo.evaluation.prompts`).
    """

    predictions: Path
    references: Path
    judge: JudgeConfig | None = None
    groupings: Path | None = None
    judge_prompts: Path | None = None
    lexicon: Path | None = None
    matching: Matching = "lemma"
    label_parsing: LabelParsing = "lenient"
    prediction_field: str | None = None
    reference_field: str | None = None
    model_name: str | None = None
    output: Path | None = None
    progress: bool = True


def run_evaluation(request: EvaluationRequest) -> dict[str, Any]:
    """Read the files, extract labels, group, score, and return (and write) the report.

    The report is written only when the run got to the end, atomically; a run stopped by an
    unusable judge writes nothing and the cache keeps what was finished. A report whose
    ``scores.complete`` is false lists the samples whose judge replies never parsed.
    """
    if request.output is not None:
        check_output_path(request.output)  # before any judge call, so no paid work is thrown away
    prompts = resolve_prompts(request.judge_prompts)  # fail before reading anything else
    references = read_samples(request.references, field=request.reference_field, fields=("openset", "labels"))
    predictions = read_samples(request.predictions, field=request.prediction_field)
    names = align(predictions, references)
    empty = [name for name in names if references.values[name] is None]
    if empty:
        raise ValueError(
            f"{references.path}: {len(empty)} samples have an empty {references.field!r} cell, e.g. {empty[:5]}; "
            "expected at least one reference label each (Recall_s divides by their number)"
        )
    prediction_type = "labels" if predictions.holds_labels else "auto"
    groupings = load_groupings(request.groupings) if request.groupings is not None else None
    lexicon = load_lexicon(request.lexicon) if request.lexicon is not None else None  # fail before any judge call

    client = JudgeClient(request.judge) if request.judge is not None else None
    values = [predictions.values[name] for name in names]
    judge_free_only = False
    if client is None:
        # No judge: explanations give their labels through the judge-free emotion-word extractor, and samples
        # without a saved grouping are scored judge-free only (Accuracy_s / Recall_s left out, with a note).
        values = [_judge_free_labels(value) for value in values]
        groupings, judge_free_only = _fill_missing_groupings(names, references, values, groupings, request)
    try:
        evaluation = evaluate_emer(
            names,
            [references.values[name] for name in names],
            values,
            judge=client,
            groupings=groupings,
            judge_prompts=prompts,
            prediction_type=prediction_type,
            label_parsing=request.label_parsing,
            progress=request.progress,
        )
    finally:
        if client is not None:
            client.close()

    if judge_free_only:
        for sample in evaluation.samples:
            sample.accuracy = sample.recall = None
            sample.mapped_reference, sample.mapped_prediction = [], []
        evaluation.summary.update(accuracy_s=math.nan, recall_s=math.nan, avg=math.nan)
    scored = [sample for sample in evaluation.samples if sample.error is None]
    refs = [sample.reference for sample in scored]
    preds = [sample.prediction for sample in scored]
    judge_free = (
        wheel_scores(refs, preds, lexicon, return_details=True)
        if lexicon is not None
        else matching_scores(refs, preds, matching=request.matching)
    )
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_name": request.model_name or Path(request.predictions).stem,
        "predictions": {"path": str(predictions.path), "field": predictions.field},
        "references": {"path": str(references.path), "field": references.field},
        "label_parsing": request.label_parsing,
        "groupings": str(request.groupings) if request.groupings is not None else None,
        "judge": _judge_section(request.judge, client),
        "prompts_sha256": prompts.sha256,
        "prompts_source": prompts.source,
        "prompts": prompts.to_dict(),
        "scores": evaluation.summary,
        "note": NEEDS_JUDGE_NOTE if judge_free_only else None,
        "judge_free": {
            "metric": "emotion_wheel" if lexicon is not None else f"{request.matching}_match",
            "lexicon": str(request.lexicon) if request.lexicon is not None else None,
            **judge_free,
        },
        "failures": [
            {"name": s.name, "error": s.error, "replies": s.failed_replies} for s in evaluation.failures
        ],
        "samples": [sample.to_dict() for sample in evaluation.samples],
    }
    if request.output is not None:
        write_json_atomic(request.output, report)
    return report


def _judge_free_labels(value: Any) -> Any:
    """A free-form explanation's emotion words (judge-free); label lists pass through."""
    if isinstance(value, str) and not (value.strip().startswith("[") and value.strip().endswith("]")):
        from microemo.processing.emotion_words import extract_emotions

        return extract_emotions(value)
    return value


def _fill_missing_groupings(names, references, values, groupings, request) -> tuple[dict | None, bool]:
    """Without a judge: ``(groupings, False)`` when the saved groupings cover every sample that needs one;
    else empty groupings for the rest (so the labels are parsed and checked as usual) and ``True``: only the
    judge-free scores mean anything."""
    from .labels import normalize_labels, parse_label_list

    missing = []
    for name, value in zip(names, values, strict=True):
        ref = normalize_labels(parse_label_list(references.values[name], what=f"reference labels of sample {name!r}",
                                                style=request.label_parsing))  # fmt: skip
        pred = normalize_labels(parse_label_list(value, what=f"prediction of sample {name!r}", style=request.label_parsing))
        if needs_grouping(ref, pred) and name not in (groupings or {}):
            missing.append(name)
    if not missing:
        return groupings, False
    return {**{name: [] for name in missing}, **(groupings or {})}, True


def check_output_path(path: Path) -> None:
    """Refuse a report path that cannot be written, before any work: a folder, or a folder that
    cannot be made or written to."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"report {path}: is a folder; expected the path of a .json file (e.g. {path / 'report.json'})")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"report {path}: {parent} is a file, not a folder; expected a path inside a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise ValueError(f"report {path}: cannot write in {parent} ({error.strerror}); expected a writable folder") from None


def _judge_section(config: JudgeConfig | None, client: JudgeClient | None) -> dict[str, Any] | None:
    if config is None or client is None:
        return None
    settings = asdict(config)
    settings["cache_path"] = str(client.cache.path) if client.cache is not None else None
    settings["base_url"] = config.resolved_base_url()
    return {**settings, "stats": client.stats.to_dict()}


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table in the shape of the paper's Table 1 (Avg, Accuracy_s, Recall_s, in percent),
    followed by the judge-free columns and a line on what the numbers cover."""
    scores, free = report["scores"], report["judge_free"]
    if free["metric"] == "emotion_wheel":
        extra = {
            "Wheel-L1 F": free.get("wheel_level1_fscore", math.nan),
            "Wheel-L2 F": free.get("wheel_level2_fscore", math.nan),
        }
    else:
        prefix = free["metric"]
        label = "Lemma-match F" if prefix == "lemma_match" else "Exact-match F"
        extra = {label: free[f"{prefix}_fscore"]}
    header = ["Model", "Avg", "Accuracy_s", "Recall_s", *extra]
    row = [
        report["model_name"],
        _percent(scores["avg"]),
        _percent(scores["accuracy_s"]),
        _percent(scores["recall_s"]),
        *(_percent(value) for value in extra.values()),
    ]
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |",
    ]
    judge = report.get("judge")
    if report.get("note"):
        source = "judge-free scores only"
    elif judge:
        sha = report.get("prompts_sha256") or ""
        source = f"judge {judge['model']}, prompts {report.get('prompts_source')} (sha256 {sha[:12]})"
    elif report.get("groupings"):
        source = f"saved groupings {report.get('groupings')}"
    else:
        source = "no grouping needed (every prediction empty or equal to its reference)"
    coverage = f"{scores['num_scored']} of {scores['num_samples']} samples scored, {source}"
    if not scores["complete"]:
        coverage += f"; INCOMPLETE: {scores['num_failed']} samples failed (see the report's 'failures')"
    lines.append("")
    lines.append(coverage)
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    return "\n".join(lines)
