"""EMER set-level Accuracy_s / Recall_s as an `evaluate` metric (load it with `evaluate.load(<this folder>)`)."""

import json
from collections.abc import Mapping

import datasets
import evaluate

from microemo.evaluation.emer import IncompleteEvaluationError, evaluate_emer, load_groupings
from microemo.evaluation.judge import JudgeClient, JudgeConfig
from microemo.evaluation.labels import parse_label_list
from microemo.evaluation.prompts import resolve_prompts

_DESCRIPTION = """\
Needs the MicroEmo package (`pip install microemo`): this module is a thin wrapper over microemo.evaluation.
EMER's open-vocabulary emotion metric (Lian et al., "Explainable Multimodal Emotion Reasoning";
MERTools MER2024 `main-ov.py`). Per sample an LLM judge groups the union of the reference and
predicted labels into groups of same-meaning emotions; every word is replaced by the first word of
its group; Accuracy = |G & P| / |P| and Recall = |G & P| / |G| (both 0 for an empty P). The
results are their means over samples, Accuracy_s and Recall_s, and Avg, their mean.
Groupings saved earlier (MERTools' openset-synonym `.npy` archive, or an earlier report) replace
the judge, so published numbers can be recomputed with no API calls.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per sample, a list of emotion labels, a list string ("['happy', 'sad']" or
        "[happy, sad]"), or a free-form emotion explanation whose labels the judge extracts first.
    references: per sample, a non-empty list of emotion labels (or its list string).
    names (list of str, optional): unique sample names, the keys of `groupings`. Default: "0", "1", ...
    judge (JudgeClient, JudgeConfig or dict of JudgeConfig fields, optional): the LLM judge.
    groupings (path or mapping, optional): saved groupings by sample name; used before the judge.
    judge_prompts (path or PromptSet, optional): a JSON or YAML file with the judge's "grouping"
        ({labels}) and "extraction" ({description}) templates; default: the built-in wording.
    prediction_type ("auto", "labels" or "description"): how string predictions are read; "auto"
        reads a string in brackets as a label list and anything else as an explanation.
    on_failure ("raise" or "report"): what to do when some judge replies never parse: raise
        IncompleteEvaluationError (default) or return scores over the other samples, with
        `complete` false and the failed names in `failed_samples`.
    return_details (bool): add per-sample groupings and scores under `details`.
    progress (bool): show progress bars.
Config name: "default", or "mer2024" to read list strings exactly as MERTools' MER2024 scorer did
    (needed only to recompute numbers published with its groupings archive).
Returns:
    accuracy_s, recall_s, avg (floats in [0, 1]), num_samples, num_scored, num_failed, complete;
    prompts_sha256 and prompts_source (the judge prompts: "built-in" or the file's path);
    judge_stats when a judge was used; failed_samples; details on request.
Examples:
    >>> metric = evaluate.load("path/to/evaluation/emer_set_accuracy")
    >>> groupings = {"0": [["happy", "joyful"], ["excited"]]}  # saved; or pass judge=JudgeConfig(...)
    >>> metric.compute(predictions=[["joyful"]], references=[["happy", "excited"]], groupings=groupings)["recall_s"]
    0.5
"""

_CITATION = """\
@article{lian2023explainable,
  title={Explainable Multimodal Emotion Reasoning},
  author={Lian, Zheng and others},
  journal={arXiv preprint arXiv:2306.15401},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EmerSetAccuracy(evaluate.Metric):
    """EMER Accuracy_s / Recall_s with an LLM judge or saved groupings."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in ("default", "mer2024"):
            raise ValueError(f"config_name: got {self.config_name!r}; expected 'default' or 'mer2024'")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Predictions are stored as strings: label lists are encoded as JSON lists so that one
            # column can hold both label lists and free-form explanations.
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            reference_urls=["https://github.com/zeroQiaoba/MERTools"],
        )

    @property
    def _label_style(self) -> str:
        return "mer2024" if self.config_name == "mer2024" else "lenient"

    def _encode(self, predictions, references, offset=0):
        if predictions is None or references is None:
            return predictions, references
        encoded_predictions = []
        for index, prediction in enumerate(predictions):
            what = f"prediction {offset + index}"
            if isinstance(prediction, str):
                encoded_predictions.append(prediction)
            else:
                encoded_predictions.append(json.dumps(parse_label_list(prediction, what=what)))
        encoded_references = [
            parse_label_list(reference, what=f"reference {offset + index}", style=self._label_style)
            for index, reference in enumerate(references)
        ]
        return encoded_predictions, encoded_references

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references; label lists are checked and read here."""
        if predictions is not None and references is not None and len(predictions) != len(references):
            raise ValueError(
                f"lengths differ: {len(predictions)} predictions, {len(references)} references; expected one each per sample"
            )
        predictions, references = self._encode(predictions, references)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference; the label list is checked and read here."""
        if prediction is not None and reference is not None:
            (prediction,), (reference,) = self._encode([prediction], [reference])
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        names=None,
        judge=None,
        groupings=None,
        judge_prompts=None,
        prediction_type="auto",
        on_failure="raise",
        return_details=False,
        progress=False,
    ):
        if on_failure not in ("raise", "report"):
            raise ValueError(f"on_failure: got {on_failure!r}; expected 'raise' or 'report'")
        names = [str(index) for index in range(len(predictions))] if names is None else [str(n) for n in names]
        if len(names) != len(predictions):
            raise ValueError(f"lengths differ: {len(names)} names, {len(predictions)} predictions; expected one name per sample")
        decoded = [_decode_prediction(prediction) for prediction in predictions]
        saved = load_groupings(groupings) if groupings is not None else None
        prompts = resolve_prompts(judge_prompts)
        client, owned = _open_judge(judge)
        try:
            evaluation = evaluate_emer(
                names,
                references,
                decoded,
                judge=client,
                groupings=saved,
                judge_prompts=prompts,
                prediction_type=prediction_type,
                label_parsing=self._label_style,
                progress=progress,
            )
            stats = client.stats.to_dict() if client is not None else None
        finally:
            if owned:
                client.close()
        if evaluation.failures and on_failure == "raise":
            raise IncompleteEvaluationError(evaluation)
        result = dict(evaluation.summary)
        result["failed_samples"] = [sample.name for sample in evaluation.failures]
        result["prompts_sha256"] = prompts.sha256
        result["prompts_source"] = prompts.source
        if stats is not None:
            result["judge_stats"] = stats
        if return_details:
            result["details"] = [sample.to_dict() for sample in evaluation.samples]
        return result


def _decode_prediction(prediction):
    """A JSON list written by `_encode` back to a list; any other string stays a string."""
    text = prediction.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except ValueError:
            return prediction
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return prediction


def _open_judge(judge):
    """(client, whether we own it and must close it) for any accepted form of `judge`."""
    if judge is None or isinstance(judge, JudgeClient):
        return judge, False
    if isinstance(judge, JudgeConfig):
        return JudgeClient(judge), True
    if isinstance(judge, Mapping):
        return JudgeClient(JudgeConfig(**judge)), True
    raise TypeError(
        f"judge: got {type(judge).__name__}; expected a JudgeClient, a JudgeConfig or a dict of JudgeConfig fields"
    )
