"""The face-clue stage: sampled frames (or given landmarks, or given masks) -> facial clue masks on the patch grid.

Landmarks come from mediapipe's face mesh (``face_mesh.py``, in a worker process of its own), from the landmark
cache (``landmark_cache.py``) or from the caller; ``face_regions.py`` rasterises each clue region (eyes, brows,
mouth, ...) onto the vision encoder's patch grid. A frame without a face gets all-False masks and
``face_found = False``: the model's global path only. This file ships to the Hub with the processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .face_mesh import detect_landmarks, shared_worker
from .face_regions import rasterize_clue_masks
from .landmark_cache import CachedFaces, LandmarkCache
from .video_io import DecodedVideo


@dataclass
class FaceClues:
    """What the stage found on T frames.

    Attributes:
        landmarks: [T, 478, 2|3] normalised face-mesh points (NaN where no face); None when masks were given.
        face_found: [T] bool.
        clue_masks: [T, R, P] bool, one mask per clue region on the P-patch grid.
    """

    landmarks: np.ndarray | None
    face_found: np.ndarray
    clue_masks: np.ndarray


@dataclass
class FaceClueStage:
    """Settings of the stage (the processor's, see :class:`MicroEmoProcessor`); calling it runs the stage.

    ``sampling`` names how the frames were sampled (``{"num_frames": 8}`` or ``{"fps": 1.0}``): with the file's
    bytes and the landmark backend it keys the landmark cache.
    """

    image_size: int
    patch_size: int
    clue_regions: Sequence[str]
    min_patch_coverage: float = 0.1
    face_landmarker_path: str | None = None
    cache_dir: str | None = None

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def __call__(
        self,
        video: DecodedVideo,
        *,
        landmarks: np.ndarray | None = None,
        clue_masks: np.ndarray | None = None,
        sampling: dict | None = None,
        source: str = "video",
    ) -> FaceClues:
        t = video.frames.shape[0]
        if clue_masks is not None:
            masks, face_found = self._given_masks(clue_masks, t, source)
            return FaceClues(None, face_found, masks)
        if landmarks is not None:
            points = np.asarray(landmarks, dtype=np.float32)
            if points.ndim != 3 or points.shape[0] != t:
                raise ValueError(f"{source}: landmarks must be [T={t}, 478, 2 or 3], got {tuple(points.shape)}")
            face_found = np.isfinite(points[..., :2]).all(axis=(1, 2))
        else:
            points, face_found = self.detect(video, sampling)
        masks = rasterize_clue_masks(
            np.nan_to_num(points), face_found, self.image_size, self.patch_size, list(self.clue_regions),
            self.min_patch_coverage,
        )  # fmt: skip
        return FaceClues(points, face_found, masks)

    def _given_masks(self, clue_masks, t: int, source: str) -> tuple[np.ndarray, np.ndarray]:
        masks = np.asarray(clue_masks)
        if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
            raise ValueError(f"{source}: clue_masks must be boolean (or 0/1), got values other than 0 and 1")
        masks = masks.astype(bool)
        if masks.ndim != 3 or masks.shape[0] != t or masks.shape[-1] != self.num_patches:
            raise ValueError(f"{source}: clue_masks must be [T={t}, R, P={self.num_patches}], got {tuple(masks.shape)}")
        return masks, masks.any(axis=(1, 2))

    def detect(self, video: DecodedVideo, sampling: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Face-mesh landmarks and face flags of the frames, through the landmark cache when there is one."""
        # A worker process per process, started on first use and never pickled (see face_mesh.py).
        backend = shared_worker(self.face_landmarker_path)
        if video.path is None or not self.cache_dir:
            return detect_landmarks(video.frames, backend)
        cache = LandmarkCache(self.cache_dir)
        key = cache.key(video.path, {**(sampling or {}), "backend": self.face_landmarker_path or "legacy"})
        hit = cache.get(key)
        if hit is not None and hit.timestamps.shape == video.timestamps.shape and np.allclose(hit.timestamps, video.timestamps):
            return hit.landmarks, hit.face_found
        landmarks, found = detect_landmarks(video.frames, backend)
        cache.put(key, CachedFaces(video.timestamps, landmarks, found))
        return landmarks, found


__all__ = ["FaceClueStage", "FaceClues"]
