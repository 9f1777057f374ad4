"""Face mesh and clue masks: the face is found, regions sit where the anatomy says, masks match the resized frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from microemo.processing.face_mesh import (
    TasksFaceLandmarker,
    detect_landmarks,
    face_box,
    largest_face,
    make_backend,
)
from microemo.processing.face_regions import (
    DEFAULT_CLUE_REGIONS,
    LIPS,
    NUM_LANDMARKS,
    rasterize_clue_masks,
    resolve_regions,
)
from microemo.processing.video_io import decode_video


@pytest.fixture(scope="module")
def mesh():
    backend = make_backend()  # the default: the Tasks FaceLandmarker (the legacy face mesh on mediapipe 0.10.21)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def face_frames(face_video):
    return decode_video(face_video, 4)


@pytest.mark.parametrize("name", ["face_speech.mp4", "face_rotated_vfr_silent.mp4"])
def test_face_found_and_mouth_in_lower_half_of_face(assets, mesh, name):
    video = decode_video(assets / name, 4)
    landmarks, found = detect_landmarks(video.frames, mesh)
    assert found.all()
    assert landmarks.shape == (4, NUM_LANDMARKS, 3)
    masks = rasterize_clue_masks(landmarks, found, 224, 14)
    mouth = list(resolve_regions(DEFAULT_CLUE_REGIONS)).index("mouth")
    for t in range(4):
        x0, y0, x1, y1 = face_box(landmarks[t])
        middle = (y0 + y1) / 2
        lips = landmarks[t, list(LIPS), :2]
        assert np.all(lips[:, 1] > middle) and np.all((lips[:, 0] > x0) & (lips[:, 0] < x1))
        # The mouth's patches, too, lie in the lower half of the face box (patch centres).
        rows, cols = np.divmod(np.flatnonzero(masks[t, mouth]), 16)
        assert rows.size > 0
        assert np.all((rows + 0.5) / 16 > middle) and np.all((rows + 0.5) / 16 < y1 + 1 / 16)
        assert np.all((cols + 0.5) / 16 > x0) and np.all((cols + 0.5) / 16 < x1)


def test_no_face_gives_empty_masks(noface_video, mesh):
    video = decode_video(noface_video, 3)
    landmarks, found = detect_landmarks(video.frames, mesh)
    assert not found.any() and np.isnan(landmarks).all()
    masks = rasterize_clue_masks(np.nan_to_num(landmarks), found, 224, 14)
    assert masks.shape == (3, len(DEFAULT_CLUE_REGIONS), 256) and not masks.any()


def test_masks_line_up_with_the_resized_frame(face_frames, mesh):
    """Landmarks found on the original frame and on the model's 224 x 224 resize give the same masks."""
    original, found = detect_landmarks(face_frames.frames, mesh)
    resized = np.stack([np.asarray(Image.fromarray(f).resize((224, 224), Image.BICUBIC)) for f in face_frames.frames])
    again, found_again = detect_landmarks(resized, mesh)
    assert found.all() and found_again.all()
    a = rasterize_clue_masks(original, found, 224, 14)
    b = rasterize_clue_masks(again, found_again, 224, 14)
    for r in range(a.shape[1]):
        overlap = (a[:, r] & b[:, r]).sum() / max((a[:, r] | b[:, r]).sum(), 1)
        assert overlap > 0.6, f"region {DEFAULT_CLUE_REGIONS[r]}: IoU {overlap:.2f}"


def test_rasterisation_geometry_is_exact():
    """A region whose landmarks span a known box covers exactly the patches of that box (row-major)."""
    landmarks = np.full((1, NUM_LANDMARKS, 3), 0.5, np.float32)
    box = [(0.25, 0.5), (0.75, 0.5), (0.75, 0.75), (0.25, 0.75)]
    for k, index in enumerate(LIPS):
        landmarks[0, index, :2] = box[k % 4]
    masks = rasterize_clue_masks(landmarks, np.array([True]), image_size=64, patch_size=8, regions=["mouth"])
    expected = np.zeros((8, 8), bool)
    expected[4:6, 2:6] = True  # rows y in [0.5, 0.75), columns x in [0.25, 0.75)
    np.testing.assert_array_equal(masks[0, 0].reshape(8, 8), expected)


def test_tiny_region_still_gets_a_patch():
    landmarks = np.full((1, NUM_LANDMARKS, 3), 0.5, np.float32)
    for k, index in enumerate(LIPS):
        landmarks[0, index, :2] = (0.30 + 0.01 * (k % 2), 0.30 + 0.01 * (k // 2 % 2))
    masks = rasterize_clue_masks(landmarks, np.array([True]), 64, 8, regions=["mouth"])
    assert masks.sum() == 1 and masks[0, 0].reshape(8, 8)[2, 2]


def test_custom_regions_and_bad_names():
    assert list(resolve_regions({"jaw": [[0, 17, 152]]})) == ["jaw"]
    with pytest.raises(ValueError, match="unknown clue region"):
        resolve_regions(["eyes", "ears"])
    with pytest.raises(ValueError, match="landmarks must be"):
        rasterize_clue_masks(np.zeros((2, 10, 3)), np.ones(2, bool), 64, 8)


def test_largest_face_wins(face_frames, mesh):
    """Two faces in one picture: the bigger one is kept."""
    face = face_frames.frames[0]
    small = np.asarray(Image.fromarray(face).resize((120, 144)))
    canvas = np.full((288, 400, 3), 200, np.uint8)
    canvas[:, :240] = face
    canvas[72:216, 270:390] = small
    two_faces = make_backend(max_faces=2)
    try:
        landmarks, found = detect_landmarks(canvas[None], two_faces)
    finally:
        two_faces.close()
    assert found[0]
    x0, _, x1, _ = face_box(landmarks[0])
    assert x1 < 240 / 400  # inside the full-size face, not the small copy
    a = np.zeros((NUM_LANDMARKS, 3))
    b = np.zeros((NUM_LANDMARKS, 3))
    b[:10, :2] = 0.5
    assert largest_face([a, b]) is b
    assert largest_face([]) is None


def test_tasks_backend_needs_its_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="face_landmarker.task: no such face landmarker model"):
        TasksFaceLandmarker(tmp_path / "face_landmarker.task")


def test_sample_expression_changes_over_time(face_video, mesh):
    """The sample face is animated: the lips part with the speech (inner-lip gap, landmarks 13 and 14)."""
    video = decode_video(face_video, 16)
    landmarks, found = detect_landmarks(video.frames, mesh)
    assert found.all()
    x0, y0, x1, y1 = face_box(landmarks[0])
    gap = (landmarks[:, 14, 1] - landmarks[:, 13, 1]) / (y1 - y0)
    assert gap.max() - gap.min() > 0.02
