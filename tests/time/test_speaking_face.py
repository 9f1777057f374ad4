"""The speaking face: faces tracked across sampled frames, the active speaker chosen by default."""

from __future__ import annotations

import numpy as np
import pytest

from microemo.processing.face_tracking import check_face_option, choose_face, track_faces

from .conftest import synthetic_face

SR = 16_000


def _voice(times: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """A waveform that is loud (noise at level ``loud[k]``) around each time ``times[k]``."""
    rng = np.random.default_rng(1)
    wave = np.zeros(int((times[-1] + 1) * SR), dtype=np.float32)
    for t, level in zip(times, loud, strict=True):
        first, last = max(int((t - 0.2) * SR), 0), int((t + 0.2) * SR)
        wave[first:last] = level * rng.normal(0, 0.3, last - first)
    return wave


@pytest.fixture(scope="module")
def dialogue_faces(dialogue_clip):
    from microemo.processing.audio_io import load_audio
    from microemo.processing.face_mesh import detect_all_faces, shared_worker
    from microemo.processing.video_io import decode_video

    path, _ = dialogue_clip
    video = decode_video(path, 8)
    return detect_all_faces(video.frames, shared_worker()), video.timestamps, load_audio(path)


def test_the_speaker_is_chosen_on_every_frame_of_a_two_face_clip(dialogue_faces):
    faces, times, wave = dialogue_faces
    assert all(len(frame) == 2 for frame in faces), "both people are found on every sampled frame"
    choice = choose_face(faces, times, wave)
    assert choice.method == "speaker" and choice.num_faces == 2 and choice.notes == []
    assert choice.face_found.all()
    # The speaker sits on the left half of the picture on every frame.
    assert (np.nanmax(choice.landmarks[:, :, 0], axis=1) < 0.5).all()
    assert choice.scores[choice.chosen] > 0.5 > choice.scores[1 - choice.chosen]


def test_largest_is_chosen_when_asked_and_an_index_picks_from_the_left(dialogue_faces):
    faces, times, wave = dialogue_faces
    largest = choose_face(faces, times, wave, face="largest")
    assert largest.method == "largest" and (np.nanmin(largest.landmarks[:, :, 0], axis=1) > 0.5).all()
    assert choose_face(faces, times, wave, face=0).chosen == 0
    right = choose_face(faces, times, wave, face="1")
    assert (np.nanmin(right.landmarks[:, :, 0], axis=1) > 0.5).all()


def test_a_face_index_out_of_range_is_refused_with_the_count(dialogue_faces):
    faces, times, wave = dialogue_faces
    with pytest.raises(ValueError, match=r"face=2 is out of range: 2 face\(s\)"):
        choose_face(faces, times, wave, face=2)


@pytest.mark.parametrize("bad", [-1, "loudest", True, 1.5])
def test_a_bad_face_option_names_what_is_accepted(bad):
    with pytest.raises(ValueError, match="'speaker', 'largest' or a face index"):
        check_face_option(bad)


def test_tracks_follow_each_person_when_the_detector_lists_them_in_another_order():
    times = np.arange(6, dtype=float)
    faces = []
    for t in times:
        left, right = synthetic_face(0.05 + 0.01 * t, 0.3, 0.1), synthetic_face(0.6 - 0.01 * t, 0.35, 0.1, seed=1)
        faces.append([left, right] if t % 2 else [right, left])  # the order flips every frame
    tracks = track_faces(faces)
    assert tracks.shape[:2] == (2, 6)
    centres = np.nanmean(tracks[:, :, :, 0], axis=-1)
    assert (centres[0] < 0.4).all() and (centres[1] > 0.5).all()


def test_a_person_missing_on_some_frames_keeps_one_track():
    faces = [[synthetic_face(0.1, 0.3, 0.1)], [], [synthetic_face(0.12, 0.3, 0.1)]]
    tracks = track_faces(faces)
    assert tracks.shape[0] == 1 and np.isnan(tracks[0, 1]).all() and np.isfinite(tracks[0, [0, 2]]).all()


def test_nobody_speaking_gives_the_largest_face_and_a_note():
    times = np.arange(8, dtype=float)
    faces = [[synthetic_face(0.05, 0.2, 0.1 + 0.1 * (t % 2)), synthetic_face(0.5, 0.4, 0.1, seed=1)] for t in times]
    silent = np.zeros(9 * SR, dtype=np.float32)
    choice = choose_face(faces, times, silent)
    assert choice.chosen == 1 and choice.method == "largest"
    assert "no sound" in choice.notes[0]
    # Sound that no mouth follows: also the largest face, with a note that says so.
    steady = _voice(times, np.ones(8))
    unrelated = choose_face(faces, times, steady + np.float32(0.01))
    assert unrelated.chosen == 1 and "none whose mouth moves with the voice" in unrelated.notes[0]


def test_two_mouths_that_both_follow_the_voice_give_an_uncertain_note():
    times = np.arange(8, dtype=float)
    loud = np.array([0, 1, 0, 1, 1, 0, 0, 1], dtype=float)
    faces = [[synthetic_face(0.05, 0.3, 0.05 + 0.3 * v), synthetic_face(0.55, 0.3, 0.05 + 0.29 * v, seed=1)] for v in loud]
    choice = choose_face(faces, times, _voice(times, loud))
    assert choice.method == "speaker"
    assert choice.notes and choice.notes[0].startswith("speaker uncertain")


def test_a_voice_followed_by_one_mouth_picks_that_face_even_when_it_is_smaller():
    times = np.arange(8, dtype=float)
    loud = np.array([0, 1, 0, 1, 1, 0, 0, 1], dtype=float)
    faces = [[synthetic_face(0.55, 0.2, 0.05 + 0.3 * v), synthetic_face(0.05, 0.4, 0.1, seed=1)] for v in loud]
    choice = choose_face(faces, times, _voice(times, loud))
    assert choice.method == "speaker" and choice.notes == []
    assert np.nanmin(choice.landmarks[:, :, 0]) > 0.5  # the small face on the right speaks


def test_no_face_anywhere_gives_no_choice_and_an_index_is_refused():
    times = np.arange(3, dtype=float)
    choice = choose_face([[], [], []], times, None)
    assert choice.chosen == -1 and not choice.face_found.any()
    with pytest.raises(ValueError, match="no face was found"):
        choose_face([[], [], []], times, None, face=0)


def test_the_clue_masks_come_from_the_chosen_persons_face(dialogue_clip, tiny_processor):
    """The processor's clues are the chosen track's landmarks, not a fresh largest-face pass."""
    path, _ = dialogue_clip
    speaker = tiny_processor.prepare_sample(str(path), face="speaker")
    found = speaker.face_found
    assert found.any()
    np.testing.assert_allclose(speaker.landmarks[found], np.asarray(speaker.face_choice.landmarks)[found][..., :3])
    largest = tiny_processor.prepare_sample(str(path), face="largest")
    assert speaker.face_choice.chosen != largest.face_choice.chosen
    assert not np.array_equal(speaker.clue_masks, largest.clue_masks)
