"""An on-disk cache of sampled frame times, face landmarks and face flags, so a dataset is face-meshed once.

Entries are keyed by the SHA-256 of the video file's bytes (a renamed or copied file still hits, an
edited one misses) and by every setting that changes the result: the number of frames or the
explicit times, and the landmark backend. Each entry is one ``.npz`` written to a temporary file in
the same folder and then renamed into place, so a crash never leaves a half-written entry.

Hub-shipped with the processor: numpy only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_HASH_CHUNK = 1 << 20
# (resolved path, size, mtime) -> content digest, for this process: hash every file once, however
# many LandmarkCache objects look at it.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks (a long video never sits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CachedFaces:
    """One cache entry: frame times and the landmarks found on those frames."""

    timestamps: np.ndarray  # [T] float64
    landmarks: np.ndarray  # [T, 478, 3] float32, NaN where no face
    face_found: np.ndarray  # [T] bool


class LandmarkCache:
    """Landmarks per (video content, sampling settings), stored under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def key(self, video_path: str | os.PathLike, settings: dict) -> str:
        """Content hash of the file + a hash of the settings (JSON with sorted keys)."""
        path = Path(video_path)
        stat = path.stat()
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in _DIGESTS:
            _DIGESTS[memo] = file_digest(path)
        settings_text = json.dumps(settings, sort_keys=True, default=str)
        return f"{_DIGESTS[memo]}-{hashlib.sha256(settings_text.encode()).hexdigest()[:16]}"

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> CachedFaces | None:
        """The entry for ``key``, or None (also for an unreadable entry, which is then recomputed)."""
        path = self._entry(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return CachedFaces(
                    timestamps=data["timestamps"], landmarks=data["landmarks"], face_found=data["face_found"]
                )
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, entry: CachedFaces) -> Path:
        """Write atomically: a temporary file in the same folder, then ``os.replace``."""
        path = self._entry(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(
                    out,
                    timestamps=np.asarray(entry.timestamps, np.float64),
                    landmarks=np.asarray(entry.landmarks, np.float32),
                    face_found=np.asarray(entry.face_found, bool),
                )
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
