"""The processor's heavy half: one video (or its segments) through the stages, to a ``PreparedSample``.

:class:`SamplePreparationMixin` gives ``MicroEmoProcessor`` :meth:`~SamplePreparationMixin.prepare_sample` (the
frame chain and the sound chain of ``media_stages.py``, overlapped) and
:meth:`~SamplePreparationMixin.prepare_segments` (long videos cut in pauses, ``segments.py``); ``collate`` turns
prepared samples into tensors. This file ships to the Hub with the processor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .audio_io import SAMPLING_RATE, cut_clips
from .batching import PreparedSample
from .face_clues import FaceClueStage
from .face_tracking import check_face_option
from .media_stages import run_media_stages
from .utterance_spans import UtteranceStage
from .utterances import as_spans, load_spans
from .video_io import DecodedVideo, VideoInfo, probe_video

if TYPE_CHECKING:
    from .segments import Segment


class SamplePreparationMixin:
    """Preparation of single videos, for a processor with a ``video_processor`` and the stage settings
    (``clue_regions``, ``utterance_source``, ``face``, ...) of ``MicroEmoProcessor``."""

    # prepare_sample runs the frame chain and the sound chain at the same time (overlap.py); False runs them one
    # after the other, with the same results (for measurements and debugging; not saved).
    overlap_stages = True

    def face_clue_stage(self) -> FaceClueStage:
        """The face-clue stage with this processor's settings (built per use: it holds no state)."""
        return FaceClueStage(
            self.image_size, self.patch_size, self.clue_regions, self.min_patch_coverage, self.face_landmarker_path,
            self.cache_dir,
        )  # fmt: skip

    def utterance_stage(self) -> UtteranceStage:
        """The utterance stage with this processor's settings."""
        return UtteranceStage(self.utterance_source, self.max_utterances, self.vad_options, self.asr_model)

    def prepare_sample(
        self,
        video: str | os.PathLike | DecodedVideo | np.ndarray,
        *,
        frame_timestamps: Sequence[float] | np.ndarray | None = None,
        landmarks: np.ndarray | None = None,
        clue_masks: np.ndarray | None = None,
        utterances: str | os.PathLike | Sequence | None = None,
        audio: str | os.PathLike | np.ndarray | None = None,
        sampling_rate: int = SAMPLING_RATE,
        subtitle: str | None = None,
        num_frames: int | None = None,
        fps: float | None = None,
        do_sample_frames: bool | None = None,
        video_metadata: dict | None = None,
        input_data_format: str | None = None,
        face: str | int | None = None,
    ) -> PreparedSample:
        """Run the stages on one sample (video, face clues, audio, utterances): the heavy part of ``__call__``.
        ``face`` overrides the processor's ``face`` for this sample.

        The result is what :meth:`collate` turns into tensors; a training data pipeline can run this once per
        video and collate per batch. The video's own sound is loaded whenever it has one (the utterances are
        found on it); whether it also becomes audio tokens is decided at collation (``use_audio_in_video``).
        """
        def fetch() -> DecodedVideo:
            return self.video_processor.fetch_video(
                video, num_frames=num_frames, fps=fps, do_sample_frames=do_sample_frames,
                frame_timestamps=frame_timestamps, video_metadata=video_metadata, input_data_format=input_data_format,
            )  # fmt: skip

        # A file's sound needs only its probe, so the frames decode while it loads; given frames are decoded first.
        if isinstance(video, (str, os.PathLike)):
            # Decoding's checks come first, so that a bad argument is named before the sound chain runs.
            self.video_processor.sampling_request(video, num_frames, fps, do_sample_frames)
            media = probe_video(video)
            self.video_processor.sampling_request(video, num_frames, fps, do_sample_frames, duration=media.duration)
        else:
            media = fetch()
        sampling = {"fps": fps} if fps is not None else {"num_frames": num_frames or self.num_frames}
        decoded, faces, waveform, spans, utterance_frame_mask, notes, choice = run_media_stages(
            fetch if isinstance(media, VideoInfo) else lambda: media, media, self.face_clue_stage(),
            self.utterance_stage(), sampling=sampling, face=self.face if face is None else check_face_option(face),
            landmarks=landmarks, clue_masks=clue_masks, audio=audio, sampling_rate=sampling_rate,
            utterances=utterances, audio_stream=self.audio_stream, face_landmarker_path=self.face_landmarker_path,
            overlap=self.overlap_stages,
        )  # fmt: skip
        return PreparedSample(
            video=decoded,
            landmarks=faces.landmarks,
            face_found=faces.face_found,
            clue_masks=faces.clue_masks,
            utterances=spans,
            utterance_frame_mask=utterance_frame_mask,
            waveform=waveform,
            audio_clip_starts=None if waveform is None else cut_clips(waveform, self.num_audio_clips)[1],
            subtitle=" ".join(s.text for s in spans if s.text) if subtitle is None else subtitle,
            notes=notes,
            audio_is_given=audio is not None,
            face_choice=choice,
        )

    def prepare_segments(
        self,
        video: str | os.PathLike,
        segment_seconds: float = 60.0,
        *,
        utterances: str | os.PathLike | Sequence | None = None,
        face: str | int | None = None,
        subtitle: str | None = None,
        landmarks: np.ndarray | None = None,
        clue_masks: np.ndarray | None = None,
    ) -> Iterator[Segment]:
        """A video file longer than ``segment_seconds`` as prepared samples, one segment in memory at a time, cut
        in pauses between utterances (``segments.py``); each sample is on its segment's clock (``Segment.start``
        puts it back on the video's).

        A video no longer than that is one segment, :meth:`prepare_sample`'s with every argument. A longer one
        refuses ``landmarks`` / ``clue_masks`` (they hold the whole video's sampled frames), and a ``subtitle`` for
        the whole video is noted and not used: each segment's words are those of its own utterances.
        """
        from .segments import Segment, check_segment_seconds, iter_segments

        segment_seconds = check_segment_seconds(segment_seconds)
        if not isinstance(video, (str, os.PathLike)):
            raise ValueError(f"segment_seconds: segments are cut from a video file, got {type(video).__name__}; "
                             "give the file, or prepare the frames whole with prepare_sample")  # fmt: skip
        if probe_video(video).duration <= segment_seconds:
            sample = self.prepare_sample(video, utterances=utterances, face=face, subtitle=subtitle,
                                         landmarks=landmarks, clue_masks=clue_masks)  # fmt: skip
            return iter([Segment(0, 0.0, round(float(sample.video.duration), 3), sample, "whole video")])
        given = [name for name, value in (("landmarks", landmarks), ("clue_masks", clue_masks)) if value is not None]
        if given:
            raise ValueError(f"{video}: the given {' and '.join(given)} hold the whole video's sampled frames and "
                             f"cannot be split into segments of {segment_seconds:g} s; leave them out (the face mesh "
                             "runs per segment) or prepare the video whole")  # fmt: skip
        if utterances is not None:
            utterances = load_spans(utterances) if isinstance(utterances, (str, os.PathLike)) else as_spans(utterances)
        segments = iter_segments(self, video, segment_seconds, utterances=utterances, face=face)
        if subtitle is None:
            return segments
        return _with_note(segments, "the subtitle given for the whole video is not used in its segments: each "
                                    "segment's words are those of its own utterances")  # fmt: skip


def _with_note(segments: Iterator[Segment], note: str) -> Iterator[Segment]:
    for segment in segments:
        segment.sample.notes.append(note)
        yield segment


__all__ = ["SamplePreparationMixin"]
