"""Training data: EMER-style tables and videos -> a prepared `datasets.DatasetDict` with a seeded split.

Sources (one folder of videos named by ``name``, any common extension, joined with tables):

- EMER-Fine descriptions, CSV ``name, chinese, english``: the answer to learn (``--target description``);
- MER subtitles, CSV ``name, chinese, english``: the subtitle in the prompt;
- open-vocabulary labels, CSV ``name, openset`` (a list string such as ``"['happy', 'excited']"``): the
  evaluation references, or the answer with ``--target openset``;
- MER2023 discrete labels, CSV ``name, discrete[, valence]``: the answer with ``--target discrete``;
- a generic JSONL, one object per line: ``video`` and ``answer``, optional ``name``, ``subtitle``,
  ``utterances`` (a .srt/.vtt/.json file or a list of ``[start, end, text]``), ``question``, ``openset``.
  Relative paths are relative to the JSONL file's folder.

:func:`prepare_dataset` runs the heavy part of the processor (decoding, face mesh, clue masks, utterance
spans, the video's sound) once per row through ``datasets.map(num_proc=...)`` and its cache, and stores
each sample compactly (:func:`encode_sample`: uint8 frames already at the model's image size, bit-packed
masks, float16 audio); the collator rebuilds the sample (:func:`decode_sample`) and does the cheap rest per
batch. Rows that cannot be used are left out and listed with their reasons in ``bad_rows.jsonl``; the
seeded train/test split is written to ``split.json`` (EMER-Fine ships none) together with the test
references that ``microemo evaluate`` reads.

Output folder::

    dataset/            the DatasetDict (train, test), datasets.load_from_disk
    split.json          seed, test fraction and the names of each split
    bad_rows.jsonl      one {"name", "source", "reason"} per excluded row
    test_references.csv name, openset (when labels were given) or name, english: for `microemo evaluate`
    prepare.json        what was prepared, with which processor settings, and the counts
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microemo.evaluation.labels import LabelListError, parse_label_list
from microemo.processing.processing_microemo import MicroEmoProcessor, PreparedSample
from microemo.processing.utterances import Span, as_spans, load_spans
from microemo.processing.video_io import DecodedVideo

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv")
#: MER2023's six discrete classes (track 1).
MER2023_CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")
TARGETS = ("description", "openset", "discrete")

# Questions for the label targets; the description target uses the processor's EMER question. Our wording.
OPENSET_QUESTION = "Which emotions does the person show? List every emotion you can infer."
DISCRETE_QUESTION = "Which one of these emotions does the person show: " + ", ".join(MER2023_CLASSES) + "?"

#: Columns of a row before preparation (what the builders produce).
ROW_COLUMNS = ("name", "video", "answer", "subtitle", "question", "utterances", "openset", "source")


class DataError(ValueError):
    """A data file that cannot be read at all (not a bad row: those go to the report)."""


@dataclass
class Rows:
    """Usable rows (dicts with :data:`ROW_COLUMNS`) and the rows left out, each with its reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    bad: list[dict[str, str]] = field(default_factory=list)

    def reject(self, name: str, source: str, reason: str) -> None:
        self.bad.append({"name": name, "source": source, "reason": reason})


# --------------------------------------------------------------------------------------------------
# Reading the tables


def read_table(path: str | os.PathLike, columns: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Rows of a CSV keyed by ``name``; ``columns`` must all be present. Empty cells are None.

    Raises :class:`DataError` for a missing file, a missing column or a duplicated name.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a CSV with columns {['name', *columns]}")
    with path.open(encoding="utf-8-sig", newline="") as handle:  # spreadsheet exports start with a BOM
        reader = csv.DictReader(handle)
        found = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("name", *columns) if c not in found]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {found}, expected name, {', '.join(columns)}")
        table: dict[str, dict[str, str | None]] = {}
        for number, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in raw.items()}
            name = row.get("name")
            if not name:
                raise DataError(f"{path}, line {number}: no name")
            if name in table:
                raise DataError(f"{path}, line {number}: {name!r} appears twice; expected one row per sample")
            table[name] = row
    return table


def find_videos(video_dir: str | os.PathLike) -> dict[str, Path]:
    """Videos of a folder by file stem (``sample_00000000.avi`` -> ``sample_00000000``)."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise DataError(f"{video_dir}: no such folder; expected a folder of videos named by sample name")
    found: dict[str, Path] = {}
    for path in sorted(video_dir.iterdir()):
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            if path.stem in found:
                raise DataError(f"{video_dir}: two videos for {path.stem!r}: {found[path.stem].name} and {path.name}")
            found[path.stem] = path
    return found


def _openset(value: Any, what: str) -> list[str]:
    labels = parse_label_list(value, what=what)
    if not labels:
        raise LabelListError(f"{what}: empty label list")
    return labels


def emer_rows(
    video_dir: str | os.PathLike,
    *,
    descriptions: str | os.PathLike | None = None,
    subtitles: str | os.PathLike | None = None,
    openset: str | os.PathLike | None = None,
    discrete: str | os.PathLike | None = None,
    target: str = "description",
    language: str = "english",
) -> Rows:
    """Rows of the EMER / MER tables joined with the videos of ``video_dir``.

    The samples are the names of the target's table (``descriptions`` for ``target="description"``,
    ``openset`` or ``discrete`` otherwise). A row is left out, with its reason, when its video is missing,
    its answer is empty, or its label list does not parse. ``language`` picks the ``english`` or ``chinese``
    column of the description and subtitle tables.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if language not in ("english", "chinese"):
        raise ValueError(f"language must be 'english' or 'chinese', got {language!r}")
    tables = {
        "description": read_table(descriptions, [language]) if descriptions else None,
        "openset": read_table(openset, ["openset"]) if openset else None,
        "discrete": read_table(discrete, ["discrete"]) if discrete else None,
    }
    if tables[target] is None:
        raise ValueError(f"target={target!r} needs the {target} table ({'descriptions' if target == 'description' else target}=...)")
    subtitle_table = read_table(subtitles, [language]) if subtitles else {}
    videos = find_videos(video_dir)
    source = str({"description": descriptions, "openset": openset, "discrete": discrete}[target])
    out = Rows()
    for name, row in tables[target].items():
        if name not in videos:
            out.reject(name, source, f"missing video: no {name}.* ({'/'.join(VIDEO_EXTENSIONS)}) in {video_dir}")
            continue
        labels: list[str] = []
        try:
            if tables["openset"] is not None and name in tables["openset"]:
                labels = _openset(tables["openset"][name]["openset"], f"{openset}: {name} openset")
            if target == "description":
                answer, question = row[language], None
            elif target == "openset":
                answer, question = ", ".join(labels) if labels else None, OPENSET_QUESTION
            else:
                label = (row["discrete"] or "").lower()
                if label not in MER2023_CLASSES:
                    raise LabelListError(f"{discrete}: {name} discrete label {row['discrete']!r} is not one of {MER2023_CLASSES}")
                answer, question = label, DISCRETE_QUESTION
        except LabelListError as error:
            out.reject(name, source, f"malformed label list: {error}")
            continue
        if not answer:
            out.reject(name, source, f"empty answer: no {language if target == 'description' else target} text")
            continue
        subtitle = (subtitle_table.get(name) or {}).get(language)
        out.rows.append(_row(name, videos[name], answer, subtitle, question, None, labels, source))
    return out


def jsonl_rows(path: str | os.PathLike) -> Rows:
    """Rows of a JSONL file (``video``, ``answer``; optional ``name``, ``subtitle``, ``utterances``, ``question``,
    ``openset``). A line that is not a JSON object raises :class:`DataError`; a row with a missing video, an
    empty answer, unreadable utterances or a malformed label list goes to the report."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected JSONL with one {{'video': ..., 'answer': ...}} per line")
    out = Rows()
    names: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not JSON ({error.msg}); expected one object per line") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}, line {number}: a JSON {type(item).__name__}; expected an object")
        source = f"{path}:{number}"
        if not item.get("video"):
            raise DataError(f"{source}: no 'video'; every line needs 'video' and 'answer'")
        video = _resolve(item["video"], path.parent)
        name = str(item.get("name") or video.stem)
        if name in names:
            raise DataError(f"{source}: name {name!r} appears twice; give each line a distinct 'name'")
        names.add(name)
        if not video.is_file():
            out.reject(name, source, f"missing video: {video}")
            continue
        answer = item.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            out.reject(name, source, f"empty answer: 'answer' is {answer!r}")
            continue
        wrong = [key for key in ("subtitle", "question") if item.get(key) is not None and not isinstance(item[key], str)]
        if wrong:  # a dict or list would reach the prompt as its Python repr
            out.reject(name, source, f"'{wrong[0]}' must be a string, got {type(item[wrong[0]]).__name__}")
            continue
        try:
            labels = _openset(item["openset"], f"{source} openset") if item.get("openset") is not None else []
        except LabelListError as error:
            out.reject(name, source, f"malformed label list: {error}")
            continue
        utterances = item.get("utterances")
        try:
            if isinstance(utterances, str):
                spans = load_spans(_resolve(utterances, path.parent))
            elif utterances is not None:
                spans = as_spans(utterances, f"{source} utterances")
            else:
                spans = None
        except (ValueError, OSError) as error:
            out.reject(name, source, f"unreadable utterances: {error}")
            continue
        out.rows.append(_row(name, video, answer.strip(), item.get("subtitle"), item.get("question"), spans, labels, source))
    return out


def _resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _row(name, video, answer, subtitle, question, spans: list[Span] | None, labels, source) -> dict[str, Any]:
    return {
        "name": name,
        "video": str(Path(video).resolve()),
        "answer": answer,
        "subtitle": subtitle,
        "question": question,
        # JSON text of [[start, end, text], ...]; None: the processor finds the utterances.
        "utterances": None if spans is None else json.dumps([[s.start, s.end, s.text] for s in spans]),
        "openset": list(labels),
        "source": source,
    }


# --------------------------------------------------------------------------------------------------
# Compact storage of a prepared sample


def _pack(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    if array.dtype == bool:
        return {"data": np.packbits(array.reshape(-1)).tobytes(), "shape": list(array.shape), "dtype": "bool"}
    return {"data": array.tobytes(), "shape": list(array.shape), "dtype": str(array.dtype)}


def _unpack(packed: dict[str, Any]) -> np.ndarray:
    shape = tuple(int(n) for n in packed["shape"])
    if packed["dtype"] == "bool":
        count = math.prod(shape)
        return np.unpackbits(np.frombuffer(packed["data"], dtype=np.uint8), count=count).astype(bool).reshape(shape)
    return np.frombuffer(packed["data"], dtype=np.dtype(packed["dtype"])).reshape(shape).copy()


def resize_frames(frames: np.ndarray, processor: MicroEmoProcessor) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 resized to the processor's square input, as its video processor resizes them
    (so the collator's resize is the identity and the stored frames are what the model sees)."""
    size = processor.image_size
    if frames.shape[1:3] == (size, size):
        return frames
    resized = processor.video_processor.pixel_values(frames, do_rescale=False, do_normalize=False)
    resized = np.transpose(resized, (0, 2, 3, 1))  # [T, S, S, 3]
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def encode_sample(sample: PreparedSample, processor: MicroEmoProcessor) -> dict[str, Any]:
    """A :class:`PreparedSample` as compact columns: frames uint8 at the model's image size, bit-packed clue and
    utterance masks, spans as lists, the waveform as float16 at 16 kHz. Landmarks are not kept (the clue masks
    are what the model reads)."""
    waveform = None
    if sample.waveform is not None:
        waveform = _pack(np.asarray(sample.waveform, dtype=np.float16))
    return {
        "frames": _pack(resize_frames(sample.video.frames, processor)),
        "timestamps": [float(t) for t in sample.video.timestamps],
        "duration": float(sample.video.duration),
        "has_audio": bool(sample.video.has_audio),
        "face_found": [bool(f) for f in sample.face_found],
        "clue_masks": _pack(np.asarray(sample.clue_masks, dtype=bool)),
        "utterance_spans": [[float(s.start), float(s.end)] for s in sample.utterances],
        "utterance_texts": [s.text for s in sample.utterances],
        "utterance_frame_mask": _pack(np.asarray(sample.utterance_frame_mask, dtype=bool)),
        "waveform": waveform,
        "audio_clip_starts": None if sample.audio_clip_starts is None else [float(s) for s in sample.audio_clip_starts],
        "prepared_subtitle": sample.subtitle,
        "notes": list(sample.notes),
        "audio_is_given": bool(sample.audio_is_given),
    }


def decode_sample(row: dict[str, Any], video_path: str | None = None) -> PreparedSample:
    """Rebuild the :class:`PreparedSample` of a row written by :func:`encode_sample`."""
    waveform = None
    if row.get("waveform") is not None:
        waveform = _unpack(row["waveform"]).astype(np.float32)
    spans = [Span(float(s), float(e), str(t)) for (s, e), t in zip(row["utterance_spans"], row["utterance_texts"], strict=True)]
    video = DecodedVideo(
        frames=_unpack(row["frames"]),
        timestamps=np.asarray(row["timestamps"], dtype=np.float64),
        duration=float(row["duration"]),
        has_audio=bool(row["has_audio"]),
        path=video_path or row.get("video"),
    )
    starts = row.get("audio_clip_starts")
    return PreparedSample(
        video=video,
        landmarks=None,
        face_found=np.asarray(row["face_found"], dtype=bool),
        clue_masks=_unpack(row["clue_masks"]),
        utterances=spans,
        utterance_frame_mask=_unpack(row["utterance_frame_mask"]).reshape(len(spans), len(row["timestamps"])),
        waveform=waveform,
        audio_clip_starts=None if starts is None else np.asarray(starts, dtype=np.float64),
        subtitle=row.get("prepared_subtitle") or "",
        notes=list(row.get("notes") or []),
        audio_is_given=bool(row.get("audio_is_given")),
    )


def _packed_feature():
    from datasets import List, Value

    return {"data": Value("binary"), "shape": List(Value("int64")), "dtype": Value("string")}


def prepared_features():
    """The `datasets.Features` of a prepared row: the source columns, the encoded sample and ``error``."""
    from datasets import Features, List, Value

    packed = _packed_feature()
    return Features(
        {
            "name": Value("string"),
            "video": Value("string"),
            "answer": Value("string"),
            "subtitle": Value("string"),
            "question": Value("string"),
            "utterances": Value("string"),
            "openset": List(Value("string")),
            "source": Value("string"),
            "frames": packed,
            "timestamps": List(Value("float64")),
            "duration": Value("float64"),
            "has_audio": Value("bool"),
            "face_found": List(Value("bool")),
            "clue_masks": packed,
            "utterance_spans": List(List(Value("float64"))),
            "utterance_texts": List(Value("string")),
            "utterance_frame_mask": packed,
            "waveform": packed,
            "audio_clip_starts": List(Value("float64")),
            "prepared_subtitle": Value("string"),
            "notes": List(Value("string")),
            "audio_is_given": Value("bool"),
            "error": Value("string"),
        }
    )


_EMPTY_PACK = {"data": b"", "shape": [0], "dtype": "uint8"}


def prepare_row(row: dict[str, Any], processor: MicroEmoProcessor, num_frames: int | None = None) -> dict[str, Any]:
    """The ``datasets.map`` function: run ``processor.prepare_sample`` on one row and encode it. A video that
    cannot be used (corrupt, no video stream, utterances outside it) gives an ``error`` instead of raising."""
    spans = None if row["utterances"] is None else [tuple(s) for s in json.loads(row["utterances"])]
    try:
        sample = processor.prepare_sample(row["video"], utterances=spans, subtitle=row["subtitle"], num_frames=num_frames)
        encoded = encode_sample(sample, processor)
        error = None
    except Exception as error_:  # noqa: BLE001 - every failure becomes a reported bad row, with its type
        encoded = {
            "frames": _EMPTY_PACK, "timestamps": [], "duration": 0.0, "has_audio": False, "face_found": [],
            "clue_masks": _EMPTY_PACK, "utterance_spans": [], "utterance_texts": [],
            "utterance_frame_mask": _EMPTY_PACK, "waveform": None, "audio_clip_starts": None,
            "prepared_subtitle": None, "notes": [], "audio_is_given": False,
        }  # fmt: skip
        error = f"{type(error_).__name__}: {error_}"
    return {**encoded, "error": error}


# --------------------------------------------------------------------------------------------------
# Split and preparation


def seeded_split(names: Sequence[str], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A reproducible train/test split of ``names``: sorted, shuffled with ``seed``, the first
    ``round(test_fraction * n)`` (at least 1 when 0 < fraction and n > 1) are the test set."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    ordered = sorted(names)
    random.Random(seed).shuffle(ordered)
    count = round(test_fraction * len(ordered))
    if test_fraction > 0 and len(ordered) > 1:
        count = min(max(count, 1), len(ordered) - 1)
    test = set(ordered[:count])
    return {"train": [n for n in sorted(names) if n not in test], "test": [n for n in sorted(names) if n in test]}


#: Below this many rows a held-out split says nothing and costs a large share of the data (2 rows -> 1 + 1).
MIN_ROWS_FOR_SPLIT = 10
#: The test share when none is asked for (``test_fraction=None``).
DEFAULT_TEST_FRACTION = 0.2


def choose_test_fraction(num_rows: int, test_fraction: float | None) -> tuple[float, str | None]:
    """The test share to split ``num_rows`` with, and a warning to show, if any.

    ``None`` (not asked for) means :data:`DEFAULT_TEST_FRACTION`, except under :data:`MIN_ROWS_FOR_SPLIT` rows:
    then every row trains and the warning says there is no held-out set. An explicit share on so few rows is
    honoured, with a warning that names how many rows it holds out.
    """
    if test_fraction is None:
        if num_rows < MIN_ROWS_FOR_SPLIT:
            return 0.0, (f"{num_rows} rows are too few for a held-out split (under {MIN_ROWS_FOR_SPLIT}): training "
                         "on every row, with no held-out set; pass --test_fraction to split anyway")  # fmt: skip
        return DEFAULT_TEST_FRACTION, None
    if 0 < test_fraction and num_rows < MIN_ROWS_FOR_SPLIT:
        held_out = len(seeded_split([str(i) for i in range(num_rows)], test_fraction, 0)["test"])
        return test_fraction, (f"only {num_rows} rows: --test_fraction {test_fraction} holds out {held_out} of them "
                               f"(a split under {MIN_ROWS_FOR_SPLIT} rows measures little)")  # fmt: skip
    return test_fraction, None


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _write_references(path: Path, rows: list[dict[str, Any]]) -> None:
    with_labels = any(row["openset"] for row in rows)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "openset" if with_labels else "english"])
        for row in rows:
            writer.writerow([row["name"], repr(row["openset"]) if with_labels else row["answer"]])
    os.replace(tmp, path)


@dataclass
class PreparedData:
    """Where :func:`prepare_dataset` wrote its results, and the counts."""

    output_dir: Path
    counts: dict[str, int]
    bad: list[dict[str, str]]

    @property
    def dataset_dir(self) -> Path:
        return self.output_dir / "dataset"


def prepare_dataset(
    rows: Rows,
    processor: MicroEmoProcessor,
    output_dir: str | os.PathLike,
    *,
    test_fraction: float | None = None,
    seed: int = 42,
    split_file: str | os.PathLike | None = None,
    num_frames: int | None = None,
    num_proc: int | None = None,
) -> PreparedData:
    """Prepare ``rows`` once and write the DatasetDict, the split, the bad-row report and the test references.

    The split is made over the names of the usable rows before preparation (``split_file`` reuses an earlier
    ``split.json`` instead), so a video that later fails to decode leaves its split without moving the others.
    ``test_fraction=None`` splits off 20%, but never under 10 rows (see :func:`choose_test_fraction`, whose
    warning is printed to stderr). Preparation runs through ``datasets.map`` with ``num_proc`` processes; its cache lives in
    ``output_dir/cache``, so a second run with the same rows and processor settings reads it back.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    split = choose_split(rows, split_file, test_fraction, seed)
    prepared = map_prepare(source_dataset(rows, output_dir), processor, num_frames, num_proc)
    return write_prepared(rows, prepared, split, output_dir, processor, seed=seed, test_fraction=test_fraction,
                          num_frames=num_frames)  # fmt: skip


def choose_split(rows: Rows, split_file: str | os.PathLike | None, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """The train/test names of the usable ``rows``: those of ``split_file`` when given, else :func:`seeded_split`."""
    if not rows.rows:
        raise DataError(f"no usable rows ({len(rows.bad)} bad: {rows.bad[:3]}); nothing to prepare")
    names = [row["name"] for row in rows.rows]
    if split_file is not None:
        split = read_split_file(split_file)
        known = set(split["train"]) | set(split["test"])
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{split_file}: {len(unknown)} rows are in neither split, e.g. {unknown[:5]}")
        split = {"train": [n for n in split["train"] if n in set(names)], "test": [n for n in split["test"] if n in set(names)]}
    else:
        test_fraction, warning = choose_test_fraction(len(names), test_fraction)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        split = seeded_split(names, test_fraction, seed)
    return split


def source_dataset(rows: Rows, folder: Path):
    """The rows as a `datasets.Dataset` read from ``folder/rows.jsonl``, with its cache in ``folder/cache``."""
    from datasets import Features, List, Value, load_dataset

    # Through a JSONL file so that `datasets` keeps the map results in its cache (keyed by file and function).
    rows_file = folder / "rows.jsonl"
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.rows)
    # Rewritten only when the rows change: `datasets` keys its cache on the file's modification time too, so
    # an identical rewrite would throw away every prepared row.
    if not rows_file.is_file() or rows_file.read_text(encoding="utf-8") != text:
        _write_jsonl(rows_file, rows.rows)
    source_features = Features({
        "name": Value("string"), "video": Value("string"), "answer": Value("string"), "subtitle": Value("string"),
        "question": Value("string"), "utterances": Value("string"), "openset": List(Value("string")),
        "source": Value("string"),
    })  # fmt: skip
    return load_dataset("json", data_files=str(rows_file), split="train", features=source_features,
                        cache_dir=str(folder / "cache"))  # fmt: skip


def map_prepare(raw, processor: MicroEmoProcessor, num_frames: int | None, num_proc: int | None):
    """``raw`` with every row prepared (:func:`prepare_row`) through ``datasets.map`` in ``num_proc`` processes."""
    return raw.map(
        prepare_row,
        fn_kwargs={"processor": processor, "num_frames": num_frames},
        features=prepared_features(),
        num_proc=num_proc if num_proc and num_proc > 1 and len(raw) > 1 else None,
        desc="preparing videos (decode, face mesh, clue masks, utterances, audio)",
    )


def write_prepared(
    rows: Rows,
    prepared,
    split: dict[str, list[str]],
    output_dir: Path,
    processor: MicroEmoProcessor,
    *,
    seed: int,
    test_fraction: float,
    num_frames: int | None,
) -> PreparedData:
    """Write the DatasetDict of ``prepared`` (one row per row of ``rows``, in order), the split, the bad-row report,
    the test references and ``prepare.json``."""
    from datasets import DatasetDict

    errors = prepared["error"]
    bad = list(rows.bad)
    good_index = []
    for index, (row, error) in enumerate(zip(rows.rows, errors, strict=True)):
        if error:
            bad.append({"name": row["name"], "source": row["source"], "reason": f"unusable video: {error}"})
        else:
            good_index.append(index)
    good = prepared.select(good_index).remove_columns("error")
    position = {name: i for i, name in enumerate(good["name"])}
    dataset = DatasetDict({
        part: good.select([position[n] for n in split[part] if n in position]) for part in ("train", "test")
    })  # fmt: skip
    if len(dataset["train"]) == 0:
        raise DataError(f"no usable training rows after preparation; see {output_dir / 'bad_rows.jsonl'}")
    # One shard per split: an empty test split (every test video unusable) must still be written and loadable.
    dataset.save_to_disk(str(output_dir / "dataset"), num_shards={part: 1 for part in dataset})

    _write_jsonl(output_dir / "bad_rows.jsonl", bad)
    _write_json(output_dir / "split.json", {"seed": seed, "test_fraction": test_fraction, **split})
    test_rows = [row for row in rows.rows if row["name"] in set(dataset["test"]["name"])]
    if test_rows:
        _write_references(output_dir / "test_references.csv", test_rows)
    counts = {"rows": len(rows.rows) + len(rows.bad), "bad": len(bad), "train": len(dataset["train"]),
              "test": len(dataset["test"])}  # fmt: skip
    _write_json(
        output_dir / "prepare.json",
        {
            "key": preparation_key(rows, processor, num_frames),
            "counts": counts,
            "processor": preparation_settings(processor, num_frames),
        },
    )
    return PreparedData(output_dir=output_dir, counts=counts, bad=bad)


def read_split_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """A ``split.json``: an object with ``train`` and ``test`` lists of sample names; anything else is a
    :class:`DataError` naming the file and what was wrong."""
    path = Path(path)
    expected = "expected a split.json: a JSON object with 'train' and 'test' lists of sample names"
    try:
        split = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(f"--split-file {path}: no such file; {expected}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"--split-file {path}: cannot be read as UTF-8 text ({error}); {expected}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        where = f" at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise DataError(f"--split-file {path}: not JSON{where}; {expected}") from None
    if not isinstance(split, dict) or not {"train", "test"} <= set(split):
        found = sorted(split) if isinstance(split, dict) else type(split).__name__
        raise DataError(f"--split-file {path}: got {found}; {expected}")
    for part in ("train", "test"):
        names = split[part]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise DataError(f"--split-file {path}: '{part}' is not a list of name strings; {expected}")
    return {"train": split["train"], "test": split["test"]}


def preparation_settings(processor: MicroEmoProcessor, num_frames: int | None = None) -> dict[str, Any]:
    """The processor settings prepared data depends on (recorded in ``prepare.json`` and part of its key)."""
    return {
        "num_frames": num_frames or processor.num_frames,
        "image_size": processor.image_size,
        "patch_size": processor.patch_size,
        "clue_regions": list(processor.clue_regions),
        "num_audio_clips": processor.num_audio_clips,
        "utterance_source": processor.utterance_source,
        "max_utterances": getattr(processor, "max_utterances", None),
        "vad_options": getattr(processor, "vad_options", None),
        "asr_model": getattr(processor, "asr_model", None),
        "face": getattr(processor, "face", None),  # whose clues the rows carry (prepare-data --face)
        "min_patch_coverage": getattr(processor, "min_patch_coverage", None),
    }


def preparation_key(rows: Rows, processor: MicroEmoProcessor, num_frames: int | None = None) -> str:
    """What prepared data depends on, hashed: every row's content (answers, subtitles, questions, the utterances'
    text and times, labels), each video file's size and modification time, and the processor's settings.

    Stored in ``prepare.json``; :func:`prepared_is_current` compares it, so that data prepared from other inputs
    (an edited JSONL, a replaced video, other processor settings) is prepared again instead of trained on.
    """
    import hashlib

    digest = hashlib.sha256()
    for row in rows.rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        try:
            stat = os.stat(row["video"])
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(b"missing")
    digest.update(json.dumps(rows.bad, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    settings = preparation_settings(processor, num_frames)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def prepared_is_current(output_dir: str | os.PathLike, key: str) -> bool:
    """True when ``output_dir`` holds a prepared dataset made from inputs whose :func:`preparation_key` is ``key``."""
    output_dir = Path(output_dir)
    report = output_dir / "prepare.json"
    if not (output_dir / "dataset" / "dataset_dict.json").is_file() or not report.is_file():
        return False
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("key") == key
    except (ValueError, AttributeError):
        return False


def load_prepared(path: str | os.PathLike):
    """The DatasetDict written by :func:`prepare_dataset` (``path`` is its output folder or its ``dataset/``)."""
    from datasets import load_from_disk

    path = Path(path)
    folder = path / "dataset" if (path / "dataset").is_dir() else path
    if not (folder / "dataset_dict.json").is_file():
        raise DataError(f"{path}: not a prepared dataset (no dataset/dataset_dict.json); run `prepare-data` first")
    return load_from_disk(str(folder))


__all__ = [
    "DataError", "Rows", "emer_rows", "jsonl_rows", "find_videos", "read_table", "encode_sample", "decode_sample",
    "prepare_row", "prepare_dataset", "seeded_split", "load_prepared", "PreparedData", "MER2023_CLASSES",
    "preparation_key", "prepared_is_current", "read_split_file",
]  # fmt: skip
