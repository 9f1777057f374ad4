"""Checks of the processor's per-sample inputs that catch a value of the wrong kind before it is read as another.

Each check names the input and says what was expected: a video given as a number, frames with a batch axis in a
single video's place, landmarks in pixels where face-mesh coordinates (0-1 of the frame) are expected, a
renamed placeholder token. Hub-shipped with the processor: numpy only.
"""

from __future__ import annotations

import os

import numpy as np

# Face-mesh coordinates are fractions of the frame; a face at the border gives values a little outside [0, 1].
# Anything far past that is pixels (or another unit), which would put a "face" on every frame.
LANDMARK_RANGE = (-0.5, 1.5)
_VIDEO_EXPECTED = "a file path, a DecodedVideo, or frames [T, H, W, 3] (uint8 RGB)"


def check_video_source(video: object, source: str) -> None:
    """Refuse what cannot be a video before it reaches a decoder that would complain about something else."""
    if video is None:
        raise ValueError(f"{source}: a video is None; expected {_VIDEO_EXPECTED}")
    if isinstance(video, (str, os.PathLike)):
        if isinstance(video, str) and not video.strip():
            raise ValueError(f"{source}: the video path is an empty string; expected {_VIDEO_EXPECTED}")
        return
    if isinstance(video, (bool, int, float, complex, bytes, dict, set, np.generic)) or (
        isinstance(video, np.ndarray) and video.ndim == 0
    ):
        raise TypeError(f"{source}: the video is {type(video).__name__} {video!r:.60}; expected {_VIDEO_EXPECTED}")


def check_video_frames(frames: np.ndarray, source: str) -> None:
    """One video's frames are [T, H, W, 3] (or one frame [H, W, 3]); a 5-D array is a batch of videos."""
    shape = tuple(np.shape(frames))
    if len(shape) == 5:
        raise ValueError(
            f"{source}: frames of shape {shape} are a batch of videos (5-D); one video is [T, H, W, 3]. Give one "
            "video per sample (a list of videos, or one conversation each)"
        )
    if len(shape) not in (3, 4) or shape[-1] != 3:
        raise ValueError(f"{source}: frames of shape {shape}; expected one video as [T, H, W, 3] RGB")


def check_landmarks(landmarks: np.ndarray, num_frames: int, source: str) -> np.ndarray:
    """Landmarks as float32 [T, N, 2|3] face-mesh points in frame fractions (NaN rows: no face); else a ValueError."""
    try:
        points = np.asarray(landmarks, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: landmarks must be a numeric array [T={num_frames}, 478, 2 or 3]") from None
    if points.ndim != 3 or points.shape[0] != num_frames or points.shape[2] not in (2, 3) or points.shape[1] < 1:
        raise ValueError(f"{source}: landmarks must be [T={num_frames}, 478, 2 or 3], got {tuple(points.shape)}")
    xy = points[..., :2]
    finite = xy[np.isfinite(xy)]
    if np.isinf(xy).any():
        raise ValueError(f"{source}: landmarks hold infinite values; use NaN rows for frames without a face")
    if finite.size and (finite.min() < LANDMARK_RANGE[0] or finite.max() > LANDMARK_RANGE[1]):
        raise ValueError(
            f"{source}: landmark x/y values span [{finite.min():g}, {finite.max():g}]; expected face-mesh coordinates "
            "as fractions of the frame width and height (0-1). Pixels? Divide x by the width and y by the height"
        )
    return points


def check_placeholder_tokens(tokenizer, chat_template: str | None, defaults: dict[str, str]) -> None:
    """At load: each placeholder (``video_token``, ``audio_token``) is one known token of the tokenizer, text holding
    it tokenises to exactly that id, and the chat template writes that same string, so that a renamed or missing
    placeholder is named here instead of failing later on some prompt's text.

    ``defaults`` maps each attribute name to the placeholder used when the tokenizer has no such attribute.
    """
    for name, default in defaults.items():
        token = getattr(tokenizer, name, None) or default
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == getattr(tokenizer, "unk_token_id", None):
            raise ValueError(f"the tokenizer has no {token} token ({name}): add it as a special token first")
        pieces = tokenizer.encode(f"a {token} b", add_special_tokens=False)
        if pieces.count(token_id) != 1:
            raise ValueError(
                f"the tokenizer splits its {name} {token!r} into pieces instead of the single id {token_id}: add it "
                "with tokenizer.add_special_tokens so that it stays one token"
            )
        if chat_template and "<" + default.strip("<>") + ">" in chat_template and token not in chat_template:
            raise ValueError(
                f"the tokenizer's {name} is {token!r}, but the chat template writes {default!r}: rename the token "
                f"back, or write {token!r} in the chat template"
            )
