"""The two judge prompts of the EMER protocol, and a hash that identifies them in every report.

Both texts are the protocol's own, character for character, because the judge's answers (and so
the scores) depend on them: the synonym-grouping prompt of MERTools' MER2024 `get_openset_synonym`
and the English "reason to open-set labels" prompt of MER2025 `get_reason_to_openset`. The
original concatenated the lines of the second one without spaces ("...empty list.Input: ..."); we
keep that, since a changed prompt is a changed metric.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

__all__ = [
    "GROUPING_PROMPT",
    "EXTRACTION_PROMPT",
    "PROMPTS_SHA256",
    "grouping_prompt",
    "extraction_prompt",
]

GROUPING_PROMPT = (
    "Please assume the role of an expert in the field of emotions. We provide a set of emotions. "
    "Please group the emotions, with each group containing emotions with the same meaning. "
    "Directly output the results. The output format should be a list containing multiple lists. "
    "Input: ['Agree', 'agreement', 'Relaxed', 'acceptance', 'pleasant', 'relaxed', 'Accept', 'positive', "
    "'Happy'] Output: [['Agree', 'agreement', 'Accept', 'acceptance'], ['Relaxed', 'relaxed'],"
    "['pleasant', 'positive', 'Happy']] Input: {labels} Output:"
)

EXTRACTION_PROMPT = (
    "Please assume the role of an expert in the field of emotions. "
    "We provide clues that may be related to the emotions of the characters. Based on the provided clues, "
    "please identify the emotional states of the main characters. "
    "Please separate different emotional categories with commas and output only the clearly identifiable "
    "emotional categories in a list format. "
    "If none are identified, please output an empty list."
    "Input: We cannot recognize his emotional state; Output: []"
    "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry]"
    "Input: {description}; Output: "
)

PROMPTS_SHA256 = hashlib.sha256(
    json.dumps({"grouping": GROUPING_PROMPT, "extraction": EXTRACTION_PROMPT}, sort_keys=True).encode("utf-8")
).hexdigest()


def grouping_prompt(labels: Sequence[str]) -> str:
    """The grouping prompt for the union of a sample's labels, given in a fixed (sorted) order.

    MERTools passed `list(set(gt) | set(pred))`, whose order changes with Python's string hashing
    from run to run; sorting makes the prompt, and so the cache key, reproducible.
    """
    return GROUPING_PROMPT.format(labels=str(sorted(labels)))


def extraction_prompt(description: str) -> str:
    """The prompt that turns a free-form emotion explanation into an open-set label list."""
    return EXTRACTION_PROMPT.format(description=description)
