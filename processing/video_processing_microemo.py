"""MicroEmoVideoProcessor: a video (file, frame array or DecodedVideo) -> sampled frames with their times -> pixels.

The first stage of :class:`MicroEmoProcessor`, and a transformers 5 video processor of its own
(``BaseVideoProcessor``, loadable with ``AutoVideoProcessor.from_pretrained(..., trust_remote_code=True)``):

- decoding and sampling: PyAV (``video_io.py``) at ``num_frames`` frames or ``fps`` frames per second, each frame
  with its own presentation time, display rotation applied;
- pixel values: InstructBLIP's frame preprocessing (square bicubic resize without cropping, CLIP mean / std),
  ``[B, T, 3, S, S]`` with a ``frame_mask`` ``[B, T]`` for videos of different lengths.

This file ships to the Hub with the processor (flat, relative imports only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from transformers import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .input_checks import check_video_source
from .video_io import (
    DecodedVideo,
    decode_all_frames,
    decode_video,
    frames_from_array,
    probe_video,
    sample_times,
)

# MicroEmo's keyword beside transformers' VideosKwargs: seconds of each given frame (for frame arrays; default
# ``video_metadata``'s fps, else 1 fps). Not a TypedDict subclass: this file is remote code, which datasets'
# fingerprint pickles by value, and a TypedDict's key sets are frozensets whose order changes between processes.
EXTRA_VIDEO_KWARGS = ("frame_timestamps",)


def _is_frame(value) -> bool:
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        return value.ndim == 3
    return type(value).__module__.startswith("PIL.")


def video_list(videos) -> tuple[list, bool]:
    """Videos as a list of one entry per sample, and whether a single video was given.

    Accepts one video or a list; transformers' nested form (a list of videos per sample) is accepted with one
    video per sample, and a list of frames (arrays [H, W, 3] / [3, H, W] or PIL images) is one video.
    """
    if type(videos).__module__.startswith("torch"):
        videos = videos.numpy()
    if isinstance(videos, np.ndarray) and videos.ndim == 5:
        return list(videos), False
    if not isinstance(videos, (list, tuple)):
        return [videos], True
    if videos and all(_is_frame(v) for v in videos):
        return [np.stack([np.asarray(v) for v in videos])], True
    out = []
    for index, video in enumerate(videos):
        if isinstance(video, (list, tuple)):
            if video and all(_is_frame(v) for v in video):
                video = np.stack([np.asarray(v) for v in video])
            elif len(video) == 1:
                video = video[0]
            else:
                raise ValueError(f"sample {index}: MicroEmo takes one video per sample, got {len(video)}")
        out.append(video)
    return out, False


def channels_last(frames: np.ndarray, input_data_format: str | None = None, source: str = "video") -> np.ndarray:
    """Frames [T, H, W, 3] from [T, H, W, 3] or channels-first [T, 3, H, W] (``input_data_format`` decides an
    ambiguous shape; without it, a last axis of 3 means channels last)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    layout = getattr(input_data_format, "value", input_data_format)
    if layout not in (None, "channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}")
    if frames.ndim == 4 and frames.shape[1] == 3 and (layout == "channels_first" or (layout is None and frames.shape[-1] != 3)):
        return np.ascontiguousarray(np.transpose(frames, (0, 2, 3, 1)))
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{source}: frames must be [T, H, W, 3] or [T, 3, H, W] RGB, got shape {tuple(frames.shape)}")
    return frames


def _metadata_timestamps(metadata, count: int) -> np.ndarray | None:
    """Frame times from transformers' ``VideoMetadata`` (or its dict): its fps and frame indices."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ValueError(f"video_metadata must be a VideoMetadata or a dict, got {type(metadata).__name__}")
    fps = metadata.get("fps")
    if not fps:
        return None
    indices = metadata.get("frames_indices")
    indices = np.arange(count) if indices is None else np.asarray(indices, dtype=np.float64)
    if indices.shape != (count,):
        raise ValueError(f"video_metadata: {len(indices)} frames_indices for {count} frames")
    return indices / float(fps)


class MicroEmoVideoProcessor(BaseVideoProcessor):
    r"""Decodes and samples videos, keeps each frame's time, and makes the vision encoder's pixel values.

    Sampling (``num_frames``, ``fps``, ``do_sample_frames``, as transformers' video processors take them):
        - ``num_frames`` (default 8): T frames at the centres of T equal segments of the video.
        - ``fps``: ``round(duration * fps)`` frames (at least 1) at the centres of equal segments, so 1 fps on a
          5 s clip gives frames at 0.5, 1.5, ... 4.5 s. ``num_frames`` and ``fps`` are exclusive.
        - ``do_sample_frames``: None (default) samples files and keeps frames you pass as they are, unless the
          call names ``num_frames`` or ``fps``; True samples every video, given frames too (nearest frame to each
          target time); False samples nothing (a file gives every frame) and refuses ``num_frames`` / ``fps``.
        - ``max_frames`` (default 32, the model's limit): a sampling with more frames is refused.
    Each frame keeps its own presentation time (variable frame rate stays right), upright (display rotation
    applied). Pixel values: square bicubic resize to ``size`` (no crop, so normalised face landmarks map onto
    the patch grid unchanged), rescale, CLIP mean / std, as InstructBLIP's image processor.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"height": 224, "width": 224}
    default_to_square = True
    do_resize = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_center_crop = False
    do_sample_frames = None
    num_frames = 8
    fps = None
    max_frames = 32
    valid_kwargs = VideosKwargs
    model_input_names = ["pixel_values", "frame_mask"]

    def __init__(self, max_frames: int | None = 32, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_frames = max_frames
        self.check_sampling(self.num_frames, self.fps, self.do_sample_frames)
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or int(self.max_frames) < 1):
            raise ValueError(f"max_frames must be a whole number >= 1, got {self.max_frames!r}")

    def __getstate__(self) -> dict:
        # transformers sets the attributes in the order of a set of names, which follows the process's string
        # hashing: sorted, the pickle (and datasets' fingerprint of a processor) is the same in every process.
        return dict(sorted(self.__dict__.items()))

    @property
    def image_size(self) -> int:
        """The square side frames are resized to."""
        height, width = self.size["height"], self.size["width"]
        if height != width:
            raise ValueError(f"the video processor must resize to a square, got {height} x {width}")
        return int(height)

    @staticmethod
    def check_sampling(num_frames, fps, do_sample_frames) -> None:
        """Refuse a frame count or rate that is not a positive number, and both at once."""
        if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer))
                                       or num_frames < 1):  # fmt: skip
            raise ValueError(f"num_frames must be a whole number >= 1 (or None for the default), got {num_frames!r}")
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
            raise ValueError(f"fps must be a number of frames per second > 0, got {fps!r}")
        if do_sample_frames not in (None, True, False):
            raise ValueError(f"do_sample_frames must be None, True or False, got {do_sample_frames!r}")

    def _target_times(self, duration: float, num_frames, fps, source: str) -> np.ndarray:
        if fps is not None:
            count = max(1, int(round(duration * fps)))
            if self.max_frames is not None and count > self.max_frames:
                raise ValueError(
                    f"{source}: fps={fps} on {duration:.2f} s gives {count} frames, more than the model's "
                    f"max_frames={self.max_frames}; lower fps or give num_frames"
                )
            return sample_times(duration, count)
        count = int(num_frames if num_frames is not None else self.num_frames)
        if self.max_frames is not None and count > self.max_frames:
            raise ValueError(f"num_frames={count} is more than the model's max_frames={self.max_frames}")
        return sample_times(duration, count)

    def sampling_request(self, video, num_frames=None, fps=None, do_sample_frames=None, duration: float | None = None):
        """Check a request to :meth:`fetch_video` before anything is read: the video argument, the sampling keywords
        and, for a file (with its ``duration`` when known), the model's frame limit. Returns the resolved
        ``(num_frames, fps, do_sample_frames)``: without either count, the default ``fps`` (None: ``num_frames``)."""
        do_sample_frames = self.do_sample_frames if do_sample_frames is None else do_sample_frames
        self.check_sampling(num_frames, fps, do_sample_frames)
        if num_frames is not None and fps is not None:
            raise ValueError("num_frames and fps are exclusive: give one of them")
        if do_sample_frames is False and (num_frames is not None or fps is not None):
            raise ValueError("num_frames / fps sample frames, but do_sample_frames=False asks for none to be sampled")
        if fps is None and num_frames is None and do_sample_frames is not False:
            fps = self.fps
        check_video_source(video, "video")  # a number or None is named as a video, not as a frame shape
        if isinstance(video, (str, os.PathLike)) and do_sample_frames is not False:
            if fps is None:
                self._target_times(0.0, num_frames, None, str(video))  # the frame limit, before decoding
            elif duration is not None:
                self._target_times(duration, None, fps, str(video))
        return num_frames, fps, do_sample_frames

    def fetch_video(
        self,
        video: str | os.PathLike | DecodedVideo | np.ndarray,
        *,
        num_frames: int | None = None,
        fps: float | None = None,
        do_sample_frames: bool | None = None,
        frame_timestamps: Sequence[float] | np.ndarray | None = None,
        video_metadata: VideoMetadata | dict | None = None,
        input_data_format: str | None = None,
    ) -> DecodedVideo:
        """One video as sampled frames with their times (see the class docstring for the sampling rules)."""
        num_frames, fps, do_sample_frames = self.sampling_request(video, num_frames, fps, do_sample_frames)
        if isinstance(video, (str, os.PathLike)):
            return self._decode_file(str(video), num_frames, fps, do_sample_frames)
        if isinstance(video, DecodedVideo):
            decoded = video
        else:
            if type(video).__module__.startswith("torch"):
                video = video.numpy()
            frames = channels_last(video, input_data_format)
            if frame_timestamps is None:
                frame_timestamps = _metadata_timestamps(video_metadata, frames.shape[0])
            decoded = frames_from_array(frames, frame_timestamps)
        explicit = num_frames is not None or fps is not None
        if do_sample_frames or (do_sample_frames is None and explicit):
            decoded = self._sample_decoded(decoded, num_frames, fps)
        if self.max_frames is not None and decoded.frames.shape[0] > self.max_frames:
            raise ValueError(f"{decoded.path or 'video'}: {decoded.frames.shape[0]} frames, more than max_frames={self.max_frames}")
        return decoded

    def _decode_file(self, path: str, num_frames, fps, do_sample_frames) -> DecodedVideo:
        if do_sample_frames is False:
            return decode_all_frames(path, self.max_frames)
        if fps is None:
            return decode_video(path, int(num_frames if num_frames is not None else self.num_frames))
        return decode_video(path, times=self._target_times(probe_video(path).duration, None, fps, path))

    def _sample_decoded(self, video: DecodedVideo, num_frames, fps) -> DecodedVideo:
        """Frames nearest to the target times, each once (as decoding a file does)."""
        start = float(video.timestamps[0])
        targets = start + self._target_times(video.duration - start, num_frames, fps, video.path or "video")
        nearest = np.abs(video.timestamps[None, :] - targets[:, None]).argmin(axis=1)
        keep = np.unique(nearest)
        return DecodedVideo(video.frames[keep], video.timestamps[keep], video.duration, video.has_audio, video.path,
                            notes=list(video.notes))  # fmt: skip

    def pixel_values(self, frames: np.ndarray, **kwargs) -> np.ndarray:
        """Frames [T, H, W, 3] uint8 -> [T, 3, S, S] float32 (``do_rescale=False, do_normalize=False`` give the
        resized 0-255 values)."""
        import torch

        options = {key: kwargs.get(key, getattr(self, key)) for key in (
            "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
            "do_normalize", "image_mean", "image_std",
        )}  # fmt: skip
        options = self._standardize_kwargs(**options)
        video = torch.from_numpy(np.ascontiguousarray(np.transpose(frames, (0, 3, 1, 2))))
        out = self._preprocess([video], return_tensors=None, **options)["pixel_values_videos"][0]
        return np.asarray(out.float().numpy(), dtype=np.float32)

    def preprocess(self, videos, **kwargs) -> BatchFeature:
        """Sample each video and make ``pixel_values`` [B, T, 3, S, S] and ``frame_mask`` [B, T] (videos shorter
        than the longest are padded with zeros, masked out). ``return_metadata=True`` adds ``video_metadata``:
        per video a ``VideoMetadata`` whose ``timestamps`` are the frames' own times."""
        allowed = {*self.valid_kwargs.__annotations__, *EXTRA_VIDEO_KWARGS, "return_tensors"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {unknown}; it takes {sorted(allowed)}")
        listed, _ = video_list(videos)
        per_video = {key: kwargs.pop(key, None) for key in ("frame_timestamps", "video_metadata")}
        for key, value in per_video.items():
            if len(listed) == 1 and not (isinstance(value, list) and len(value) == 1 and key == "video_metadata"):
                per_video[key] = [value]
            elif value is None:
                per_video[key] = [None] * len(listed)
            elif len(value) != len(listed):
                raise ValueError(f"`{key}` must hold one entry per video ({len(listed)})")
        sampling = {key: kwargs.pop(key, None) for key in ("num_frames", "fps", "do_sample_frames", "input_data_format")}
        return_tensors, return_metadata = kwargs.pop("return_tensors", None), kwargs.pop("return_metadata", False)
        decoded = [
            self.fetch_video(video, frame_timestamps=stamps, video_metadata=meta, **sampling)
            for video, stamps, meta in zip(listed, per_video["frame_timestamps"], per_video["video_metadata"], strict=True)
        ]
        data = self.batch_pixel_values(decoded, **kwargs)
        features = BatchFeature(data, tensor_type=return_tensors)
        if return_metadata:
            features["video_metadata"] = [video_metadata_of(video) for video in decoded]
        return features

    def batch_pixel_values(self, videos: Sequence[DecodedVideo], **kwargs) -> dict[str, np.ndarray]:
        """``pixel_values`` [B, T_max, 3, S, S] and ``frame_mask`` [B, T_max] of decoded videos."""
        t_max = max(video.frames.shape[0] for video in videos)
        size = int(kwargs["size"]["height"]) if "size" in kwargs else self.image_size
        pixel_values = np.zeros((len(videos), t_max, 3, size, size), dtype=np.float32)
        frame_mask = np.zeros((len(videos), t_max), dtype=bool)
        for b, video in enumerate(videos):
            t = video.frames.shape[0]
            pixel_values[b, :t] = self.pixel_values(video.frames, **kwargs)
            frame_mask[b, :t] = True
        return {"pixel_values": pixel_values, "frame_mask": frame_mask}


def video_metadata_of(video: DecodedVideo) -> VideoMetadata:
    """transformers' ``VideoMetadata`` of a decoded video; its ``timestamps`` are the frames' presentation times
    only on constant-rate video, so the true times ride along as ``frame_timestamps``."""
    metadata = VideoMetadata(
        total_num_frames=int(video.frames.shape[0]),
        fps=None,
        width=int(video.frames.shape[2]),
        height=int(video.frames.shape[1]),
        duration=float(video.duration),
        video_backend="pyav" if video.path else None,
    )
    metadata.frame_timestamps = [float(t) for t in video.timestamps]
    return metadata


__all__ = ["MicroEmoVideoProcessor"]
