"""The audio stage: a sample's sound (the video's own, a file or a waveform) -> 16 kHz mono -> C clips -> features.

The clip layout is ImageBind's (``audio_io.py``); the features are the processor's feature extractor's, by
default an ``ASTFeatureExtractor`` set to ImageBind's fbank recipe (:func:`default_feature_extractor`). A sample
without sound gets zero features and an all-False ``audio_clip_mask``: no audio tokens, and a note saying so.
This file ships to the Hub with the processor; scipy is imported only to resample.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from .audio_io import SAMPLING_RATE, cut_clips, load_audio_for_video, load_audio_stream, resample
from .runtime import get_logger
from .video_io import DecodedVideo, MediaError, NoAudioStreamError, VideoInfo

logger = get_logger("processing")


def as_mono_waveform(audio, source: str, notes: list[str] | None = None) -> np.ndarray:
    """A waveform array as mono float32: [N], or [channels, N] / [N, channels] mixed down (with a note).

    The channel axis is the short one (at most 8 channels); an array whose layout cannot be told apart, a
    non-finite sample or an empty array is refused.
    """
    waveform = np.asarray(audio)
    if not np.issubdtype(waveform.dtype, np.number) or np.issubdtype(waveform.dtype, np.complexfloating):
        raise ValueError(f"{source}: a waveform must hold real numbers, got dtype {waveform.dtype}")
    if np.issubdtype(waveform.dtype, np.integer):
        # PCM samples as read from a WAV file: full scale is the integer type's range, not 1.0.
        if notes is not None:
            notes.append(f"audio: {waveform.dtype.name} samples scaled to [-1, 1]")
        waveform = waveform.astype(np.float32) / (float(np.iinfo(waveform.dtype).max) + 1.0)
    waveform = waveform.astype(np.float32)
    if waveform.ndim == 2 and 1 in waveform.shape:
        waveform = waveform.reshape(-1)
    if waveform.ndim == 2:
        channels_first = waveform.shape[0] <= 8 < waveform.shape[1]
        channels_last = waveform.shape[1] <= 8 < waveform.shape[0]
        if not (channels_first or channels_last):
            raise ValueError(
                f"{source}: a waveform of shape {waveform.shape} has no clear channel axis; give [N] mono samples, "
                "or [channels, N] / [N, channels] with at most 8 channels"
            )
        channels = waveform.shape[0] if channels_first else waveform.shape[1]
        waveform = waveform.mean(axis=0 if channels_first else 1)
        if notes is not None:
            notes.append(f"audio: {channels} channels mixed down to mono")
    if waveform.ndim != 1:
        raise ValueError(f"{source}: a waveform must be [N] or [channels, N], got shape {waveform.shape}")
    if waveform.size == 0:
        raise ValueError(f"{source}: the waveform is empty; pass None for a sample without audio")
    if not np.isfinite(waveform).all():
        raise ValueError(f"{source}: the waveform holds NaN or infinite samples")
    return waveform


def load_sample_audio(
    audio: str | os.PathLike | np.ndarray | None,
    video: DecodedVideo | VideoInfo,
    *,
    sampling_rate: int = SAMPLING_RATE,
    audio_stream: int | None = None,
    notes: list[str],
    source: str = "video",
) -> np.ndarray | None:
    """The sample's waveform at 16 kHz mono: ``audio`` (a file or an array at ``sampling_rate``), else the video
    file's own sound when it has one (of ``video`` only its ``path``, ``duration`` and ``has_audio`` are read: a
    probe is enough); None without sound. Which stream was heard, a mix-down and a missing or
    unusable sound go to ``notes``."""
    waveform = None
    if isinstance(audio, (str, os.PathLike)):
        waveform, described = load_audio_stream(audio, SAMPLING_RATE, stream=audio_stream)
        if "of 1 " not in described:
            notes.append(f"audio: {described} of {audio}")
    elif audio is not None:
        waveform = as_mono_waveform(audio, f"{source}: audio", notes)
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be a whole number of Hz > 0, got {sampling_rate!r}")
        if sampling_rate != SAMPLING_RATE:
            waveform = resample(waveform, sampling_rate, SAMPLING_RATE)
    elif video.path is not None and video.has_audio:
        try:
            # Only the video's span: sound past its end is never decoded (a 1 s clip may carry an hour of audio).
            waveform, described, cut = load_audio_for_video(video.path, video.duration, SAMPLING_RATE, stream=audio_stream)
            notes.extend(cut)
            if "of 1 " not in described:  # several audio tracks: say which one was heard
                notes.append(f"audio: {described}; choose another with the processor's audio_stream")
        except (NoAudioStreamError, MediaError) as error:
            notes.append(f"audio unusable: {error}")
            logger.warning("%s; continuing without audio tokens", error)
    if waveform is not None and waveform.size == 0:
        waveform = None
    if waveform is None:
        notes.append("no audio: no audio tokens")
    return waveform


def clip_features(feature_extractor, clips: Sequence[np.ndarray], layout: str = "imagebind") -> np.ndarray:
    """Features of audio clips: ``"imagebind"`` gives ``[C, 1, 128, frames]``, ``"native"`` the extractor's own."""
    extracted = feature_extractor(list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np")
    name = "input_values" if "input_values" in extracted else "input_features"
    values = np.asarray(extracted[name], dtype=np.float32)
    if layout == "imagebind":
        # AST layout [C, frames, mel] -> ImageBind's [C, 1, mel, frames].
        values = np.transpose(values, (0, 2, 1))[:, None]
    return values


def batch_audio_features(
    feature_extractor, waveforms: Sequence[np.ndarray | None], num_clips: int, layout: str = "imagebind"
) -> dict[str, np.ndarray]:
    """``audio_values`` [B, C, ...] and ``audio_clip_mask`` [B, C] of a batch; a None waveform gives zeros and a
    False mask row."""
    rows = [None if w is None else clip_features(feature_extractor, cut_clips(w, num_clips)[0], layout) for w in waveforms]
    clip_shape = next((row.shape[1:] for row in rows if row is not None), None)
    if clip_shape is None:
        silence = [np.zeros(int(2 * SAMPLING_RATE), np.float32)]
        clip_shape = clip_features(feature_extractor, silence, layout).shape[1:]
    audio_values = np.zeros((len(rows), num_clips, *clip_shape), dtype=np.float32)
    audio_clip_mask = np.zeros((len(rows), num_clips), dtype=bool)
    for b, row in enumerate(rows):
        if row is not None:
            audio_values[b] = row
            audio_clip_mask[b] = True
    return {"audio_values": audio_values, "audio_clip_mask": audio_clip_mask}


def default_feature_extractor():
    """ImageBind's audio features: 128-bin Kaldi fbank, 204 frames, normalised (x + 4.268) / 9.138.

    ``ASTFeatureExtractor`` computes the same Kaldi fbank and normalises with ``(x - mean) / (2 * std)``,
    hence std = 9.138 / 2.
    """
    from transformers import ASTFeatureExtractor

    with warnings.catch_warnings():
        # Kaldi's 128 mel bins on a 512-point FFT leave the lowest filters empty, as ImageBind's own do.
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return ASTFeatureExtractor(num_mel_bins=128, max_length=204, mean=-4.268, std=4.569, do_normalize=True)


__all__ = ["as_mono_waveform", "batch_audio_features", "clip_features", "default_feature_extractor", "load_sample_audio"]
