"""The judge's two prompts: the built-in wording, a user's own from a file, and the hash of each set.

The protocol fixes what the judge is given and what it must answer, not the sentences it is asked
in: a grouping prompt gives a list of emotion words and asks for groups of words that mean the
same (a list of lists); an extraction prompt gives a free-form explanation and asks for the
clearly identifiable emotion categories of the main character (a list, possibly empty). The
built-in templates below are this project's own wording of that protocol. A user who wants other
wording (for example the original one, copied from their own MERTools checkout) supplies a JSON or
YAML file with both templates; see :func:`load_prompts`.

A template holds its placeholder, ``{labels}`` or ``{description}``, exactly once, and nothing is
formatted but that placeholder, so templates may hold other braces. The judge's answers, and so
the scores, depend on the wording: every report records the set's hash and where it came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "GROUPING_PROMPT",
    "EXTRACTION_PROMPT",
    "PLACEHOLDERS",
    "BUILT_IN",
    "BUILT_IN_PROMPTS",
    "PROMPTS_SHA256",
    "PromptSet",
    "PromptFileError",
    "load_prompts",
    "resolve_prompts",
    "grouping_prompt",
    "extraction_prompt",
]

#: The placeholder each template must hold exactly once.
PLACEHOLDERS = {"grouping": "{labels}", "extraction": "{description}"}
#: The ``source`` of the built-in set, as written in reports.
BUILT_IN = "built-in"
_IN_MEMORY = "in-memory"

# The examples avoid the words of `testing.SYNONYMS`, so that the scripted judge's answers (and
# the tests that look for a word in a prompt) see only the sample's own labels.
GROUPING_PROMPT = (
    "You are a specialist in how people name their feelings, helping to score an emotion-recognition "
    "benchmark.\n"
    "Sort the emotion words below into groups, so that all words in one group name the same emotion. "
    "A word that means the same as no other word forms a group by itself.\n"
    "Answer only with the groups, written as a list of lists.\n"
    "Example words: ['afraid', 'bored', 'frightened', 'grateful', 'scared', 'thankful']\n"
    "Example answer: [['afraid', 'frightened', 'scared'], ['bored'], ['grateful', 'thankful']]\n"
    "Words: {labels}\n"
    "Answer:"
)

EXTRACTION_PROMPT = (
    "You are a specialist in human emotions. The text below describes what can be seen and heard in a "
    "video clip and what it may say about how the people in it feel.\n"
    "Name the emotional state of the main character. Give only the emotion categories that the text makes "
    "clearly identifiable, separated by commas inside square brackets. If none can be clearly "
    "identified, answer with an empty list: [].\n"
    "Example text: She laughs, thanks everyone twice and says the prize means a lot to her; she is "
    "delighted and proud.\n"
    "Example answer: [delighted, proud]\n"
    "Example text: The speaker's face is out of frame and the subtitle is cut off.\n"
    "Example answer: []\n"
    "Text: {description}\n"
    "Answer:"
)

_PLACEHOLDER_LIKE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


class PromptFileError(ValueError):
    """A judge prompts file (or prompt set) that cannot be used; the message names the file and key."""


def _origin(source: str) -> str:
    return f"{source} judge prompts" if source in (BUILT_IN, _IN_MEMORY) else f"judge prompts file {source}"


def _check_template(kind: str, template: Any, source: str) -> None:
    """Raise :class:`PromptFileError` unless ``template`` is a string holding its placeholder once."""
    placeholder = PLACEHOLDERS[kind]
    where = f"{_origin(source)}: key {kind!r}"
    if not isinstance(template, str):
        raise PromptFileError(
            f"{where}: got {type(template).__name__} {template!r}; expected a string template holding {placeholder}"
        )
    count = template.count(placeholder)
    if count != 1:
        found = f"does not hold the placeholder {placeholder}" if count == 0 else f"holds {placeholder} {count} times"
        raise PromptFileError(f"{where}: the template {found}; expected {placeholder} exactly once")
    strays = sorted({token for token in _PLACEHOLDER_LIKE.findall(template) if token != placeholder})
    if strays:
        raise PromptFileError(
            f"{where}: unknown placeholder(s) {', '.join(strays)}; expected only {placeholder} in the {kind} template"
        )


@dataclass(frozen=True)
class PromptSet:
    """The grouping and extraction templates, validated, and where they came from.

    Attributes:
        grouping: holds ``{labels}`` once; it is replaced by the sorted union of a sample's labels,
            written as a Python list (``['angry', 'happy']``).
        extraction: holds ``{description}`` once; it is replaced by the explanation as given.
        source: ``"built-in"``, the path of the file the set was read from, or ``"in-memory"``.
    """

    grouping: str
    extraction: str
    source: str = _IN_MEMORY

    def __post_init__(self) -> None:
        _check_template("grouping", self.grouping, self.source)
        _check_template("extraction", self.extraction, self.source)

    @property
    def sha256(self) -> str:
        """The hash of the two templates (not of ``source``): equal wording gives an equal hash."""
        text = json.dumps({"grouping": self.grouping, "extraction": self.extraction}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def grouping_prompt(self, labels: Sequence[str]) -> str:
        """The grouping prompt for the union of a sample's labels, given in a fixed (sorted) order.

        MERTools passed `list(set(gt) | set(pred))`, whose order changes with Python's string hashing
        from run to run; sorting makes the prompt, and so the cache key, reproducible.
        """
        return self.grouping.replace(PLACEHOLDERS["grouping"], str(sorted(labels)))

    def extraction_prompt(self, description: str) -> str:
        """The prompt that turns a free-form emotion explanation into an open-set label list."""
        return self.extraction.replace(PLACEHOLDERS["extraction"], description)

    def to_dict(self) -> dict[str, str]:
        """The two templates, as written into reports and prompts files."""
        return {"grouping": self.grouping, "extraction": self.extraction}


BUILT_IN_PROMPTS = PromptSet(GROUPING_PROMPT, EXTRACTION_PROMPT, source=BUILT_IN)
#: The hash of the built-in set, as recorded in reports (``prompts_sha256``).
PROMPTS_SHA256 = BUILT_IN_PROMPTS.sha256


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"key {twice[0]!r} is written twice")
    return dict(pairs)


def _read_prompts_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise PromptFileError(f"judge prompts file {path}: unknown suffix {path.suffix!r}; expected .json, .yaml or .yml")
    text = path.read_text(encoding="utf-8")
    expected = "expected a mapping with the keys 'grouping' and 'extraction'"
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as error:
            raise PromptFileError(
                f"judge prompts file {path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                f"{expected}"
            ) from None
        except ValueError as error:
            raise PromptFileError(f"judge prompts file {path}: {error}; {expected}, each once") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PromptFileError(f"judge prompts file {path}: not valid YAML ({problem}{at}); {expected}") from None


def load_prompts(path: str | Path) -> PromptSet:
    """Read and validate a judge prompts file (``.json``, ``.yaml`` or ``.yml``).

    The file is a mapping with exactly two keys, each a string template::

        grouping: "... {labels} ..."          # the union of a sample's labels, e.g. ['angry', 'happy']
        extraction: "... {description} ..."   # one free-form explanation

    Each placeholder must appear exactly once in its own template, and no other key or ``{name}``
    placeholder is allowed. The text is used as written (in YAML, ``|-`` keeps a block without a
    final newline). Raises :class:`PromptFileError` naming the file, the key and the rule broken.
    """
    path = Path(path)
    if path.is_dir():
        raise PromptFileError(f"judge prompts file {path}: is a folder; expected a .json or .yaml file")
    if not path.is_file():
        raise FileNotFoundError(f"judge prompts file {path}: no such file; expected a .json or .yaml file")
    data = _read_prompts_file(path)
    if not isinstance(data, dict):
        raise PromptFileError(
            f"judge prompts file {path}: got a {type(data).__name__}; "
            "expected a mapping with the keys 'grouping' and 'extraction'"
        )
    unknown = [key for key in data if key not in PLACEHOLDERS]
    if unknown:
        raise PromptFileError(
            f"judge prompts file {path}: unknown key {unknown[0]!r}; expected only 'grouping' and 'extraction'"
        )
    for kind, placeholder in PLACEHOLDERS.items():
        if kind not in data:
            raise PromptFileError(
                f"judge prompts file {path}: key {kind!r} is missing; expected the {kind} template, holding {placeholder}"
            )
    return PromptSet(grouping=data["grouping"], extraction=data["extraction"], source=str(path))


def resolve_prompts(prompts: PromptSet | str | Path | None) -> PromptSet:
    """The prompt set for ``None`` (built-in), a :class:`PromptSet`, or the path of a prompts file."""
    if prompts is None:
        return BUILT_IN_PROMPTS
    if isinstance(prompts, PromptSet):
        return prompts
    if isinstance(prompts, (str, Path)):
        return load_prompts(prompts)
    raise TypeError(
        f"judge_prompts: got {type(prompts).__name__}; expected None (built-in), a PromptSet or a prompts file path"
    )


def grouping_prompt(labels: Sequence[str], prompts: PromptSet = BUILT_IN_PROMPTS) -> str:
    """The grouping prompt of ``prompts`` (built-in by default) for a sample's labels."""
    return prompts.grouping_prompt(labels)


def extraction_prompt(description: str, prompts: PromptSet = BUILT_IN_PROMPTS) -> str:
    """The extraction prompt of ``prompts`` (built-in by default) for one explanation."""
    return prompts.extraction_prompt(description)
