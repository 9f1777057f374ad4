"""Reading predictions and references (EMER CSV, JSONL, JSON) and writing reports atomically.

Formats (prior-art section 4): references are CSV ``name, openset`` where ``openset`` is a list
string; predictions are the same (labels) or CSV ``name, [chinese,] english`` holding free-form
explanations. JSONL (one object per line) and JSON (a list of objects) carry the same fields; a
JSON field may hold a real list.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (a byte-order mark is dropped) or UTF-16 with its byte-order mark.

    Other encodings are refused rather than guessed: a wrong guess would change labels silently.
    """
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 ({error.reason})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        offset = error.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
        line = data[:offset].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[offset]:02x} at byte offset {offset}); expected "
            "UTF-8. Save it as UTF-8 (a spreadsheet's 'CSV UTF-8', or e.g. iconv -f GBK -t UTF-8)"
        ) from None
    if "\x00" in text:
        raise ValueError(f"{path}: holds NUL bytes, so it is a binary file, not text; expected a .csv, .jsonl or .json file")
    return text


def _no_nan(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value; expected a label list, a string or null")


def _read_csv(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    # strict: a quote that opens a value and never closes is an error, reported at the line where
    # the record (and so the quote) began, not at the line where the parser ran out.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[tuple[str, dict[str, Any]]] = []
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            hint = ""
            if "expected after" in str(error) or "end of data" in str(error):
                hint = (f"; a value opened with a double quote on line {line} is not closed where it should be "
                        '(write a quote inside a quoted value as "")')
            raise ValueError(f"{path}, line {line}: not valid CSV ({error}){hint}") from None
        if not record:
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in record]
            named = [name for name in header if name]
            doubled = sorted({name for name in named if named.count(name) > 1})
            if doubled:
                raise ValueError(f"{path}: the header names the column(s) {doubled} twice; expected each column once")
            if len(header) == 1 and any(sep in header[0] for sep in ";\t"):
                sep = "';'" if ";" in header[0] else "tabs"
                raise ValueError(f"{path}: the header {header[0]!r} is separated by {sep}; expected commas (name,openset)")
            continue
        if len(record) != len(header):
            raise ValueError(
                f"{path}, line {line}: {len(record)} values; expected {len(header)}, one per column of the header "
                f"{header} (a value that holds a comma must be in double quotes)"
            )
        # Empty cells only are missing: an emotion word such as "none" must stay a word.
        rows.append((f"line {line}", {
            name: (value if value != "" else None) for name, value in zip(header, record, strict=True) if name
        }))
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header line such as 'name,openset' and a row per sample")
    return rows


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Each row with where it is in the file (``line 3``, ``item 2``)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected .csv, .jsonl or .json")
    text = _read_text(path)
    if not text.strip():
        expected = "a header line such as 'name,openset' and a row per sample" if suffix == ".csv" else \
            "samples with a 'name' field"
        raise ValueError(f"{path}: the file is empty; expected {expected}")
    if suffix == ".csv":
        return _read_csv(path, text)
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_no_nan)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error.msg}); expected one object per line") from None
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: {error}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: got a JSON {type(row).__name__}; expected an object")
            rows.append((f"line {number}", row))
        return rows
    try:
        data = json.loads(text, parse_constant=_no_nan)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not JSON ({error.msg} at line {error.lineno}, column {error.colno}); expected a list of objects"
        ) from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ValueError(f"{path}: expected a JSON list of objects with a 'name' field")
    return [(f"item {number}", row) for number, row in enumerate(data, start=1)]


#: Cell texts that are what Python or pandas write for a missing number, never an answer.
_NOT_A_NUMBER_TEXTS = {"nan", "-nan", "inf", "-inf", "infinity", "-infinity"}


def read_samples(path: str | Path, *, field: str | None = None, fields: Sequence[str] | None = None) -> SampleTable:
    """Read one field of every sample, keyed by the ``name`` column.

    ``field`` names the column; otherwise the first of ``fields`` present (default: label fields,
    then explanation fields) is used. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for a path that is not a file, text that is not UTF-8, malformed CSV or JSON
    (naming the line), an empty file, no ``name`` column, no usable field, a missing or repeated
    name, or a value that is ``NaN`` or infinite.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected a .csv, .jsonl or .json file of samples")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; expected a .csv, .jsonl or .json file of samples")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; expected a .csv, .jsonl or .json file of samples")
    located = _read_rows(path)
    if not located:
        raise ValueError(f"{path}: no samples{' (a header only)' if path.suffix.lower() == '.csv' else ''}")
    rows = [row for _, row in located]
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
    where_seen: dict[str, str] = {}
    for number, (where, row) in enumerate(located, start=1):
        name = row.get("name")
        if name is None or isinstance(name, bool) or not isinstance(name, (str, int)) or not str(name).strip():
            detail = "has no name" if name is None or not str(name).strip() else f"has the name {name!r}"
            raise ValueError(f"{path}: row {number} {detail} ({where}); expected a sample name such as sample_00000000")
        name = str(name).strip()
        if name in values:
            raise ValueError(
                f"{path}: sample {name!r} appears twice ({where_seen[name]} and {where}); expected one row per sample"
            )
        value = row.get(field)
        if isinstance(value, str) and value.strip().lower() in _NOT_A_NUMBER_TEXTS:
            raise ValueError(
                f"{path}, {where}: the {field!r} value of sample {name!r} is {value!r}, which is how a missing number "
                "is written; expected a label list ('[]' for none) or an empty cell"
            )
        values[name] = value
        where_seen[name] = where
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


@contextlib.contextmanager
def atomic_replace(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A stream to a temporary file beside ``path`` that replaces ``path`` when the block ends (synced first), or
    is removed when the block raises: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path`` (never half-written)."""
    with atomic_replace(path) as stream:
        json.dump(data, stream, indent=2, ensure_ascii=False, allow_nan=True)
