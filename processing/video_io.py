"""Video decoding with PyAV: T uniformly sampled frames and their true presentation timestamps.

Decoding streams through the file (or seeks, for long videos), so only the sampled frames are ever
kept in memory. Timestamps are the frames' own presentation times in seconds from the start of the
video stream, so variable-frame-rate files get their real times, not ``index / fps``. Frames are
returned upright: the container's display rotation is applied.

This file ships to the Hub with the processor: it imports ``av`` lazily, inside a ``try`` block, so
the processor loads (and works on already-decoded frames) without PyAV installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .runtime import get_logger

logger = get_logger("processing.video")

# Gap between two sampled frames above which seeking to each one is cheaper than decoding every
# frame in between, when the container has no index to read the keyframe interval from.
SEEK_GAP_SECONDS = 8.0


class MediaError(ValueError):
    """A media file that cannot be used; the message names the file and the problem."""


class NoVideoStreamError(MediaError):
    """The file opens but has no video stream."""


class NoAudioStreamError(MediaError):
    """The file opens but has no audio stream."""


@dataclass
class VideoInfo:
    """What the container says about a video, read without decoding frames."""

    path: str
    duration: float
    width: int
    height: int
    average_fps: float | None
    num_frames: int | None
    rotation: int
    has_audio: bool
    start_time: float


@dataclass
class DecodedVideo:
    """Sampled frames of one video.

    Attributes:
        frames: [T, H, W, 3] uint8 RGB, upright (display rotation applied).
        timestamps: [T] float64, presentation time of each frame in seconds from the stream start.
        duration: length of the video stream in seconds.
        has_audio: whether the container also holds an audio stream.
        path: the source file, when decoded from one.
        notes: what decoding changed or could not do (frames that stop early, converted pixel values); the
            processor adds them to the sample's notes.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    duration: float
    has_audio: bool = False
    path: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(self.frames.shape)}")
        if self.timestamps.shape != (self.frames.shape[0],):
            raise ValueError(
                f"timestamps must have one entry per frame ({self.frames.shape[0]}), "
                f"got shape {tuple(self.timestamps.shape)}"
            )
        if self.frames.shape[0] == 0:
            raise ValueError("a video needs at least one frame, got none")
        if not np.isfinite(self.timestamps).all() or (self.timestamps < 0).any():
            raise ValueError(f"frame timestamps must be finite seconds >= 0, got {self.timestamps.tolist()}")
        if (np.diff(self.timestamps) <= 0).any():
            raise ValueError(f"frame timestamps must increase from frame to frame, got {self.timestamps.tolist()}")


def _import_av():
    try:
        import av
    except ImportError as error:  # keeps the processor importable without PyAV
        raise ImportError(
            "Decoding video or audio files needs PyAV: pip install av"
        ) from error
    return av


def check_media_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, raising a clear error when it is missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: is an empty file (0 bytes), not a media file")
    return path


def open_container(path: str | os.PathLike):
    """Open ``path`` with PyAV, translating FFmpeg's errors into :class:`MediaError`."""
    av = _import_av()
    path = check_media_path(path)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as error:
        reason = getattr(error, "strerror", None) or str(error)
        # `from None`: FFmpeg's own exception chain says nothing more than `reason` does.
        raise MediaError(f"{path}: not a readable media file (FFmpeg: {reason})") from None


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        # Container durations are in AV_TIME_BASE (microseconds).
        return max(float(container.duration) / 1e6, 0.0)
    return None


def _stream_start(stream) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _rotation_of(container, stream) -> int:
    """Display rotation in degrees counter-clockwise, read from the first frame's display matrix."""
    av = _import_av()
    try:
        for frame in container.decode(stream):
            return int(round((frame.rotation or 0) / 90.0)) * 90
    except av.FFmpegError:
        return 0
    return 0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's duration, size, frame rate, rotation and streams without decoding it all."""
    with open_container(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise NoVideoStreamError(f"{path}: has no video stream (streams found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        duration = _stream_duration(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        num_frames = stream.frames or None
        start_time = _stream_start(stream)
        rotation = _rotation_of(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        has_audio = bool(container.streams.audio)
    if duration is None:
        # No stored duration (raw elementary streams): read the packets of a fresh, unseeked container.
        with open_container(path) as container:
            duration, num_frames = _scan_duration(container, container.streams.video[0], fps)
    if rotation % 180:
        width, height = height, width
    return VideoInfo(
        path=str(path),
        duration=float(duration),
        width=int(width),
        height=int(height),
        average_fps=fps,
        num_frames=num_frames,
        rotation=rotation,
        has_audio=has_audio,
        start_time=start_time,
    )


def stream_durations(path: str | os.PathLike) -> list[tuple[str, int, float | None]]:
    """``(kind, index among that kind, seconds or None when the file does not say)`` of every audio and video
    stream, from the container's header (nothing is decoded): a page can refuse a long stream before decoding."""
    out = []
    with open_container(path) as container:
        for kind in ("video", "audio"):
            for index, stream in enumerate(getattr(container.streams, kind)):
                seconds = None
                if stream.duration is not None and stream.time_base is not None:
                    seconds = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    seconds = max(float(container.duration) / 1e6, 0.0)
                out.append((kind, index, seconds))
    return out


def _scan_duration(container, stream, fps: float | None) -> tuple[float, int]:
    """Duration from the packets' timestamps (no decoding); packet count / fps when they have none."""
    start = _stream_start(stream)
    last_end, count = 0.0, 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's final flush packet
            continue
        count += 1
        if packet.pts is not None and packet.time_base is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - start
            last_end = max(last_end, end)
    if last_end == 0.0 and count:
        last_end = count / fps if fps else float(count)
    return last_end, count


def sample_times(duration: float, num_frames: int) -> np.ndarray:
    """Target times of ``num_frames`` uniformly sampled frames: the centres of equal segments.

    Centres rather than segment starts, so that the first and last frames are not the (often
    black or transitional) very first and very last frames of a clip.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    duration = max(float(duration), 0.0)
    return (np.arange(num_frames, dtype=np.float64) + 0.5) * duration / num_frames


def _to_rgb(frame, rotation: int, max_side: int | None) -> np.ndarray:
    if max_side is not None and max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        # Even sizes keep every pixel format's chroma subsampling happy.
        width = max(2, int(round(frame.width * scale / 2)) * 2)
        height = max(2, int(round(frame.height * scale / 2)) * 2)
        frame = frame.reformat(width=width, height=height)
    image = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def decode_video(
    path: str | os.PathLike,
    num_frames: int = 8,
    *,
    times: np.ndarray | None = None,
    max_side: int | None = None,
    seek_gap: float | None = None,
) -> DecodedVideo:
    """Decode ``num_frames`` uniformly sampled frames of the video at ``path``.

    Args:
        path: any file FFmpeg reads with a video stream.
        num_frames: T, the number of frames to sample (ignored when ``times`` is given).
        times: explicit target times in seconds; each target gets the frame nearest to it.
        max_side: downscale frames whose longer side exceeds this (saves memory on 4K video; the
            model resizes to its own input size anyway).
        seek_gap: targets further apart than this many seconds are reached by seeking. Default: the
            keyframe interval read from the container's index (a seek decodes from the keyframe
            before its target, about half an interval on average, so seeking pays off once targets
            are an interval apart), or 8 s without an index.

    A video with fewer distinct frames than targets gives each distinct frame once, so T may be
    smaller than ``num_frames`` (a one-frame video gives one frame). A truncated file gives the
    frames decoded before the damage, with a warning.

    Raises:
        FileNotFoundError: the file does not exist.
        MediaError: not a media file, no video stream, or no decodable frame.
    """
    av = _import_av()
    info = probe_video(path)
    targets = np.sort(np.asarray(times, dtype=np.float64)) if times is not None else sample_times(
        info.duration, num_frames
    )
    if targets.size == 0:
        raise ValueError(f"{path}: no frame times requested")
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        gap = float(np.min(np.diff(targets))) if targets.size > 1 else info.duration
        if seek_gap is None:
            interval = _keyframe_interval(stream)
            seek_gap = max(interval, 0.5) if interval is not None else SEEK_GAP_SECONDS
        notes: list[str] = []
        try:
            if gap > seek_gap:
                picked = _decode_by_seeking(container, stream, targets, info, max_side)
            else:
                if targets[0] > seek_gap:
                    # A later part of a long video (a segment): start at the keyframe before it, not at the
                    # file's start, so that decoding a segment costs its own length, not its position.
                    offset = int((targets[0] + info.start_time) / stream.time_base)
                    container.seek(offset, stream=stream, backward=True, any_frame=False)
                picked = _decode_sequentially(container, stream, targets, info, max_side, notes)
        except av.FFmpegError as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise MediaError(f"{path}: video stream cannot be decoded (FFmpeg: {reason})") from None

    return _distinct_frames(picked, targets.size, info, path, notes)


def _distinct_frames(picked: list, requested: int, info: VideoInfo, path, notes: list[str]) -> DecodedVideo:
    """The decoded ``(time, image)`` pairs as a video of distinct frames (several targets can land on one frame of
    a short or one-frame video), with a note when the frames stop well before the container's duration."""
    if not picked:
        raise MediaError(f"{path}: contains no decodable video frames")
    unique: dict[float, np.ndarray] = {}
    for time, image in picked:
        unique.setdefault(time, image)
    stamps = np.array(sorted(unique), dtype=np.float64)
    frames = np.stack([unique[t] for t in stamps])
    if stamps[-1] + 1.0 < info.duration and len(stamps) < requested:
        message = (
            f"frames stop early: decodable frames end at {stamps[-1]:.2f} s but the container says the video lasts "
            f"{info.duration:.2f} s (the file may be truncated or damaged); {len(stamps)} of {requested} frames"
        )
        logger.warning("%s: %s", path, message)
        notes.append(message)
    return DecodedVideo(
        frames=frames, timestamps=stamps, duration=info.duration, has_audio=info.has_audio, path=str(path),
        notes=notes,
    )  # fmt: skip


def decode_all_frames(path: str | os.PathLike, max_frames: int | None = None, *, max_side: int | None = None) -> DecodedVideo:
    """Every frame of the video at ``path``, each with its presentation time (``do_sample_frames=False``).

    Raises ValueError as soon as the video has more than ``max_frames`` frames (nothing more is decoded).
    """
    av = _import_av()
    info = probe_video(path)
    picked: dict[float, np.ndarray] = {}
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if max_frames is not None and len(picked) >= max_frames:
                    raise ValueError(
                        f"{path}: do_sample_frames=False keeps every frame, and the video has more than the model's "
                        f"max_frames={max_frames}; sample with num_frames or fps"
                    )
                time = round(_frame_time(frame, info.start_time, index, info.average_fps), 6)
                picked.setdefault(time, _to_rgb(frame, info.rotation, max_side))
        except av.FFmpegError as error:
            if not picked:
                reason = getattr(error, "strerror", None) or str(error)
                raise MediaError(f"{path}: video stream cannot be decoded (FFmpeg: {reason})") from None
            logger.warning("%s: decoding stopped early (%s); using the frames decoded so far", path, error)
    if not picked:
        raise MediaError(f"{path}: contains no decodable video frames")
    stamps = np.array(sorted(picked), dtype=np.float64)
    return DecodedVideo(
        frames=np.stack([picked[t] for t in stamps]), timestamps=stamps, duration=info.duration,
        has_audio=info.has_audio, path=str(path),
    )  # fmt: skip


def _keyframe_interval(stream) -> float | None:
    """Median seconds between keyframes, from the container's index (None when it has too few entries)."""
    try:
        entries = stream.index_entries
        stamps = [entry.timestamp for entry in entries if entry.is_keyframe]
    except (AttributeError, TypeError):  # PyAV before index_entries, or a container without an index
        return None
    if len(stamps) == 1 and len(entries) > 1:
        return float("inf")  # one keyframe for the whole stream: every seek would decode from the start
    if len(stamps) < 2 or stream.time_base is None:
        return None
    return float(np.median(np.diff(stamps)) * stream.time_base)


def _frame_time(frame, start: float, index: int, fps: float | None) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base) - start
    # Raw streams without timestamps: fall back to the nominal rate.
    return index / fps if fps else float(index)


def _decode_sequentially(
    container, stream, targets: np.ndarray, info: VideoInfo, max_side: int | None, notes: list[str] | None = None
) -> list[tuple[float, np.ndarray]]:
    av = _import_av()
    picked: list[tuple[float, np.ndarray]] = []
    k = 0
    previous = None  # (time, frame) of the last decoded frame, converted only if chosen
    index = 0
    try:
        for frame in container.decode(stream):
            time = _frame_time(frame, info.start_time, index, info.average_fps)
            index += 1
            while k < targets.size and time >= targets[k]:
                if previous is not None and targets[k] - previous[0] < time - targets[k]:
                    chosen_time, chosen = previous
                else:
                    chosen_time, chosen = time, frame
                picked.append((round(chosen_time, 6), _to_rgb(chosen, info.rotation, max_side)))
                k += 1
            if k >= targets.size:
                break
            previous = (time, frame)
    except av.FFmpegError as error:
        # Damage part-way through (a truncated download): keep what decoded, say so.
        if previous is None and not picked:
            raise
        logger.warning("%s: decoding stopped early (%s); using the frames decoded so far", info.path, error)
        if notes is not None:
            notes.append(f"frames stop early: decoding failed after {index} frames ({error}); the frames decoded so "
                         "far are used")  # fmt: skip
    if k < targets.size and previous is not None:
        # Targets after the last frame (duration rounding, truncation) get the last frame.
        picked.append((round(previous[0], 6), _to_rgb(previous[1], info.rotation, max_side)))
    return picked


def _decode_by_seeking(
    container, stream, targets: np.ndarray, info: VideoInfo, max_side: int | None
) -> list[tuple[float, np.ndarray]]:
    picked: list[tuple[float, np.ndarray]] = []
    time_base = stream.time_base
    for target in targets:
        offset = int((target + info.start_time) / time_base)
        container.seek(offset, stream=stream, backward=True, any_frame=False)
        previous = None
        chosen = None
        for index, frame in enumerate(container.decode(stream)):
            time = _frame_time(frame, info.start_time, index, info.average_fps)
            if time >= target:
                if previous is not None and target - previous[0] < time - target:
                    chosen = previous
                else:
                    chosen = (time, frame)
                break
            previous = (time, frame)
        if chosen is None:
            chosen = previous
        if chosen is not None:
            picked.append((round(chosen[0], 6), _to_rgb(chosen[1], info.rotation, max_side)))
    return picked


def frames_from_array(frames: np.ndarray, timestamps: np.ndarray | None = None, fps: float = 1.0) -> DecodedVideo:
    """Wrap already-decoded frames [T, H, W, 3] (RGB) as a :class:`DecodedVideo`.

    Without ``timestamps`` the frames are taken to be ``1 / fps`` seconds apart. Pixel values follow one of the
    usual conventions, found from the values: uint8 (or integers) 0-255; floats 0-1 or 0-255; floats -1-1
    (normalised, as many video models write them); uint16 0-65535. A conversion other than the plain uint8 one
    is noted; values outside every convention are refused rather than clipped into a wrong picture.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ValueError(f"frames must be a non-empty [T, H, W, 3] RGB array, got shape {tuple(frames.shape)}")
    if frames.dtype == np.bool_ or not np.issubdtype(frames.dtype, np.number) or np.issubdtype(frames.dtype, np.complexfloating):
        raise ValueError(f"frames must hold numbers (uint8 0-255 or floats 0-1), got dtype {frames.dtype}")
    if frames.dtype != np.uint8 and not np.isfinite(frames).all():
        raise ValueError("frames hold NaN or infinite values")
    if timestamps is None:
        timestamps = np.arange(frames.shape[0], dtype=np.float64) / fps
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if timestamps.shape[0] != frames.shape[0]:
        raise ValueError(f"timestamps must have one entry per frame ({frames.shape[0]}), got {timestamps.shape[0]}")
    duration = float(timestamps[-1] + (timestamps[-1] - timestamps[-2] if len(timestamps) > 1 else 1.0 / fps))
    frames, notes = _to_uint8(frames)
    return DecodedVideo(frames=frames, timestamps=timestamps, duration=duration, notes=notes)


def _to_uint8(frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """uint8 RGB from the pixel convention the values follow, and a note when the conversion was not the obvious one."""
    if frames.dtype == np.uint8:
        return frames, []
    low, high = float(frames.min()), float(frames.max())
    described = f"{frames.dtype} frames with values in [{low:g}, {high:g}]"
    if np.issubdtype(frames.dtype, np.integer):
        if low >= 0 and high <= 255:
            return frames.astype(np.uint8), []
        if low >= 0 and high <= 65535:
            message = f"{described} read as 16-bit (0-65535) and scaled to 0-255"
            logger.warning("frames: %s", message)
            return np.round(frames.astype(np.float64) / 257.0).astype(np.uint8), [message]
    else:
        if low >= 0 and high <= 1.0:  # truncating, as this conversion always did
            return (frames * 255.0).astype(np.uint8), []
        if low >= -1.0 and high <= 1.0:
            message = f"{described} read as normalised -1-1 pixels and mapped to 0-255"
            logger.warning("frames: %s", message)
            return np.round((frames.astype(np.float64) + 1.0) * 127.5).astype(np.uint8), [message]
        if low >= 0 and high <= 255.0:
            return frames.astype(np.uint8), []
    raise ValueError(
        f"frames: {described} follow none of the pixel conventions (uint8 or floats 0-255, floats 0-1 or -1-1, "
        "uint16 0-65535); convert them to uint8 RGB"
    )
