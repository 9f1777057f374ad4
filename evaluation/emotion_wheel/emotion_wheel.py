"""Judge-free open-vocabulary emotion scores as an `evaluate` metric (`evaluate.load(<this folder>)`)."""

from pathlib import Path

import datasets
import evaluate

from microemo.evaluation.labels import parse_label_list
from microemo.evaluation.wheel import WheelLexicon, load_lexicon, matching_scores, wheel_scores

_DESCRIPTION = """\
Needs the MicroEmo package (`pip install microemo`): this module is a thin wrapper over microemo.evaluation.
Judge-free scores for open-vocabulary emotion labels; no LLM is called.
With a lexicon (MERTools' MER2025 emotion-wheel protocol): every label is mapped through a word-form
table and a synonym table onto five emotion wheels, at level 1 (coarse) or level 2 (finer); labels
that cannot be mapped are dropped; precision and recall per sample, F on their means, averaged over
the wheels. The lexicon is a folder in MERTools' `emotion_wheel` layout, given by the user.
Without a lexicon: the same precision, recall and F over the labels themselves, matched exactly
(lower-cased) or after a small rule-based lemmatiser; no synonyms are credited, and the result keys
(`exact_match_*`, `lemma_match_*`) say so.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per sample, a list of emotion labels or its list string ("['happy']", "[happy]").
        Free-form explanations need their labels extracted first (microemo.evaluation.emer, or
        `microemo evaluate`).
    references: per sample, a list of emotion labels or its list string.
    lexicon (path or WheelLexicon, optional): the emotion-wheel lexicon folder.
    levels (sequence of 1 and/or 2): wheel levels to report (default both).
    matching ("lemma" or "exact"): the lexicon-free matching, used when no lexicon is given.
    return_details (bool): per-wheel (lexicon) or per-sample (matching) values under `details`.
Returns:
    with a lexicon: wheel_level{L}_fscore, wheel_level{L}_precision, wheel_level{L}_recall,
    wheel_level{L}_num_scored; without: {matching}_match_fscore, _precision, _recall, _num_scored;
    and num_samples. A score is NaN when no sample has a reference that could be mapped.
Examples:
    >>> metric = evaluate.load("path/to/evaluation/emotion_wheel")
    >>> metric.compute(predictions=[["worried"]], references=[["worry", "sad"]], matching="lemma")["lemma_match_recall"]
    0.5
"""

_CITATION = """\
@misc{mertools,
  title={MERTools: toolkits for multimodal emotion recognition (MER2025 emotion-wheel evaluation)},
  author={Lian, Zheng and others},
  howpublished={\\url{https://github.com/zeroQiaoba/MERTools}}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmotionWheel(evaluate.Metric):
    """Emotion-wheel F/precision/recall, or exact/lemma matching without a lexicon."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/zeroQiaoba/MERTools"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references; label lists are checked and read here."""
        if predictions is not None and references is not None:
            if len(predictions) != len(references):
                raise ValueError(
                    f"lengths differ: {len(predictions)} predictions, {len(references)} references; "
                    "expected one each per sample"
                )
            predictions = [parse_label_list(p, what=f"prediction {i}") for i, p in enumerate(predictions)]
            references = [parse_label_list(r, what=f"reference {i}") for i, r in enumerate(references)]
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference; the label lists are checked and read here."""
        if prediction is not None and reference is not None:
            prediction = parse_label_list(prediction, what="prediction")
            reference = parse_label_list(reference, what="reference")
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, lexicon=None, levels=(1, 2), matching="lemma", return_details=False):
        if lexicon is None:
            return matching_scores(references, predictions, matching=matching, return_details=return_details)
        if not isinstance(lexicon, WheelLexicon):
            lexicon = load_lexicon(Path(lexicon))
        return wheel_scores(references, predictions, lexicon, levels=tuple(levels), return_details=return_details)
