"""Utterance spans: read from SRT / WebVTT / JSON, found by ASR or by voice activity (``vad.py``),
then validated, clamped to the video, merged down to ``max_utterances`` and assigned to frames.

A span is ``(start, end, text)`` in seconds on the clock of the frame timestamps (0 = the start of
the video stream). Hub-shipped with the processor: numpy only; transformers' ASR pipeline is
imported when asked for.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runtime import get_logger

logger = get_logger("processing.utterances")


class SpanError(ValueError):
    """Utterance spans that cannot be used; the message names the source and the span."""


@dataclass(frozen=True)
class Span:
    """One utterance: ``start`` and ``end`` in seconds, and its text (may be empty)."""

    start: float
    end: float
    text: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


# Bounds per subtitle input, far above any real file (a two-hour film has ~2,000 cues in ~150 KB), so that an
# upload cannot hold a worker: a 9 MB file of 200k cues once took minutes. Raise them on the module if needed.
MAX_SUBTITLE_BYTES = 8 * 1024 * 1024
MAX_CUES = 20_000
# A timing line is short; only its first characters are searched for the arrow, so a megabyte-long text line
# costs one bounded regex search instead of a backtracking one.
_TIMING_SEARCH_CHARS = 256

_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")
# The arrow as subtitle tools write it: "-->", and the "->" (or dash-like characters) some editors leave.
_ARROW = r"\s*[-\u2010-\u2015\u2212]{1,3}>\s*"
_CUE_TIMING = re.compile(rf"^\s*({_CLOCK.pattern}){_ARROW}({_CLOCK.pattern})")
_LOOKS_LIKE_TIMING = re.compile(rf"^\s*\S*\d\S*{_ARROW}")  # a token with a digit, then an arrow
_CUE_NUMBER = re.compile(r"^\s*\d+\s*$")


def _clock_to_seconds(text: str) -> float:
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    hours, minutes, seconds, fraction = match.groups()
    # Whole milliseconds first, one division last: 00:00:03,538 is 3.538 exactly as JSON writes it.
    millis = ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(fraction.ljust(3, "0"))
    return millis / 1000


def _parse_cues(text: str, source: str, kind: str) -> list[Span]:
    """Shared SRT/VTT cue parser: a timing line ``a --> b`` followed by text lines.

    A cue's text ends at a blank line, and also at the next timing line (or the cue number just before it),
    so cues written without the blank line between them stay apart. Every line that looks like a timing but
    does not parse is an error naming the line: a cue is never dropped silently.
    """
    spans: list[Span] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    def starts_cue(index: int) -> bool:
        if index >= len(lines):
            return False
        if looks_like_timing(lines[index]):
            return True
        return bool(_CUE_NUMBER.match(lines[index])) and index + 1 < len(lines) and looks_like_timing(lines[index + 1])

    def looks_like_timing(line: str) -> bool:
        return bool(_LOOKS_LIKE_TIMING.search(line[:_TIMING_SEARCH_CHARS]))

    i = 0
    while i < len(lines):
        line = lines[i]
        if looks_like_timing(line):
            match = _CUE_TIMING.match(line[:_TIMING_SEARCH_CHARS])
            if match is None:
                raise SpanError(
                    f"{source}: line {i + 1}: malformed {kind} cue timing {line.strip()!r} "
                    "(expected 'hh:mm:ss,mmm --> hh:mm:ss,mmm')"
                )
            start = _clock_to_seconds(match.group(1))
            end = _clock_to_seconds(match.group(6))
            words = []
            i += 1
            while i < len(lines) and lines[i].strip() and not starts_cue(i):
                words.append(re.sub(r"<[^>]+>", "", lines[i].strip()))  # drop VTT/SRT styling tags
                i += 1
            spans.append(Span(start, end, " ".join(words)))
            _check_cue_count(len(spans), source)
            continue
        i += 1
    return spans


def _check_cue_count(count: int, source: str) -> None:
    if count > MAX_CUES:
        raise SpanError(
            f"{source}: more than {MAX_CUES} subtitle cues; a video's subtitles have far fewer (split the file, or "
            "raise microemo.processing.utterances.MAX_CUES)"
        )


def _check_text_size(text: str, source: str) -> None:
    if len(text) > MAX_SUBTITLE_BYTES:
        raise SpanError(
            f"{source}: {len(text):,} characters of subtitles, over the {MAX_SUBTITLE_BYTES:,} limit (raise "
            "microemo.processing.utterances.MAX_SUBTITLE_BYTES for a longer file)"
        )


# A parser of our own rather than pysubs2: pysubs2 skips a malformed cue without a word, so an utterance would be
# lost silently; here a bad cue is an error that names the file and the line (bad-input policy, DESIGN 6).
def parse_srt(text: str, source: str = "<srt>") -> list[Span]:
    """Parse SubRip text; raises :class:`SpanError` naming ``source`` on malformed input.

    An empty file gives no spans and a warning (a clip without dialogue may have an empty subtitle file).
    """
    _check_text_size(text, source)
    spans = _parse_cues(text, source, "SRT")
    if not spans and text.strip():
        raise SpanError(f"{source}: no SRT cue found (expected lines like '00:00:01,000 --> 00:00:02,500')")
    if not spans:
        logger.warning("%s: the subtitle file is empty: no utterances from it", source)
    return spans


def parse_vtt(text: str, source: str = "<vtt>") -> list[Span]:
    """Parse WebVTT text; raises :class:`SpanError` naming ``source`` on malformed input."""
    if not text.lstrip("\ufeff").startswith("WEBVTT"):
        raise SpanError(f"{source}: a WebVTT file must start with 'WEBVTT'")
    _check_text_size(text, source)
    return _parse_cues(text, source, "WebVTT")


_SINGLE_BYTE = ["cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "iso8859_15", "iso8859_2", "koi8_r"]


def decode_text(data: bytes, source: str = "<text>") -> tuple[str, str]:
    """Decode a subtitle file's bytes; returns the text and the encoding used.

    A byte-order mark decides (UTF-8, UTF-16, UTF-32); else UTF-8 when the bytes are valid UTF-8; else the
    encoding charset-normalizer finds most plausible, where ties among single-byte encodings go to
    Windows-1252, the usual legacy encoding of Western subtitles (Latin-1 text decodes the same).
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                          (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return data.decode(encoding), encoding.replace("-sig", "")
    bomless = _utf16_without_bom(data)
    if bomless is not None:
        try:
            return data.decode(bomless), bomless
        except UnicodeDecodeError:
            raise SpanError(f"{source}: could not decode: it looks like {bomless.upper()} text but is not valid") from None
    if b"\x00" in data:
        # Text files hold no NUL bytes (they are valid UTF-8, which is how UTF-16 without a BOM used to read
        # as one line of garbage and "no cue found").
        raise SpanError(f"{source}: could not decode: it holds NUL bytes, so it is not a text file in a known encoding")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # inside try: transformers' remote-code import check skips it
        from_bytes = None
    if from_bytes is not None:
        # Non-ASCII bytes that never come two in a row are a single-byte code page (accented letters between
        # ASCII ones); on text this short the detector would otherwise also consider two-byte Asian encodings.
        high = np.frombuffer(data, dtype=np.uint8) >= 0x80
        isolated = not (high[1:] & high[:-1]).any()
        results = list(from_bytes(data, cp_isolation=_SINGLE_BYTE if isolated else None))
        if results:
            least = min(r.chaos for r in results)
            plausible = [r.encoding for r in results if r.chaos == least]
            encoding = "cp1252" if "cp1252" in plausible else plausible[0]
            return data.decode(encoding), encoding
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise SpanError(f"{source}: cannot tell the text encoding; save it as UTF-8") from None


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the bytes look like UTF-16 without a byte-order mark, else None.

    Text in a Latin, Cyrillic or Greek script written as UTF-16 has a zero byte in most code units (the high byte
    of every ASCII character): at even offsets for big-endian, odd ones for little-endian.
    """
    sample = np.frombuffer(data[: 1 << 16][: len(data[: 1 << 16]) // 2 * 2], dtype=np.uint8)
    if sample.size < 4:
        return None
    even_zero, odd_zero = (sample[0::2] == 0).mean(), (sample[1::2] == 0).mean()
    if odd_zero > 0.3 and even_zero < 0.05:
        return "utf-16-le"
    if even_zero > 0.3 and odd_zero < 0.05:
        return "utf-16-be"
    return None


def _seconds(value: object, what: str, index: int, item: object, source: str) -> float:
    """A JSON time in seconds: a number (not a boolean, which Python would read as 0 or 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpanError(
            f"{source}: item {index}: start/end must be numbers (seconds), got {what}={value!r:.40} "
            f"({type(value).__name__}) in {item!r:.80}"
        )
    return float(value)


def _span_text(value: object, index: int, source: str) -> str:
    """A span's text: a string, or null/absent for none; anything else would reach the prompt as a Python repr."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpanError(f"{source}: item {index}: 'text' must be a string, got {type(value).__name__} {value!r:.60}")
    return value


def parse_json_spans(data: str | Sequence, source: str = "<json>") -> list[Span]:
    """Parse a JSON list of ``{"start": s, "end": s, "text": "..."}`` (text optional)."""
    if isinstance(data, str):
        _check_text_size(data, source)
        try:
            data = json.loads(data)
        except json.JSONDecodeError as error:
            raise SpanError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
        except RecursionError:
            raise SpanError(f"{source}: JSON nested too deeply to read; expected a list of {{start, end, text}} objects") from None
    if isinstance(data, dict) and "utterances" in data:
        data = data["utterances"]
    if not isinstance(data, list):
        raise SpanError(f"{source}: expected a JSON list of {{start, end, text}} objects, got {type(data).__name__}")
    _check_cue_count(len(data), source)
    spans = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise SpanError(f"{source}: item {i} must be an object with 'start' and 'end' (seconds), got {item!r:.80}")
        start = _seconds(item["start"], "start", i, item, source)
        end = _seconds(item["end"], "end", i, item, source)
        spans.append(Span(start, end, _span_text(item.get("text"), i, source)))
    return spans


def load_spans(path: str | os.PathLike) -> list[Span]:
    """Read spans from an ``.srt``, ``.vtt`` or ``.json`` file (chosen by extension), in any common encoding."""
    if isinstance(path, str) and not path.strip():
        raise SpanError(
            "utterances: an empty path; give a subtitle file (.srt, .vtt, .json), a list of (start, end[, text]) "
            "spans, [] for none, or None to find them in the audio"
        )
    if isinstance(path, str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
        raise SpanError(f"{path}: utterance files are read from disk, not from URLs; download it and give its path")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise SpanError(f"{path}: is a directory, expected a subtitle file (.srt, .vtt or .json)")
    suffix = path.suffix.lower()
    if suffix not in (".srt", ".vtt", ".json"):
        raise SpanError(f"{path}: unknown utterance file type {suffix!r} (use .srt, .vtt or .json)")
    size = path.stat().st_size
    if size > MAX_SUBTITLE_BYTES:
        raise SpanError(
            f"{path}: {size:,} bytes, over the {MAX_SUBTITLE_BYTES:,}-byte limit for a subtitle file (raise "
            "microemo.processing.utterances.MAX_SUBTITLE_BYTES for a longer one)"
        )
    text, encoding = decode_text(path.read_bytes(), str(path))
    if encoding not in ("utf-8", "ascii"):
        logger.info("%s: read as %s", path, encoding)
    if suffix == ".srt":
        return parse_srt(text, str(path))
    if suffix == ".vtt":
        return parse_vtt(text, str(path))
    return parse_json_spans(text, str(path))


def as_spans(items: Iterable, source: str = "<spans>") -> list[Span]:
    """Accept Span objects, (start, end[, text]) tuples or {start, end, text} dicts."""
    if isinstance(items, (str, bytes, os.PathLike)) or not isinstance(items, Iterable) or isinstance(items, dict):
        raise SpanError(
            f"{source}: expected a subtitle file path or a list of spans ((start, end[, text]), Span or "
            f"{{start, end, text}}), [] for none, or None to find them; got {type(items).__name__} {items!r:.60}"
        )
    items = list(items)
    _check_cue_count(len(items), source)
    spans = []
    for i, item in enumerate(items):
        if isinstance(item, Span):
            spans.append(item)
        elif isinstance(item, dict):
            spans.extend(parse_json_spans([item], f"{source}[{i}]"))
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            start = _seconds(item[0], "start", i, item, source)
            end = _seconds(item[1], "end", i, item, source)
            spans.append(Span(start, end, _span_text(item[2], i, source) if len(item) == 3 else ""))
        else:
            raise SpanError(f"{source}: item {i} is not a span (start, end[, text]): {item!r}")
    return spans


def validate_spans(spans: Sequence[Span], duration: float | None, source: str = "<spans>") -> list[Span]:
    """Check and clamp spans to ``[0, duration]``; return them sorted by start.

    - ``end < start`` or a non-finite time: :class:`SpanError`.
    - A span that starts at or after the end of the video: :class:`SpanError` (it cannot be
      assigned any frame; usually the subtitles belong to another video or are in ms).
    - A span that runs past the end (or starts before 0): clamped, with a warning.
    """
    cleaned = []
    for i, span in enumerate(spans):
        if not (np.isfinite(span.start) and np.isfinite(span.end)):
            raise SpanError(f"{source}: utterance {i} has a non-finite time ({span.start}, {span.end})")
        if span.end < span.start:
            raise SpanError(
                f"{source}: utterance {i} ends ({span.end:.3f} s) before it starts ({span.start:.3f} s)"
            )
        start, end = span.start, span.end
        if duration is not None:
            if start >= duration:
                raise SpanError(
                    f"{source}: utterance {i} starts at {start:.3f} s, at or after the end of the video "
                    f"({duration:.3f} s)"
                )
            if end > duration or start < 0:
                logger.warning(
                    "%s: utterance %d (%.3f-%.3f s) clamped to the video (0-%.3f s)", source, i, start, end, duration
                )
                start, end = max(start, 0.0), min(end, duration)
        elif start < 0:
            raise SpanError(f"{source}: utterance {i} starts before 0 ({start:.3f} s)")
        cleaned.append(Span(start, end, span.text))
    return sorted(cleaned, key=lambda s: (s.start, s.end))


def merge_spans(spans: Sequence[Span], max_utterances: int) -> list[Span]:
    """Merge neighbours until at most ``max_utterances`` remain, always joining the pair with the
    smallest gap (so the longest silences, the likeliest turn boundaries, survive)."""
    if max_utterances < 0:
        raise ValueError(f"max_utterances must be >= 0, got {max_utterances}")
    if max_utterances == 0:
        return []
    if len(spans) <= max_utterances:
        return list(spans)
    # Groups of neighbouring spans in a linked list, and a heap of the gaps between neighbours with lazy deletion:
    # O(n log n) instead of rescanning every gap after each merge. A group is always a run of consecutive input
    # spans, so its text is joined once at the end. Ties go to the leftmost gap, as a left-to-right scan would.
    count = len(spans)
    start = [span.start for span in spans]
    end = [span.end for span in spans]
    following = list(range(1, count)) + [-1]  # group heads: the next group's first index
    alive = [True] * count
    heap = [(spans[i + 1].start - spans[i].end, i, i + 1) for i in range(count - 1)]
    heapq.heapify(heap)
    groups = count
    while groups > max_utterances:
        gap, left, right = heapq.heappop(heap)
        if not (alive[left] and alive[right] and following[left] == right and start[right] - end[left] == gap):
            continue  # a stale entry: one side was merged since
        end[left] = max(end[left], end[right])
        alive[right] = False
        following[left] = following[right]
        if following[left] >= 0:
            heapq.heappush(heap, (start[following[left]] - end[left], left, following[left]))
        groups -= 1
    merged = []
    head = 0
    while head >= 0:
        stop = following[head] if following[head] >= 0 else count
        text = " ".join(span.text for span in spans[head:stop] if span.text)
        merged.append(Span(start[head], end[head], text))
        head = following[head]
    return merged


def assign_frames(spans: Sequence[Span], timestamps: np.ndarray) -> np.ndarray:
    """[U, T] bool: frame t belongs to utterance u when its timestamp lies in [start, end].

    An utterance that contains no sampled frame (shorter than the frame spacing) gets the frame
    nearest to its middle, so every utterance has at least one frame.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    mask = np.zeros((len(spans), timestamps.size), dtype=bool)
    if timestamps.size == 0:
        return mask
    for u, span in enumerate(spans):
        inside = (timestamps >= span.start) & (timestamps <= span.end)
        if not inside.any():
            inside[int(np.argmin(np.abs(timestamps - (span.start + span.end) / 2)))] = True
        mask[u] = inside
    return mask


def detect_speech(
    waveform: np.ndarray, sampling_rate: int = 16_000, detector: str = "silero", **options: float
) -> list[Span]:
    """Voice-activity spans of a mono waveform: silero-vad by default (the energy VAD where silero-vad
    is not installed), ``detector="energy"`` for the dependency-free one. ``options`` tune the
    post-processing (``threshold``, ``min_speech``, ``min_silence``, ``pad``, ...); see
    :func:`vad.voice_activity`, which also says which detector ran.
    """
    from .vad import voice_activity

    return voice_activity(waveform, sampling_rate, detector, **options).spans


def spans_from_asr_output(output: dict, duration: float | None = None, min_silence: float = 0.5) -> list[Span]:
    """Spans from a transformers ASR pipeline's output with ``return_timestamps``.

    Chunk timestamps (``return_timestamps=True``) give one span per chunk; word timestamps
    (``"word"``) are grouped into utterances at pauses of ``min_silence`` or more. An open end
    (``None``, the last chunk of some models) becomes ``duration``.
    """
    chunks = output.get("chunks") if isinstance(output, dict) else None
    if not chunks:
        return []
    words = all(len(str(c.get("text", "")).split()) <= 1 for c in chunks) and len(chunks) > 1
    spans: list[Span] = []
    for chunk in chunks:
        start, end = chunk.get("timestamp", (None, None))
        if start is None:
            continue
        if end is None:
            end = duration if duration is not None else start
        text = str(chunk.get("text", "")).strip()
        if words and spans and start - spans[-1].end < min_silence:
            last = spans[-1]
            spans[-1] = Span(last.start, float(end), f"{last.text} {text}".strip())
        else:
            spans.append(Span(float(start), float(end), text))
    return spans


def transcribe(waveform: np.ndarray, model: str, sampling_rate: int = 16_000, device: str | int | None = None) -> list[Span]:
    """Utterance spans from a transformers ASR model (e.g. an openai/whisper checkpoint) with timestamps.

    The model is loaded from ``model`` (a Hub id or a local folder) the first time; nothing is
    downloaded unless the user names a Hub id.
    """
    from .asr import transcribe as run_asr  # checks that the model is an ASR model; one pipeline per process

    return run_asr(waveform, model, sampling_rate, device)
