"""Judge-free scoring of open-vocabulary emotion labels.

Two metrics, neither of which calls an LLM at scoring time:

**Emotion-wheel metric** (the protocol of MERTools' MER2025 `my_affectgpt/evaluation/wheel.py`).
Every label is mapped, through a word-form table and a synonym table, onto the words of several
emotion wheels, and from there onto the wheel's level-1 (or level-2) emotion. Labels that cannot
be mapped are dropped. Per wheel: precision and recall per sample (samples whose reference maps to
nothing are skipped; an empty mapped prediction scores 0), F = 2PR / (P + R) on the mean P and R;
the reported F, P and R are the averages over the wheels.

**Exact / lemma matching** (no lexicon at all): the same P, R and F over the label sets themselves,
compared as lower-cased strings (``exact``) or through a small rule-based lemmatiser (``lemma``).
These are named ``exact_match_*`` / ``lemma_match_*`` so they are never confused with the wheel
metric: they credit no synonyms.

Lexicon folder (MERTools' layout; load it from wherever you keep it, it is not shipped here):

* ``wheel*.xlsx`` (or ``.csv``): columns ``level1, level2, level3``; an empty cell repeats the value above.
* ``synonym.xlsx`` (or ``.csv``): column pairs ``word_<run>, synonym_<run>``: a wheel word and a
  comma-separated list of its synonyms, for any number of runs.
* ``format.csv``: columns ``name, format``: a label and a comma-separated list of its word forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .labels import lemma_key, normalize_labels, parse_label_list

__all__ = [
    "WheelLexicon",
    "LexiconError",
    "load_lexicon",
    "wheel_scores",
    "matching_scores",
    "Matching",
]

Matching = Literal["exact", "lemma"]
WheelTree = dict[str, dict[str, list[str]]]


class LexiconError(ValueError):
    """The lexicon folder is missing a table, or a table lacks the expected columns."""


@dataclass
class WheelLexicon:
    """Word forms -> labels -> wheel words -> wheel emotions (level 1 or 2)."""

    form_to_labels: dict[str, list[str]]
    label_to_wheel_words: dict[str, list[str]]
    wheels: dict[str, WheelTree]
    source: str = ""
    _maps: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict, repr=False)

    def wheel_map(self, wheel: str, level: int) -> dict[str, str]:
        """Every word of one wheel -> its level-1 emotion, or its level-2 emotion.

        At level 2 a level-1 word maps to the alphabetically first of its level-2 emotions, as
        in the original, so that every wheel word lands on exactly one class.
        """
        if (wheel, level) in self._maps:
            return self._maps[(wheel, level)]
        if level not in (1, 2):
            raise ValueError(f"wheel level: got {level!r}; expected 1 or 2")
        tree = self.wheels[wheel]
        mapping: dict[str, str] = {}
        for level1, children in tree.items():
            mapping[level1] = level1 if level == 1 else sorted(children)[0]
            for level2, leaves in children.items():
                mapping[level2] = level1 if level == 1 else level2
                for level3 in leaves:
                    mapping[level3] = level1 if level == 1 else level2
        self._maps[(wheel, level)] = mapping
        return mapping

    def map_label(self, label: str, wheel_map: dict[str, str]) -> str | None:
        """The wheel emotion of one lower-cased label, or None when it cannot be mapped."""
        labels = self.form_to_labels.get(label)
        if not labels:
            return None
        candidates = [word for base in labels for word in self.label_to_wheel_words.get(base, [])]
        for word in sorted(candidates):  # sorted: the same answer whatever the table order
            if word in wheel_map:
                return wheel_map[word]
        return None


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return ""
    return " ".join(str(value).lower().split())


def _read_table(folder: Path, stem: str, required: Sequence[str]) -> pd.DataFrame:
    for suffix in (".xlsx", ".csv"):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            break
    else:
        raise LexiconError(f"lexicon {folder}: no {stem}.xlsx or {stem}.csv; expected MERTools' emotion_wheel layout")
    return _read_path(path, required)


def _read_path(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if path.suffix == ".xlsx":
        try:
            frame = pd.read_excel(path, dtype=str)
        except ImportError as error:
            raise LexiconError(
                f"lexicon table {path}: reading .xlsx needs openpyxl (pip install 'microemo[eval]'), "
                "or convert the table to .csv"
            ) from error
    else:
        # Empty cells only are missing: an emotion word such as "none" must stay a word.
        # utf-8-sig: spreadsheet exports (common for the Chinese/English EMER tables) start with a BOM.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise LexiconError(f"lexicon table {path}: missing columns {missing}; found {list(frame.columns)}")
    return frame


def _split_list(value: Any) -> list[str]:
    text = _clean(value)
    return [item for item in normalize_labels(parse_label_list(text)) if item] if text else []


def _read_wheel(path: Path) -> WheelTree:
    frame = _read_path(path, ("level1", "level2", "level3"))
    tree: WheelTree = {}
    level1 = level2 = level3 = ""
    for row in frame.itertuples(index=False):
        # An empty cell repeats the value above (the tables are written as merged cells).
        level1 = _clean(row.level1) or level1
        level2 = _clean(row.level2) or level2
        level3 = _clean(row.level3) or level3
        if not (level1 and level2 and level3):
            raise LexiconError(f"wheel table {path}: a row before the first full level1/level2/level3 row is empty")
        tree.setdefault(level1, {}).setdefault(level2, []).append(level3)
    if not tree:
        raise LexiconError(f"wheel table {path}: no rows; expected level1, level2, level3 rows")
    return tree


def load_lexicon(folder: str | Path) -> WheelLexicon:
    """Load an emotion-wheel lexicon folder in MERTools' layout (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise LexiconError(f"lexicon {root}: not a folder; expected a folder with wheel*.xlsx, synonym.xlsx, format.csv")
    wheel_paths = sorted(
        path for path in root.iterdir() if path.name.startswith("wheel") and path.suffix in {".xlsx", ".csv"}
    )
    wheels: dict[str, WheelTree] = {}
    for path in wheel_paths:
        if path.stem in wheels:
            raise LexiconError(f"lexicon {root}: both {path.stem}.xlsx and {path.stem}.csv; keep one")
        wheels[path.stem] = _read_wheel(path)
    if not wheels:
        raise LexiconError(f"lexicon {root}: no wheel*.xlsx or wheel*.csv tables")

    synonyms = _read_table(root, "synonym", ())
    runs = sorted(c[len("word_") :] for c in synonyms.columns if c.startswith("word_") and f"synonym_{c[5:]}" in synonyms)
    if not runs:
        raise LexiconError(
            f"lexicon {root}: the synonym table has columns {list(synonyms.columns)}; expected pairs word_<run>, synonym_<run>"
        )
    label_to_wheel_words: dict[str, list[str]] = {}
    for run in runs:
        for word, synonym_list in zip(synonyms[f"word_{run}"], synonyms[f"synonym_{run}"], strict=True):
            word = _clean(word)
            if not word:
                continue
            for label in [word, *_split_list(synonym_list)]:
                targets = label_to_wheel_words.setdefault(label, [])
                if word not in targets:
                    targets.append(word)

    forms = _read_table(root, "format", ("name", "format"))
    form_to_labels: dict[str, list[str]] = {}
    for name, form_list in zip(forms["name"], forms["format"], strict=True):
        name = _clean(name)
        if not name:
            continue
        for form in [*_split_list(form_list), name]:
            targets = form_to_labels.setdefault(form, [])
            if name not in targets:
                targets.append(name)
    return WheelLexicon(form_to_labels, label_to_wheel_words, wheels, source=str(root))


def _precision_recall(
    references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], key: Callable[[str], str | None]
) -> tuple[float, float, int, list[tuple[float, float] | None]]:
    """Mean precision and recall over samples whose mapped reference is non-empty."""
    precision, recall, per_sample = [], [], []
    for reference, prediction in zip(references, predictions, strict=True):
        ref = {k for k in (key(label) for label in reference) if k}
        pred = {k for k in (key(label) for label in prediction) if k}
        if not ref:
            per_sample.append(None)
            continue
        hits = len(ref & pred)
        p, r = (hits / len(pred), hits / len(ref)) if pred else (0.0, 0.0)
        precision.append(p)
        recall.append(r)
        per_sample.append((p, r))
    if not precision:
        return math.nan, math.nan, 0, per_sample
    return float(np.mean(precision)), float(np.mean(recall)), len(precision), per_sample


def _fscore(precision: float, recall: float) -> float:
    if math.isnan(precision) or math.isnan(recall):
        return math.nan
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _prepare(labels: Sequence[Any], what: str) -> list[list[str]]:
    return [normalize_labels(parse_label_list(value, what=f"{what} {index}")) for index, value in enumerate(labels)]


def wheel_scores(
    references: Sequence[Any],
    predictions: Sequence[Any],
    lexicon: WheelLexicon,
    *,
    levels: Sequence[int] = (1, 2),
    return_details: bool = False,
) -> dict[str, Any]:
    """The emotion-wheel F, precision and recall at each level, averaged over the lexicon's wheels.

    Returns ``wheel_level{L}_fscore``, ``wheel_level{L}_precision``, ``wheel_level{L}_recall`` and
    ``wheel_level{L}_num_scored`` (samples with a mappable reference, the smallest over wheels)
    for each level; with ``return_details``, per-wheel values under ``details``.
    """
    if len(references) != len(predictions):
        raise ValueError(f"lengths differ: {len(references)} references, {len(predictions)} predictions")
    refs, preds = _prepare(references, "reference"), _prepare(predictions, "prediction")
    result: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for level in levels:
        per_wheel = {}
        for wheel in lexicon.wheels:
            mapping = lexicon.wheel_map(wheel, level)
            p, r, n, _ = _precision_recall(refs, preds, lambda label, m=mapping: lexicon.map_label(label, m))
            per_wheel[wheel] = {"fscore": _fscore(p, r), "precision": p, "recall": r, "num_scored": n}
        for metric in ("fscore", "precision", "recall"):
            result[f"wheel_level{level}_{metric}"] = float(np.mean([v[metric] for v in per_wheel.values()]))
        result[f"wheel_level{level}_num_scored"] = min(v["num_scored"] for v in per_wheel.values())
        details[f"level{level}"] = per_wheel
    result["num_samples"] = len(refs)
    if return_details:
        result["details"] = details
    return result


def matching_scores(
    references: Sequence[Any], predictions: Sequence[Any], *, matching: Matching = "lemma", return_details: bool = False
) -> dict[str, Any]:
    """Lexicon-free F, precision and recall by exact or lemmatised label matching.

    Keys are prefixed ``exact_match_`` or ``lemma_match_``; no synonyms are credited.
    """
    if matching not in ("exact", "lemma"):
        raise ValueError(f"matching: got {matching!r}; expected 'exact' or 'lemma'")
    if len(references) != len(predictions):
        raise ValueError(f"lengths differ: {len(references)} references, {len(predictions)} predictions")
    refs, preds = _prepare(references, "reference"), _prepare(predictions, "prediction")
    key: Callable[[str], str | None] = lemma_key if matching == "lemma" else (lambda label: label)
    p, r, n, per_sample = _precision_recall(refs, preds, key)
    prefix = f"{matching}_match"
    result: dict[str, Any] = {
        f"{prefix}_fscore": _fscore(p, r),
        f"{prefix}_precision": p,
        f"{prefix}_recall": r,
        f"{prefix}_num_scored": n,
        "num_samples": len(refs),
    }
    if return_details:
        result["details"] = [
            None if item is None else {"precision": item[0], "recall": item[1]} for item in per_sample
        ]
    return result
