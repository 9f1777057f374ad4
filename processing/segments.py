"""Long videos in segments: cut where nobody speaks, each segment decoded and prepared on its own.

A video longer than ``segment_seconds`` (default 60) is cut into segments of at most that length. A cut falls
in the pause between two utterances (the middle of the last pause in the second half of the segment), so no
utterance is split; when one utterance runs through the whole second half the cut falls at the limit and a
note says so, and a window without utterances is cut at its limit. The rest of the video always keeps at least
2 s (one audio clip; half of a shorter rest), so the last segment is never a sliver. The utterances are the user's (subtitles) or found on the segment's own sound (voice activity
or ASR, as the processor is set up).

Nothing holds the whole video: each segment's frames are decoded by seeking to it (``decode_video(times=)``),
and its sound is decoded from the file for that window only (:func:`load_audio_window`), so time grows
linearly with length and memory stays that of one segment. Each segment is a prepared sample on its own
clock (0 = the segment start); :class:`Segment` keeps the offset that puts its results back on the video's
clock.

Hub-shipped with the processor: numpy only, flat imports of siblings; ``av`` through ``video_io``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .audio_io import SAMPLING_RATE, choose_audio_stream
from .utterances import Span
from .video_io import (
    DecodedVideo,
    MediaError,
    _import_av,
    decode_video,
    open_container,
    probe_video,
    sample_times,
)

DEFAULT_SEGMENT_SECONDS = 60.0
MIN_SEGMENT_SECONDS = 2.0  # a segment must hold at least one ImageBind audio clip (2 s)


@dataclass
class Segment:
    """One segment of a long video: ``start`` / ``end`` in seconds on the video's clock, the prepared sample on
    the segment's own clock, and how it was cut."""

    index: int
    start: float
    end: float
    sample: object  # a PreparedSample
    cut: str


def check_segment_seconds(value: float, name: str = "segment_seconds") -> float:
    """``value`` as seconds >= 2 (a shorter segment cannot hold one 2 s audio clip)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds >= {MIN_SEGMENT_SECONDS:g}, got {value!r}")
    if value < MIN_SEGMENT_SECONDS:
        raise ValueError(
            f"{name}={value:g} s is too short: a segment needs at least {MIN_SEGMENT_SECONDS:g} s (one 2 s audio clip)"
        )
    return float(value)


def choose_cut(spans: Sequence[Span], start: float, limit: float) -> tuple[float, str]:
    """Where the segment that begins at ``start`` ends, at or before ``limit``: the middle of the last pause
    between utterances in the second half of the segment, else ``limit`` itself (also when no utterance falls in
    it). Returns (time, why)."""
    ordered = sorted((s for s in spans if s.end > start and s.start < limit), key=lambda s: s.start)
    if not ordered:  # silence (or no sound) all along: nothing to split, so the segment is as long as it may be
        return limit, "no utterance"
    earliest = start + (limit - start) / 2
    pauses = []
    previous_end = start
    for span in ordered:
        if span.start > previous_end:
            pauses.append((previous_end, span.start))
        previous_end = max(previous_end, span.end)
    if previous_end < limit:
        pauses.append((previous_end, limit))
    middles = [(a + b) / 2 for a, b in pauses]
    inside = [m for m in middles if earliest <= m <= limit]
    if inside:
        return max(inside), "pause"
    return limit, "limit (an utterance runs through the cut)"


def spans_within(spans: Sequence[Span], start: float, end: float) -> list[Span]:
    """The spans that overlap [start, end], clipped to it, on the segment's clock (0 = ``start``)."""
    inside = []
    for span in spans:
        first, last = max(span.start, start), min(span.end, end)
        if last > first:
            inside.append(Span(round(first - start, 6), round(last - start, 6), span.text))
    return inside


def load_audio_window(
    path: str | os.PathLike, start: float, end: float, sampling_rate: int = SAMPLING_RATE, stream: int | None = None
) -> np.ndarray:
    """Mono float32 sound of ``path`` from ``start`` to ``end`` seconds (the video stream's clock), decoded by
    seeking to the window: the rest of the file is never decoded. Missing sound at the ends is silence."""
    av = _import_av()
    length = int(round((end - start) * sampling_rate))
    with open_container(path) as container:
        audio, _ = choose_audio_stream(container, path, stream)
        video = container.streams.video[0] if container.streams.video else None
        origin = float(video.start_time * video.time_base) if video is not None and video.start_time is not None else 0.0
        if start > 1.0:
            container.seek(int((start + origin - 1.0) / audio.time_base), stream=audio, backward=True, any_frame=False)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        pieces, first_time = [], None
        try:
            for frame in container.decode(audio):
                time = float(frame.pts * frame.time_base) - origin if frame.pts is not None else None
                if first_time is None:
                    first_time = time if time is not None else 0.0
                pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
                if time is not None and time > end:
                    break
            pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except av.FFmpegError as error:
            if not pieces:
                raise MediaError(f"{path}: audio stream cannot be decoded (FFmpeg: {error})") from None
    window = np.zeros(length, dtype=np.float32)
    if not pieces:
        return window
    decoded = np.concatenate(pieces).astype(np.float32, copy=False)
    offset = int(round((start - first_time) * sampling_rate))  # where `start` falls in what was decoded
    source = decoded[max(offset, 0) : max(offset, 0) + length - max(-offset, 0)]
    window[max(-offset, 0) : max(-offset, 0) + source.size] = source
    return window


def prepare_piece(
    processor,
    video: DecodedVideo,
    waveform: np.ndarray | None,
    face: str | int | None = None,
    **prepare_kwargs,
):
    """``processor.prepare_sample`` on decoded frames and their sound, looking at the face chosen by ``face``
    (``"speaker"``, ``"largest"`` or an index; None: the processor's own setting)."""
    # A processor loaded with trust_remote_code has its own copy of these modules: hand it its own
    # DecodedVideo class and plain (start, end, text) spans, which it recognises.
    decoder = getattr(processor, "video_processor", processor)  # the stage that checks what a video is
    own = getattr(sys.modules.get(type(decoder).__module__), "DecodedVideo", DecodedVideo)
    if not isinstance(video, own):
        video = own(video.frames, video.timestamps, video.duration, has_audio=video.has_audio, path=video.path)
    if prepare_kwargs.get("utterances") is not None and not isinstance(prepare_kwargs["utterances"], (str, os.PathLike)):
        prepare_kwargs["utterances"] = [(s.start, s.end, s.text) for s in prepare_kwargs["utterances"]]
    return processor.prepare_sample(video, audio=waveform, face=face, **prepare_kwargs)


def _segment_spans(processor, waveform: np.ndarray, duration: float, source: str) -> list[Span]:
    """Utterances found on a window's sound by the processor's utterance source (voice activity or ASR)."""
    from .utterances import transcribe
    from .vad import DETECTORS, voice_activity

    if processor.utterance_source in DETECTORS:
        return voice_activity(waveform, SAMPLING_RATE, processor.utterance_source, duration=duration,
                              **processor.vad_options).spans  # fmt: skip
    if processor.utterance_source == "asr":
        return transcribe(waveform, processor.asr_model)
    return []


def iter_segments(
    processor,
    path: str | os.PathLike,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    utterances: Sequence[Span] | None = None,
    face: str | int | None = None,
    **prepare_kwargs,
) -> Iterator[Segment]:
    """Prepare ``path`` segment by segment (see the module docstring); one segment is in memory at a time.

    Args:
        processor: a ``MicroEmoProcessor`` (its ``num_frames``, utterance source and ``prepare_sample``).
        path: the video file.
        segment_seconds: the longest segment (>= 2 s).
        utterances: spans on the video's clock (e.g. from a subtitle file); None: found per window.
        face: the person to look at in each segment (see :func:`prepare_piece`).
        prepare_kwargs: passed on to ``processor.prepare_sample``.
    """
    segment_seconds = check_segment_seconds(segment_seconds)
    info = probe_video(path)
    if not info.has_audio and utterances is None:
        utterances = []
    start, index = 0.0, 0
    while info.duration - start > 1e-3:
        limit = min(start + segment_seconds, info.duration)
        waveform = load_audio_window(path, start, limit) if info.has_audio else None
        if utterances is not None:
            found, origin = spans_within(utterances, start, limit), "given"
        else:
            found = _segment_spans(processor, waveform, limit - start, f"{path} at {start:.1f} s")
            origin = "ASR" if processor.utterance_source == "asr" else f"voice activity ({processor.utterance_source})"
        if limit >= info.duration:
            end, why = info.duration, "end of video"
        else:
            # The rest of the video keeps at least one audio clip's length (a short rest: half of it), so that no
            # segment is a sliver of a few frames and no sound.
            room = min(limit, max(info.duration - MIN_SEGMENT_SECONDS, start + (info.duration - start) / 2))
            cut, why = choose_cut(found, 0.0, room - start)
            end = start + cut
        spans = spans_within([s for s in found if s.start < end - start], 0.0, end - start)
        times = start + sample_times(end - start, processor.num_frames)
        decoded = decode_video(path, times=times)
        video = DecodedVideo(decoded.frames, np.maximum(decoded.timestamps - start, 0.0), end - start,
                             has_audio=info.has_audio, path=None)  # fmt: skip
        audio = None if waveform is None else waveform[: int(round((end - start) * SAMPLING_RATE))]
        sample = prepare_piece(processor, video, audio, face, utterances=spans, **prepare_kwargs)
        sample.notes.append(f"segment {index} ({start:.1f}-{end:.1f} s): utterances {origin}, cut at {why}")
        if why.startswith("limit"):
            sample.notes.append(f"segment {index} cut at {end:.1f} s inside an utterance (no pause before the limit)")
        yield Segment(index, round(start, 3), round(end, 3), sample, why)
        start, index = end, index + 1
