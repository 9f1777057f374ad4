"""Audio: the sound of a video (or a separate audio file) as 16 kHz mono, cut into 2 s clips.

The clip layout follows ImageBind's audio loader as used by Video-LLaMA (pytorchvideo's
``ConstantClipsPerVideoSampler`` after its fix 9368f30, which ImageBind's pinned version includes):
C clips of 2 s with starts ``k * max(duration - 2, 0) / max(C - 1, 1)``, so the first clip starts at 0
and the last one ends at the end of the audio; short audio gives overlapping clips. Audio shorter
than 2 s gives clips of what there is: the feature extractor pads their fbank with zero frames, as
ImageBind does (not the waveform with silence). The fbank features themselves are computed by the
processor's feature extractor (an ``ASTFeatureExtractor`` configured to ImageBind's recipe by default).

Hub-shipped with the processor: ``av`` is imported lazily.
"""

from __future__ import annotations

import os

import numpy as np

from .video_io import MediaError, NoAudioStreamError, _import_av, open_container

SAMPLING_RATE = 16_000
CLIP_SECONDS = 2.0
# Sound a little past a video's last frame is normal (encoder priming and padding) and kept as it always was;
# only sound running further than this past the video's end is cut, with a note.
AUDIO_OVERRUN_SECONDS = 0.5


def load_audio(
    path: str | os.PathLike,
    sampling_rate: int = SAMPLING_RATE,
    *,
    time_origin: float | None = None,
    stream: int | None = None,
) -> np.ndarray:
    """Decode one audio stream of ``path`` to mono float32 at ``sampling_rate`` (see :func:`load_audio_stream`)."""
    return load_audio_stream(path, sampling_rate, time_origin=time_origin, stream=stream)[0]


def choose_audio_stream(container, path: str | os.PathLike, index: int | None = None):
    """The audio stream a player would play: the one marked default, else the first; or the ``index``-th.

    Returns the stream and a sentence saying which one it is (for the processor's notes).
    """
    streams = list(container.streams.audio)
    if not streams:
        raise NoAudioStreamError(f"{path}: has no audio stream")
    if index is not None:
        if not 0 <= index < len(streams):
            raise ValueError(f"{path}: audio_stream={index}, but the file has {len(streams)} audio stream(s) (0-based)")
        chosen, why = streams[index], "as asked"
    else:
        av = _import_av()
        marked = [s for s in streams if s.disposition & av.stream.Disposition.default]
        chosen, why = (marked[0], "marked default") if marked else (streams[0], "the first")
    language = chosen.metadata.get("language")
    language = None if language in (None, "", "und") else language
    described = f"audio stream {streams.index(chosen)} of {len(streams)} ({why}" + (f", language {language})" if language else ")")
    return chosen, described


def load_audio_stream(
    path: str | os.PathLike,
    sampling_rate: int = SAMPLING_RATE,
    *,
    time_origin: float | None = None,
    stream: int | None = None,
) -> tuple[np.ndarray, str]:
    """Decode an audio stream of ``path`` to mono float32 at ``sampling_rate``; returns it and which stream it was.

    Args:
        path: a video or audio file.
        sampling_rate: output rate in Hz.
        time_origin: the time (in the container's clock, seconds) that becomes sample 0. By default
            the start of the video stream when there is one, so that audio and frame timestamps share
            one clock; audio that starts later is preceded by silence.
        stream: which audio stream (0-based among the audio streams); default: the one marked default
            in the container, else the first (what a player plays). Channels are mixed down to mono.

    Raises:
        FileNotFoundError / MediaError: unreadable file. NoAudioStreamError: no audio stream.
    """
    waveform, described, _ = _decode_audio(path, sampling_rate, time_origin, stream, None)
    return waveform, described


def load_audio_for_video(
    path: str | os.PathLike, video_duration: float, sampling_rate: int = SAMPLING_RATE, *, stream: int | None = None
) -> tuple[np.ndarray, str, list[str]]:
    """The sound of a video over the video's span only: decoding stops shortly after the video's end, so a 1 s clip
    with an hour of audio decodes about one second. Sound running more than ``AUDIO_OVERRUN_SECONDS`` past the end
    is cut at the end, with a note; a shorter overrun is kept (as every encoder leaves one).
    Returns the waveform, which stream it was, and the notes."""
    if not video_duration > 0:
        raise ValueError(f"{path}: video_duration must be > 0 s, got {video_duration!r}")
    until = float(video_duration) + AUDIO_OVERRUN_SECONDS
    waveform, described, cut = _decode_audio(path, sampling_rate, None, stream, until)
    notes = []
    if cut:
        waveform = waveform[: int(round(video_duration * sampling_rate))]
        notes.append(
            f"audio: the sound runs past the end of the video; only its first {video_duration:.2f} s (the video's "
            "span, which the frames cover) were used"
        )
    return waveform, described, notes


def _decode_audio(
    path: str | os.PathLike, sampling_rate: int, time_origin: float | None, stream: int | None, until: float | None
) -> tuple[np.ndarray, str, bool]:
    """Decode (see :func:`load_audio_stream`); with ``until``, stop at that many seconds after the time origin.
    Returns the waveform, which stream it was, and whether sound past ``until`` was left out."""
    av = _import_av()
    cut = False
    with open_container(path) as container:
        selected, described = choose_audio_stream(container, path, stream)
        stream = selected
        if time_origin is None:
            video = container.streams.video[0] if container.streams.video else None
            if video is not None and video.start_time is not None:
                time_origin = float(video.start_time * video.time_base)
            else:
                time_origin = 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        pieces: list[np.ndarray] = []
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                if first_time is None and frame.pts is not None and frame.time_base is not None:
                    first_time = float(frame.pts * frame.time_base)
                if until is not None and frame.pts is not None and frame.time_base is not None:
                    if float(frame.pts * frame.time_base) - time_origin >= until:
                        cut = True
                        break
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as error:
            if not pieces:
                reason = getattr(error, "strerror", None) or str(error)
                raise MediaError(f"{path}: audio stream cannot be decoded (FFmpeg: {reason})") from None
    if not pieces:
        raise MediaError(f"{path}: audio stream holds no samples")
    waveform = np.concatenate(pieces).astype(np.float32, copy=False)
    lead = (first_time or 0.0) - time_origin
    if lead > 0:
        waveform = np.concatenate([np.zeros(int(round(lead * sampling_rate)), np.float32), waveform])
    elif lead < 0:
        waveform = waveform[int(round(-lead * sampling_rate)) :]
    if until is not None and waveform.size > int(round(until * sampling_rate)):
        waveform = waveform[: int(round(until * sampling_rate))]
        cut = True
    return waveform, described, cut


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``waveform`` at ``source_rate`` Hz resampled to ``target_rate`` Hz (polyphase, scipy), float32."""
    try:
        from scipy.signal import resample_poly
    except ImportError as error:  # inside try: transformers' remote-code import check skips it
        raise ImportError(
            f"a waveform at {source_rate} Hz must be resampled to {target_rate} Hz, which needs scipy: pip install "
            f"scipy (or pass audio at {target_rate} Hz)"
        ) from error

    divisor = np.gcd(int(source_rate), int(target_rate))
    return resample_poly(waveform, target_rate // divisor, source_rate // divisor).astype(np.float32)


def clip_starts(duration: float, num_clips: int, clip_seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Start times (s) of ``num_clips`` clips of ``clip_seconds`` over ``duration``: the first at 0, the last
    ending at ``duration`` (ImageBind's layout); all at 0 when the audio is shorter than one clip."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    return np.arange(num_clips, dtype=np.float64) * max(duration - clip_seconds, 0.0) / max(num_clips - 1, 1)


def cut_clips(
    waveform: np.ndarray,
    num_clips: int = 8,
    sampling_rate: int = SAMPLING_RATE,
    clip_seconds: float = CLIP_SECONDS,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut ``waveform`` into ``num_clips`` clips; returns (clips, starts [C] in s).

    Every clip holds ``clip_seconds`` of audio, except when the whole waveform is shorter: then each
    clip is the whole waveform (its features are padded in the fbank domain, not here).
    """
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if waveform.size == 0:
        raise ValueError("waveform is empty")
    length = int(round(clip_seconds * sampling_rate))
    starts = clip_starts(waveform.size / sampling_rate, num_clips, clip_seconds)
    # The last start is rounded so that its clip ends exactly at the last sample.
    firsts = np.minimum(np.round(starts * sampling_rate).astype(np.int64), max(waveform.size - length, 0))
    return [waveform[first : first + length] for first in firsts], starts
