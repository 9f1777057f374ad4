"""Reading predictions and references (EMER CSV, JSONL, JSON) and writing reports atomically.

Formats (prior-art section 4): references are CSV ``name, openset`` where ``openset`` is a list
string; predictions are the same (labels) or CSV ``name, [chinese,] english`` holding free-form
explanations. JSONL (one object per line) and JSON (a list of objects) carry the same fields; a
JSON field may hold a real list.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SampleTable", "read_samples", "align", "write_json_atomic"]

#: Fields looked for, in order, when none is named: label fields first, then explanations.
LABEL_FIELDS = ("openset", "labels")
DESCRIPTION_FIELDS = ("english", "description", "reason", "prediction", "output", "text")


@dataclass
class SampleTable:
    """Values of one field by sample name, in file order."""

    path: Path
    field: str
    values: dict[str, Any]

    @property
    def holds_labels(self) -> bool:
        return self.field in LABEL_FIELDS


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        # Empty cells only are missing: an emotion word such as "none" must stay a word.
        # utf-8-sig: spreadsheet exports (common for the Chinese/English EMER tables) start with a BOM.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
        return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error.msg}); expected one object per line") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: got a JSON {type(row).__name__}; expected an object")
            rows.append(row)
        return rows
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ValueError(f"{path}: expected a JSON list of objects with a 'name' field")
        return data
    raise ValueError(f"{path}: unknown file type {suffix!r}; expected .csv, .jsonl or .json")


def read_samples(path: str | Path, *, field: str | None = None, fields: Sequence[str] | None = None) -> SampleTable:
    """Read one field of every sample, keyed by the ``name`` column.

    ``field`` names the column; otherwise the first of ``fields`` present (default: label fields,
    then explanation fields) is used. Raises ``ValueError`` for a missing file, no ``name`` column,
    no usable field, a missing name, or duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected a .csv, .jsonl or .json file of samples")
    rows = _read_rows(path)
    if not rows:
        raise ValueError(f"{path}: no samples")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if "name" not in columns:
        raise ValueError(f"{path}: no 'name' column (found {columns}); expected sample names such as sample_00000000")
    if field is None:
        candidates = list(fields) if fields is not None else [*LABEL_FIELDS, *DESCRIPTION_FIELDS]
        field = next((c for c in candidates if c in columns), None)
        if field is None:
            raise ValueError(f"{path}: none of the columns {candidates} (found {columns}); name the field to read")
    elif field not in columns:
        raise ValueError(f"{path}: no column {field!r} (found {columns})")
    values: dict[str, Any] = {}
    for number, row in enumerate(rows, start=1):
        name = row.get("name")
        if name is None or not str(name).strip():
            raise ValueError(f"{path}: row {number} has no name")
        name = str(name).strip()
        if name in values:
            raise ValueError(f"{path}: sample {name!r} appears twice; expected one row per sample")
        values[name] = row.get(field)
    return SampleTable(path=path, field=field, values=values)


def align(predictions: SampleTable, references: SampleTable) -> list[str]:
    """Reference names in file order, after checking both files hold the same samples."""
    unknown = [name for name in predictions.values if name not in references.values]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction names are not in {references.path} (unknown sample names), e.g. {unknown[:5]}"
        )
    missing = [name for name in references.values if name not in predictions.values]
    if missing:
        raise ValueError(
            f"{len(missing)} reference samples have no prediction in {predictions.path}, e.g. {missing[:5]}; "
            "every reference sample must be predicted (a missing one is not scored as zero silently)"
        )
    return list(references.values)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False, allow_nan=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
