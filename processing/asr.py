"""The transcript: utterance spans and their words from a transformers speech-recognition model.

``transcribe(waveform, model)`` runs transformers' ``automatic-speech-recognition`` pipeline with timestamps
(Whisper: one chunk per segment it times; a CTC model: word timestamps grouped at pauses) and returns the
spans with their text, which becomes the prompt's subtitle, the paper's "transcribed speech". The model is
checked before it is loaded: a checkpoint that is not a speech-recognition model is refused with its type.
Pipelines are kept per process (one load per model and device).

Hub-shipped with the processor: transformers is imported when asked for.
"""

from __future__ import annotations

import os

import numpy as np

from .runtime import ProcessLocalCache
from .utterances import Span, spans_from_asr_output

_PIPELINES = ProcessLocalCache()
EXAMPLES = "a Whisper checkpoint such as openai/whisper-small or openai/whisper-large-v3-turbo"


class NotAnASRModelError(ValueError):
    """``asr_model`` names a checkpoint that is not a speech-recognition model."""


def asr_kind(model: str | os.PathLike) -> str:
    """``"seq2seq"`` (Whisper and kin) or ``"ctc"`` (wav2vec2 and kin) for a speech-recognition checkpoint.

    Raises:
        NotAnASRModelError: the checkpoint's config is of another kind of model.
        OSError: no config can be found at ``model`` (as transformers says).
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CTC_MAPPING_NAMES,
        MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
    )

    config = AutoConfig.from_pretrained(str(model))
    if config.model_type in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return "seq2seq"
    if config.model_type in MODEL_FOR_CTC_MAPPING_NAMES:
        return "ctc"
    architectures = ", ".join(getattr(config, "architectures", None) or []) or "no architectures listed"
    raise NotAnASRModelError(
        f"asr_model {str(model)!r} is a {config.model_type!r} model ({architectures}), not a speech-recognition "
        f"model; give {EXAMPLES}"
    )


def load_asr(model: str | os.PathLike, device: str | int | None = None):
    """This process's ASR pipeline for ``model`` (checked with :func:`asr_kind` first), loaded on first use."""
    key = f"{model}@{device}"
    if key not in _PIPELINES:
        kind = asr_kind(model)
        from transformers import pipeline

        asr = pipeline("automatic-speech-recognition", model=str(model), device=device)
        _PIPELINES[key] = (asr, kind)
    return _PIPELINES[key]


def transcribe(
    waveform: np.ndarray, model: str | os.PathLike, sampling_rate: int = 16_000, device: str | int | None = None
) -> list[Span]:
    """Utterance spans with their words, from ``model``'s timestamps (seconds from the waveform's start)."""
    asr, kind = load_asr(model, device)
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if waveform.size == 0:
        return []
    output = asr({"raw": waveform, "sampling_rate": sampling_rate}, return_timestamps=True if kind == "seq2seq" else "word")
    return fit_spans(spans_from_asr_output(output, duration=waveform.size / sampling_rate), waveform.size / sampling_rate)


def fit_spans(spans: list[Span], duration: float) -> list[Span]:
    """Spans clipped to [0, duration], in time order, without the empty ones: a model can time text past the end
    of the sound (Whisper pads its input to 30 s windows)."""
    fitted = [Span(max(s.start, 0.0), min(s.end, duration), s.text) for s in spans if s.start < duration]
    return sorted((s for s in fitted if s.end > s.start), key=lambda s: s.start)
