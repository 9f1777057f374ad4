"""Emotion label lists: parsing, normalisation, synonym groupings and a small lemmatiser.

EMER stores open-vocabulary labels as Python-list strings (``"['excited', 'joyful']"``); LLMs
also answer ``[excited, joyful]`` without quotes. MERTools has two parsers that disagree on the
second form (MER2024 splits on quotes only, so ``"[happy, sad]"`` is one label; MER2025 also
splits on commas). :func:`parse_label_list` accepts both and agrees with both on quoted lists.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

__all__ = [
    "LabelListError",
    "LabelParsing",
    "GroupingParseError",
    "parse_label_list",
    "normalize_labels",
    "parse_groupings",
    "synonym_map",
    "lemmatize",
    "lemma_key",
]


LabelParsing = Literal["lenient", "mer2024"]


class LabelListError(ValueError):
    """A label list could not be read (wrong type, or a string that is not a list)."""


class GroupingParseError(ValueError):
    """A judge reply (or a saved grouping) is not a list of lists of emotion words."""


_QUOTE_OR_COMMA = re.compile(r"['\",]")


def _split_items(body: str) -> list[str]:
    """Split the inside of one list: quoted items keep commas inside them; bare items split on commas."""
    items: list[str] = []
    # Quoted items first: `'a, b'` is one label. What lies between quoted items is split on commas,
    # which is exactly what both MERTools parsers do for the forms they each accept.
    pos = 0
    for match in re.finditer(r"'([^']*)'|\"([^\"]*)\"", body):
        items.extend(_bare_items(body[pos : match.start()]))
        items.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
    items.extend(_bare_items(body[pos:]))
    return [item.strip() for item in items if item.strip()]


def _bare_items(text: str) -> list[str]:
    return [part for part in _QUOTE_OR_COMMA.split(text) if part.strip()]


def parse_label_list(value: Any, *, what: str = "label list", style: LabelParsing = "lenient") -> list[str]:
    """Read one label list from a list/tuple/array of strings or a list string.

    Accepts ``['a', 'b']``, ``["a", "b"]``, ``[a, b]``, ``a, b`` and ``[]``; an empty string, ``None``
    or NaN (an empty CSV cell) is an empty list. Items are stripped; empty items are dropped.
    Raises :class:`LabelListError` naming ``what`` for anything else (numbers, dicts, nested lists).

    ``style="mer2024"`` reads strings exactly as MERTools' MER2024 scorer did: the text between the
    first ``[`` and the next ``]``, split on quote characters only. That parser splits a label
    holding an apostrophe (``"don't believe"`` gives ``don`` and ``t believe``) and the published
    MER2024 groupings were made from such split labels, so recomputing the published numbers
    from that archive needs this style; use the default everywhere else.
    """
    if style not in ("lenient", "mer2024"):
        raise ValueError(f"label parsing style: got {style!r}; expected 'lenient' or 'mer2024'")
    if style == "mer2024" and isinstance(value, str) and value.strip():
        if "[" not in value:
            raise LabelListError(f"{what}: {value!r} has no '['; the mer2024 style expects a list string")
        body = value.split("[", 1)[1].split("]", 1)[0]
        return [item.strip() for item in re.split(r"['\"]", body) if item.strip() not in ("", ",")]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        labels = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise LabelListError(
                    f"{what}: item {index} is {type(item).__name__} {item!r}; expected a string emotion label"
                )
            if item.strip():
                labels.append(item.strip())
        return labels
    if not isinstance(value, str):
        raise LabelListError(
            f"{what}: got {type(value).__name__} {value!r}; expected a list of strings or a list string "
            "such as \"['happy', 'relaxed']\""
        )
    text = value.strip()
    if not text:
        return []
    if text.startswith("[") != text.endswith("]"):
        raise LabelListError(f"{what}: unbalanced brackets in {value!r}; expected a list such as ['happy', 'sad']")
    if text.startswith("["):
        text = text[1:-1]
    if "[" in text or "]" in text:
        raise LabelListError(f"{what}: {value!r} is a nested list; expected a flat list of emotion labels")
    if text.lstrip().startswith("{"):
        raise LabelListError(f"{what}: {value!r} is not a list; expected a list of emotion labels")
    return _split_items(text)


def normalize_labels(labels: Iterable[str]) -> list[str]:
    """Lower-case, strip and de-duplicate labels, keeping first-seen order (protocol step 1)."""
    seen: dict[str, None] = {}
    for label in labels:
        key = " ".join(label.lower().split())
        if key:
            seen.setdefault(key, None)
    return list(seen)


# Bounds on one grouping: a sample's labels number in the tens, so a reply past these is junk, and keeping it
# would bloat the report (a 200k-label reply once wrote 171 MB and used 1.6 GB of memory).
MAX_GROUPING_CHARS = 100_000
MAX_GROUPING_WORDS = 2_000
# A list of bracketed groups of unquoted words, and nothing else at the top level.
_UNQUOTED_GROUPS = re.compile(r"\[\s*(?:\[[^\[\]]*\]\s*,?\s*)*\]")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def parse_groupings(reply: Any, *, what: str = "grouping") -> list[list[str]]:
    """Read a judge's grouping (a list of lists of words) from a reply string or a nested list.

    Accepts Python/JSON literals (``[['a', 'b'], ['c']]``), unquoted words (``[[a, b], [c]]``),
    text around the outermost brackets (``Output: [...]``) and code fences. A flat list is one
    group, as in MERTools. Raises :class:`GroupingParseError` when no list can be read.
    """
    if hasattr(reply, "tolist") and not isinstance(reply, str):  # a MERTools .npy holds a 0-d str array
        reply = reply.tolist()
    if isinstance(reply, (list, tuple)):
        return _groups_from_object(reply, what=what, source=reply)
    if not isinstance(reply, str):
        raise GroupingParseError(
            f"{what}: got {type(reply).__name__}; expected a list of lists of emotion words or its string form"
        )
    if len(reply) > MAX_GROUPING_CHARS:
        raise GroupingParseError(
            f"{what}: a reply of {len(reply):,} characters, over {MAX_GROUPING_CHARS:,}; expected a short list of lists"
        )
    text = _FENCE.sub("", reply.strip())
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        raise GroupingParseError(
            f"{what}: no list in {_shorten(reply)!r}; expected a list of lists such as [['happy', 'joyful'], ['sad']]"
        )
    body = text[start : end + 1]
    try:
        obj = ast.literal_eval(body)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        obj = None
    if obj is None:  # JSON spellings (null, true) that Python's literals lack
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            obj = None
    if isinstance(obj, (list, tuple)):
        return _groups_from_object(obj, what=what, source=reply)
    # Unquoted words: take every innermost [...] as one group.
    if body.count("[") != body.count("]"):
        raise GroupingParseError(f"{what}: unbalanced brackets in {_shorten(reply)!r}; expected a list of lists")
    if "[" in body[1:-1] and not _UNQUOTED_GROUPS.fullmatch(body):
        raise GroupingParseError(
            f"{what}: {_shorten(reply)!r} holds more than groups of words (other values or deeper lists); expected a "
            "list of lists such as [['happy', 'joyful'], ['sad']]"
        )
    inner = re.findall(r"\[([^\[\]]*)\]", body)
    groups = [items for items in (_split_items(chunk) for chunk in inner) if items]
    if not groups:
        raise GroupingParseError(f"{what}: no emotion words in {_shorten(reply)!r}; expected a list of lists")
    _check_size(groups, what)
    return groups


def _groups_from_object(obj: Sequence[Any], *, what: str, source: Any) -> list[list[str]]:
    if all(isinstance(item, str) for item in obj):
        groups = [[item.strip() for item in obj if item.strip()]]
    elif all(isinstance(item, (list, tuple)) for item in obj):
        groups = []
        for group in obj:
            if not all(isinstance(word, str) for word in group):
                raise GroupingParseError(
                    f"{what}: group {group!r} in {_shorten(source)!r} holds a non-string; expected emotion words"
                )
            words = [word.strip() for word in group if word.strip()]
            if words:
                groups.append(words)
    else:
        raise GroupingParseError(
            f"{what}: {_shorten(source)!r} mixes words and lists at the top level; expected a list of lists"
        )
    if not any(groups):
        raise GroupingParseError(f"{what}: {_shorten(source)!r} holds no emotion words; expected a list of lists")
    _check_size(groups, what)
    return [group for group in groups if group]


def _check_size(groups: Sequence[Sequence[str]], what: str) -> None:
    words = sum(len(group) for group in groups)
    if words > MAX_GROUPING_WORDS:
        raise GroupingParseError(f"{what}: {words:,} words, over {MAX_GROUPING_WORDS:,}; a sample's grouping holds "
                                 "its own few labels")  # fmt: skip


def synonym_map(groups: Sequence[Sequence[str]]) -> dict[str, str]:
    """Map every (lower-cased) word to the first word of its group (protocol step 3).

    As in MERTools, a word that appears in two groups keeps the head of the later group.
    Words are lower-cased so that a judge that capitalises still matches the lower-cased labels;
    on judges that answer in lower case (all of MERTools' archive) this equals the original.
    """
    mapping: dict[str, str] = {}
    for group in groups:
        head = " ".join(group[0].lower().split())
        for word in group:
            mapping[" ".join(word.lower().split())] = head
    return mapping


def _shorten(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# A rule-based English lemmatiser for emotion labels. It needs no downloaded data. It folds the
# inflections that separate otherwise identical labels (plural -s/-es/-ies, -ed/-ied, -ing) and a
# silent final e, so "excite", "excited" and "exciting" share the key "excit". Derivations are kept
# apart on purpose ("happiness" is not "happy"): relating those is the lexicon's job.
_VOWELS = set("aeiouy")
_KEEP_S = ("ss", "us", "is", "ous")
_ES_AFTER = ("sh", "ch", "x", "z", "ss")
_NO_UNDOUBLE = ("ll", "ss", "zz", "ff")


def _has_vowel(stem: str) -> bool:
    return any(char in _VOWELS for char in stem)


def lemmatize(word: str) -> str:
    """Return the matching key of one lower-case word (see the comment above for the rules)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    stem = word
    # Plural / third person first, then verb endings of what is left ("feelings" -> "feeling" -> "feel").
    if stem.endswith("ies") and len(stem) > 4:
        stem = stem[:-3] + "y"
    elif stem.endswith("es") and stem[:-2].endswith(_ES_AFTER):
        stem = stem[:-2]
    elif stem.endswith("s") and not stem.endswith(_KEEP_S):
        stem = stem[:-1]
    if stem.endswith("ied") and len(stem) > 4:
        stem = stem[:-3] + "y"
    elif stem.endswith("eed") and len(stem) > 5:  # "agreed" -> "agree", but "need" stays
        stem = stem[:-1]
    elif stem.endswith("ed") and len(stem) > 4 and _has_vowel(stem[:-2]) and not stem.endswith("eed"):
        stem = _undouble(stem[:-2])
    elif stem.endswith("ing") and len(stem) > 5 and _has_vowel(stem[:-3]):
        stem = _undouble(stem[:-3])
    if stem.endswith("e") and len(stem) > 3:
        stem = stem[:-1]
    return stem


def _undouble(stem: str) -> str:
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS and not stem.endswith(_NO_UNDOUBLE):
        return stem[:-1]
    return stem


def lemma_key(label: str) -> str:
    """Lemmatise every alphabetic part of a (multi-word, hyphenated) label."""
    return re.sub(r"[a-z]+", lambda match: lemmatize(match.group(0)), " ".join(label.lower().split()))
