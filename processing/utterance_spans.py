"""The utterance stage: given spans, a subtitle file, ASR or voice activity -> checked spans.

The readers (SRT / WebVTT / JSON) and the ``Span`` type live in ``utterances.py``; voice activity in ``vad.py``.
This stage chooses the source, fits machine-made spans to the video, checks and merges them down to
``max_utterances``. It needs the video's length, not its frames: each span gets its frames after decoding
(``media_stages.py``). This file ships to the Hub with the processor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .audio_io import SAMPLING_RATE
from .runtime import get_logger
from .utterances import Span, as_spans, load_spans, merge_spans, transcribe, validate_spans
from .vad import DETECTORS, voice_activity

logger = get_logger("processing")


@dataclass
class UtteranceStage:
    """Settings of the stage (the processor's): where spans come from when a sample has none, and how many fit.

    ``utterance_source``: ``"silero"`` / ``"energy"`` (voice activity), ``"asr"`` (``asr_model``) or ``"none"``.
    """

    utterance_source: str
    max_utterances: int
    vad_options: dict = field(default_factory=dict)
    asr_model: str | None = None

    def __call__(
        self,
        duration: float,
        utterances: str | os.PathLike | Sequence | None,
        waveform: np.ndarray | None,
        notes: list[str],
        source: str = "video",
    ) -> list[Span]:
        """The sample's checked spans within a video of ``duration`` seconds; what was found or merged goes to
        ``notes``. Only the video's length is needed (not its frames), so this runs while the frames decode;
        :func:`~.utterances.assign_frames` gives each span its frames afterwards."""
        spans, span_source = self.find(duration, utterances, waveform, notes, source)
        if utterances is None:
            # Found on the audio, which may run a little past the last frame (encoder padding): fit
            # machine-made spans to the video quietly; user-given spans are checked and warned about.
            spans = [Span(max(s.start, 0.0), min(s.end, duration), s.text) for s in spans if s.start < duration]
        spans = validate_spans(spans, duration, span_source)
        if len(spans) > self.max_utterances:
            message = f"{len(spans)} utterances merged down to max_utterances={self.max_utterances} (closest neighbours joined)"
            notes.append(message)
            logger.warning("%s: %s", span_source, message)
        return merge_spans(spans, self.max_utterances)

    def find(
        self,
        duration: float,
        utterances: str | os.PathLike | Sequence | None,
        waveform: np.ndarray | None,
        notes: list[str],
        source: str,
    ) -> tuple[list[Span], str]:
        """The raw spans and a name of where they came from (for error messages)."""
        if isinstance(utterances, (str, os.PathLike)):
            spans = load_spans(utterances)
            if not spans:
                notes.append(f"no utterances: {utterances} holds no subtitle cue")
            return spans, str(utterances)
        if utterances is not None:
            return as_spans(utterances, f"{source} utterances"), f"{source} utterances"
        if waveform is not None and self.utterance_source in DETECTORS:
            activity = voice_activity(
                waveform, SAMPLING_RATE, self.utterance_source, duration=duration, **self.vad_options
            )
            notes.append(activity.note)
            return activity.spans, f"{source} (voice activity, {activity.detector})"
        if waveform is not None and self.utterance_source == "asr":
            return transcribe(waveform, self.asr_model), f"{source} (ASR {self.asr_model})"
        return [], source


def subtitle_of(utterances: str | os.PathLike | Sequence) -> str:
    """The text of given utterances (a subtitle file or spans), joined: the default subtitle of the EMER prompt."""
    spans = load_spans(utterances) if isinstance(utterances, (str, os.PathLike)) else as_spans(utterances)
    return " ".join(s.text for s in spans if s.text)


__all__ = ["UtteranceStage", "subtitle_of"]
