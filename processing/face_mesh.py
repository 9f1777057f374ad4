"""Face-mesh landmarks (478 points) per frame with MediaPipe, offline.

Two backends:
- :class:`LegacyFaceMesh` (default): mediapipe 0.10.21's ``solutions.face_mesh``, whose models ship
  inside the wheel, so it runs with no download.
- :class:`TasksFaceLandmarker`: mediapipe's Tasks ``FaceLandmarker``, for mediapipe >= 0.10.30
  (which dropped the legacy API); needs a ``face_landmarker.task`` file that the user supplies.

Both return the same landmark indices. ``backend(frame)`` keeps the largest face (by landmark bounding-box
area); ``backend.faces(frame)`` and :func:`detect_all_faces` keep every face, for tracking people across
frames (``face_tracking.py``). A frame with no face gives NaN landmarks and ``face_found = False``.

The processor runs the backend in a worker process of its own (:class:`FaceMeshWorker`): a process
in which a mediapipe graph has been created cannot fork a child that creates another one (it aborts in
malloc), and ``datasets.map(num_proc=N)`` and DataLoader workers fork. The worker also keeps
mediapipe's C++ log lines (TFLite, absl) off the user's terminal; set ``MICROEMO_MEDIAPIPE_LOGS=1`` to
see them.

Hub-shipped with the processor: mediapipe is imported lazily, inside ``try`` blocks.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .face_regions import NUM_LANDMARKS
from .runtime import ProcessLocalCache

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is a dependency of transformers, but stay importable without it

    def tqdm(iterable, **_):
        return iterable


def _import_mediapipe():
    try:
        import mediapipe
    except ImportError as error:
        raise ImportError(
            "Face landmarks need mediapipe: pip install mediapipe==0.10.21 'numpy<2' 'protobuf<5' (the last "
            "release whose wheel ships the face-mesh models, so it runs offline), or pass landmarks / clue_masks"
        ) from error
    return mediapipe


def largest_face(faces: Sequence[np.ndarray]) -> np.ndarray | None:
    """The face ([478, 3] normalised) with the largest landmark bounding box, or None."""
    if not faces:
        return None
    areas = [float(np.ptp(f[:, 0]) * np.ptp(f[:, 1])) for f in faces]
    return faces[int(np.argmax(areas))]


class LegacyFaceMesh:
    """mediapipe's legacy face mesh (models inside the 0.10.21 wheel: fully offline).

    ``static_image_mode=True`` because sampled frames are seconds apart: tracking between them would
    only carry a stale face forward.
    """

    name = "legacy"

    def __init__(self, max_faces: int = 4, min_detection_confidence: float = 0.5) -> None:
        mp = _import_mediapipe()
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "face_mesh"):
            raise ImportError(
                f"mediapipe {getattr(mp, '__version__', '?')} has no legacy face mesh (removed in 0.10.30); "
                "install mediapipe==0.10.21 or use TasksFaceLandmarker with a face_landmarker.task file"
            )
        self._mesh = solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,  # adds the 10 iris points: 478 like the Tasks API
            min_detection_confidence=min_detection_confidence,
        )

    def faces(self, frame: np.ndarray) -> list[np.ndarray]:
        """Every face found on ``frame``: [478, 3] normalised landmarks each."""
        result = self._mesh.process(np.ascontiguousarray(frame, dtype=np.uint8))
        found = result.multi_face_landmarks or []
        return [np.array([[p.x, p.y, p.z] for p in face.landmark], dtype=np.float32) for face in found]

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        return largest_face(self.faces(frame))

    def close(self) -> None:
        self._mesh.close()


class TasksFaceLandmarker:
    """mediapipe Tasks ``FaceLandmarker`` from a user-supplied ``face_landmarker.task`` model file."""

    name = "tasks"

    def __init__(self, model_path: str | os.PathLike, max_faces: int = 4) -> None:
        mp = _import_mediapipe()
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: no such face landmarker model (a face_landmarker.task file)")
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as error:
            raise ImportError("this mediapipe has no Tasks API (mediapipe.tasks.python.vision)") from error
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces,
        )
        self._mp = mp
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def faces(self, frame: np.ndarray) -> list[np.ndarray]:
        """Every face found on ``frame``: [478, 3] normalised landmarks each."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame, dtype=np.uint8))
        result = self._landmarker.detect(image)
        return [np.array([[p.x, p.y, p.z] for p in face], dtype=np.float32) for face in result.face_landmarks]

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        return largest_face(self.faces(frame))

    def close(self) -> None:
        self._landmarker.close()


def make_backend(face_landmarker_path: str | os.PathLike | None = None, max_faces: int = 4):
    """The Tasks backend when a model file is given, else the offline legacy face mesh (in this process)."""
    if face_landmarker_path:
        return TasksFaceLandmarker(face_landmarker_path, max_faces=max_faces)
    return LegacyFaceMesh(max_faces=max_faces)


# --------------------------------------------------------------------------------------------------
# The backend in a worker process. Messages on the worker's stdin / stdout are pickles with an 8-byte
# length in front: requests are frame arrays [T, H, W, 3] (the largest face per frame) or ("all", frames)
# (every face per frame), replies ("ok", landmarks, found), ("ok", faces per frame, None) or
# ("error", exception class name, message).

_LENGTH = struct.Struct("<Q")
_BOOT = "import importlib, json, sys; sys.path[:0] = json.loads(sys.argv[2]); importlib.import_module(sys.argv[1])._serve()"
_WORKERS = ProcessLocalCache()


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    return pickle.loads(stream.read(_LENGTH.unpack(head)[0]))


def _serve() -> None:
    """The worker's main loop (runs in the child process started by :class:`FaceMeshWorker`)."""
    replies = os.fdopen(os.dup(1), "wb")
    requests = sys.stdin.buffer
    # Whatever mediapipe or TFLite print must not corrupt the replies, nor (by default) reach the user.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    if os.environ.get("MICROEMO_MEDIAPIPE_LOGS", "0") in ("", "0"):
        os.dup2(quiet, 2)
    settings = _receive(requests)
    try:
        backend = make_backend(settings["face_landmarker_path"], settings["max_faces"])
        _send(replies, ("ok", None, None))
    except Exception as error:  # reported to the parent, which raises it
        _send(replies, ("error", type(error).__name__, str(error)))
        return
    while True:
        try:
            frames = _receive(requests)
        except EOFError:
            break
        try:
            if isinstance(frames, tuple) and frames[0] == "all":
                _send(replies, ("ok", detect_all_faces(frames[1], backend), None))
            else:
                _send(replies, ("ok", *detect_landmarks(frames, backend)))
        except Exception as error:
            _send(replies, ("error", type(error).__name__, str(error)))
    backend.close()


class FaceMeshWorker:
    """A face-mesh backend (:func:`make_backend`) running in a child process of its own.

    The child is a fresh interpreter (not a fork), so it works in any process, including a DataLoader
    or ``datasets.map`` worker forked from a process that has used mediapipe. It ends when this object
    is closed or its parent exits.
    """

    def __init__(self, face_landmarker_path: str | os.PathLike | None = None, max_faces: int = 4) -> None:
        import json

        _import_mediapipe()  # fail here, with the install hint, rather than in the child
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, __name__, json.dumps([p for p in sys.path if isinstance(p, str)])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        settings = {"face_landmarker_path": str(face_landmarker_path) if face_landmarker_path else None}
        self._request({**settings, "max_faces": max_faces})

    def _request(self, message):
        with self._lock:
            try:
                _send(self._process.stdin, message)
                reply = _receive(self._process.stdout)
            except (EOFError, BrokenPipeError):
                code = self._process.poll()
                raise RuntimeError(
                    f"the face-mesh worker process ended unexpectedly (exit code {code}); "
                    "set MICROEMO_MEDIAPIPE_LOGS=1 to see what it printed"
                ) from None
        if reply[0] == "error":
            errors = {"FileNotFoundError": FileNotFoundError, "ImportError": ImportError, "ValueError": ValueError}
            raise errors.get(reply[1], RuntimeError)(f"face mesh: {reply[2]}")
        return reply[1:]

    def landmarks(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``detect_landmarks(frames)`` in the worker: ([T, 478, 3] float32 with NaN rows, [T] bool)."""
        return self._request(np.ascontiguousarray(frames, dtype=np.uint8))

    def all_faces(self, frames: np.ndarray) -> list[list[np.ndarray]]:
        """``detect_all_faces(frames)`` in the worker: per frame, the [478, 3] landmarks of every face."""
        return self._request(("all", np.ascontiguousarray(frames, dtype=np.uint8)))[0]

    def faces(self, frame: np.ndarray) -> list[np.ndarray]:
        return self.all_faces(np.asarray(frame)[None])[0]

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        landmarks, found = self.landmarks(np.asarray(frame)[None])
        return landmarks[0] if found[0] else None

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()


def shared_worker(face_landmarker_path: str | os.PathLike | None = None) -> FaceMeshWorker:
    """This process's :class:`FaceMeshWorker` for a backend setting, started on first use."""
    key = str(face_landmarker_path or "legacy")
    if key not in _WORKERS:
        _WORKERS[key] = FaceMeshWorker(face_landmarker_path)
    return _WORKERS[key]


def detect_landmarks(
    frames: np.ndarray,
    backend=None,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of the largest face in every frame.

    Args:
        frames: [T, H, W, 3] uint8 RGB.
        backend: a callable frame -> [478, 3] or None (default: :class:`LegacyFaceMesh`).
        progress: show a progress bar.

    Returns:
        landmarks [T, 478, 3] float32 (x, y normalised to the frame, z relative depth; NaN where no
        face) and face_found [T] bool.
    """
    if isinstance(backend, FaceMeshWorker):
        return backend.landmarks(frames)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(frames.shape)}")
    own_backend = backend is None
    backend = backend or LegacyFaceMesh()
    landmarks = np.full((frames.shape[0], NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    found = np.zeros(frames.shape[0], dtype=bool)
    try:
        for t, frame in enumerate(tqdm(frames, desc="face mesh", unit="frame", disable=not progress)):
            face = backend(frame)
            if face is not None and face.shape[0] >= NUM_LANDMARKS:
                landmarks[t] = face[:NUM_LANDMARKS, :3]
                found[t] = True
    finally:
        if own_backend:
            backend.close()
    return landmarks, found


def detect_all_faces(frames: np.ndarray, backend=None) -> list[list[np.ndarray]]:
    """Every face on every frame: per frame a list of [478, 3] float32 landmarks (x, y normalised), in the
    backend's order. ``backend`` has a ``faces(frame)`` method (default: :class:`LegacyFaceMesh` with up to 4
    faces)."""
    if isinstance(backend, FaceMeshWorker):
        return backend.all_faces(frames)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(frames.shape)}")
    own_backend = backend is None
    backend = backend or LegacyFaceMesh()
    try:
        per_frame = []
        for frame in frames:
            per_frame.append([face[:NUM_LANDMARKS, :3] for face in backend.faces(frame) if face.shape[0] >= NUM_LANDMARKS])
        return per_frame
    finally:
        if own_backend:
            backend.close()


def face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of one face's landmarks, normalised."""
    xy = landmarks[:, :2]
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())
