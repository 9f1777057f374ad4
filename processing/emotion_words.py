"""Emotion labels read out of a generated explanation without a judge LLM.

EMER scores open-vocabulary labels, and the paper pulls them out of the model's explanation with a judge
LLM. Offline, and for a quick look, this module finds the emotion words an explanation uses: a fixed
vocabulary of emotion adjectives and nouns (written for this project), each mapped to one adjective
label, skipping words that a negation in the few words before cancels ("not angry"). It is a
convenience, not the paper's metric: for scores comparable with Table 1 use the judge
(``microemo predict --judge-model ...`` or ``microemo evaluate``).

Hub-shipped with the processor: standard library only.
"""

from __future__ import annotations

import re

# label -> the word forms that name it (the label itself included).
_FORMS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "happiness", "happily", "glad"),
    "joyful": ("joyful", "joy", "joyous", "cheerful"),
    "excited": ("excited", "excitement", "exciting", "thrilled", "enthusiastic", "enthusiasm"),
    "content": ("content", "contented", "contentment"),
    "satisfied": ("satisfied", "satisfaction"),
    "pleased": ("pleased", "pleasure", "delighted", "delight"),
    "amused": ("amused", "amusement", "playful"),
    "relieved": ("relieved", "relief"),
    "relaxed": ("relaxed", "relaxation", "at ease"),
    "calm": ("calm", "calmness", "composed", "peaceful", "serene"),
    "grateful": ("grateful", "gratitude", "thankful"),
    "proud": ("proud", "pride"),
    "hopeful": ("hopeful", "optimistic", "optimism"),
    "loving": ("loving", "affectionate", "affection", "tender", "tenderness"),
    "confident": ("confident", "confidence", "determined", "determination"),
    "curious": ("curious", "curiosity"),
    "surprised": ("surprised", "surprise", "astonished", "astonishment", "amazed", "amazement"),
    "shocked": ("shocked", "shock", "stunned"),
    "neutral": ("neutral", "indifferent", "indifference"),
    "sad": ("sad", "sadness", "unhappy", "unhappiness", "sorrow", "sorrowful", "grief", "grieving", "melancholy"),
    "disappointed": ("disappointed", "disappointment", "let down"),
    "lonely": ("lonely", "loneliness"),
    "hurt": ("hurt", "heartbroken"),
    "depressed": ("depressed", "depression", "hopeless", "hopelessness", "despair"),
    "tired": ("tired", "exhausted", "exhaustion", "weary", "fatigue", "fatigued"),
    "bored": ("bored", "boredom"),
    "angry": ("angry", "anger", "angrily", "furious", "fury", "rage", "enraged", "mad"),
    "annoyed": ("annoyed", "annoyance", "irritated", "irritation", "irritable"),
    "frustrated": ("frustrated", "frustration"),
    "resentful": ("resentful", "resentment", "bitter", "bitterness"),
    "disgusted": ("disgusted", "disgust", "revulsion"),
    "contemptuous": ("contemptuous", "contempt", "disdain", "scornful", "scorn"),
    "fearful": ("fearful", "fear", "afraid", "scared", "frightened", "terrified", "terror"),
    "anxious": ("anxious", "anxiety", "uneasy", "unease", "apprehensive", "apprehension"),
    "worried": ("worried", "worry", "concerned"),
    "nervous": ("nervous", "nervousness", "tense", "stressed"),
    "confused": ("confused", "confusion", "puzzled", "perplexed", "bewildered"),
    "embarrassed": ("embarrassed", "embarrassment", "awkward", "awkwardness"),
    "ashamed": ("ashamed", "shame"),
    "guilty": ("guilty", "guilt", "remorse", "remorseful", "regret", "regretful"),
    "jealous": ("jealous", "jealousy", "envious", "envy"),
    "helpless": ("helpless", "helplessness", "powerless"),
    "doubtful": ("doubtful", "skeptical", "suspicious"),
}
_NEGATIONS = {"not", "no", "never", "without", "nor", "hardly", "barely", "isn't", "wasn't", "doesn't", "don't",
              "didn't", "aren't", "weren't", "cannot", "can't", "neither", "lack", "lacks"}  # fmt: skip
_NEGATION_WINDOW = 3  # words before an emotion word in which a negation cancels it
# Forms that are also ordinary words count only after one of these ("she seems content", not "the content").
_NEEDS_CONTEXT = {
    "content": {"seems", "seem", "seemed", "is", "are", "was", "were", "feel", "feels", "felt", "looks", "look",
                "looked", "and", "quite", "very", "rather", "more", "less", "perfectly"},
}
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")

# The longest forms first, so that "let down" wins over a shorter overlapping form.
_PHRASES: list[tuple[tuple[str, ...], str]] = sorted(
    ((tuple(form.split()), label) for label, forms in _FORMS.items() for form in forms),
    key=lambda item: -len(item[0]),
)

_SINGLE_FORMS = {phrase[0] for phrase, _ in _PHRASES if len(phrase) == 1}  # a list of emotions: "calm, content"
EMOTION_LABELS: tuple[str, ...] = tuple(_FORMS)


def extract_emotions(text: str) -> list[str]:
    """The emotion labels an explanation names, in order of first mention, without those it negates.

    >>> extract_emotions("She smiles and sounds happy and relieved, not angry at all.")
    ['happy', 'relieved']
    """
    words = _TOKEN.findall(text.lower().replace("\u2019", "'"))
    found: list[str] = []
    i = 0
    while i < len(words):
        for phrase, label in _PHRASES:
            if tuple(words[i : i + len(phrase)]) == phrase:
                context = _NEEDS_CONTEXT.get(phrase[0]) if len(phrase) == 1 else None
                if context is not None and (i == 0 or (words[i - 1] not in context and words[i - 1] not in _SINGLE_FORMS)):
                    continue
                negated = any(w in _NEGATIONS or w.endswith("n't") for w in words[max(0, i - _NEGATION_WINDOW) : i])
                if not negated and label not in found:
                    found.append(label)
                i += len(phrase)
                break
        else:
            i += 1
    return found


__all__ = ["EMOTION_LABELS", "extract_emotions"]
