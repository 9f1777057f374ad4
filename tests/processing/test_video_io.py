"""Decoding: true timestamps, rotation, sampling, and every kind of bad video file."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from microemo.processing.video_io import (
    MediaError,
    NoVideoStreamError,
    decode_video,
    frames_from_array,
    probe_video,
    sample_times,
)

from .conftest import write_frames, write_wav


def container_times(path) -> np.ndarray:
    """Every frame's presentation time as the container stores it, from the stream start."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return np.array([float(f.pts * f.time_base) - start for f in container.decode(stream)])


@pytest.mark.parametrize("name", ["face_speech.mp4", "face_rotated_vfr_silent.mp4", "noface_speech.mp4"])
def test_sampled_timestamps_are_the_containers_own(assets, name):
    path = assets / name
    video = decode_video(path, num_frames=8)
    stored = container_times(path)
    assert video.frames.shape[0] == 8
    # Each sampled time is exactly one of the container's frame times ...
    assert np.all(np.min(np.abs(stored[None, :] - video.timestamps[:, None]), axis=1) < 1e-6)
    # ... and one nearest to its uniform target (ties may go either way).
    targets = sample_times(video.duration, 8)
    best = np.min(np.abs(stored[None, :] - targets[:, None]), axis=1)
    np.testing.assert_allclose(np.abs(video.timestamps - targets), best, atol=1e-6)
    assert np.all(np.diff(video.timestamps) > 0)


def test_variable_frame_rate_keeps_true_times(rotated_video):
    stored = container_times(rotated_video)
    # The sample file alternates 1/30, 1/10 and 1/15 s frame durations.
    assert len(np.unique(np.round(np.diff(stored), 3))) >= 3
    video = decode_video(rotated_video, times=stored)
    np.testing.assert_allclose(video.timestamps, stored, atol=1e-6)
    # index / average fps would be wrong for this file: the true times are not evenly spaced.
    assert not np.allclose(video.timestamps, np.arange(len(stored)) / probe_video(rotated_video).average_fps, atol=0.02)


def test_display_rotation_is_applied(rotated_video, face_video):
    with av.open(str(rotated_video)) as container:
        coded = container.streams.video[0].codec_context
        coded_size = (coded.height, coded.width)
    video = decode_video(rotated_video, num_frames=2)
    assert coded_size == (240, 288)  # stored sideways
    assert video.frames.shape[1:3] == (288, 240)  # returned upright, like the unrotated face clip
    assert decode_video(face_video, 1).frames.shape[1:3] == (288, 240)


def test_seeking_and_sequential_decoding_agree(face_video):
    sequential = decode_video(face_video, num_frames=4, seek_gap=1e9)
    seeking = decode_video(face_video, num_frames=4, seek_gap=0.0)
    np.testing.assert_allclose(sequential.timestamps, seeking.timestamps)
    assert np.abs(sequential.frames.astype(int) - seeking.frames.astype(int)).max() == 0


def test_other_containers_decode(tmp_path, face_video):
    frames = decode_video(face_video, 6).frames
    for name, codec in [("clip.mkv", "libvpx-vp9"), ("clip.avi", "mpeg4"), ("clip.webm", "libvpx-vp9")]:
        path = write_frames(tmp_path / name, list(frames), fps=5, codec=codec)
        video = decode_video(path, num_frames=3)
        assert video.frames.shape == (3, 288, 240, 3)
        np.testing.assert_allclose(video.timestamps, [0.2, 0.6, 1.0], atol=1e-6)


def test_max_side_downscales(face_video):
    video = decode_video(face_video, 2, max_side=120)
    assert max(video.frames.shape[1:3]) == 120


def test_one_frame_video_gives_one_frame(tmp_path):
    path = write_frames(tmp_path / "one.mp4", [np.full((64, 48, 3), 90, np.uint8)])
    video = decode_video(path, num_frames=8)
    assert video.frames.shape == (1, 64, 48, 3)
    assert video.timestamps.tolist() == [0.0]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.mp4: no such file"):
        decode_video("nope.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(MediaError, match=r"notes\.mp4: not a readable media file"):
        decode_video(path)


def test_zero_length_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: is an empty file"):
        decode_video(empty)
    # A valid container whose video stream holds no frame at all.
    no_frames = tmp_path / "no_frames.mkv"
    with av.open(str(no_frames), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 32, 32
        container.start_encoding()
    with pytest.raises(MediaError, match=r"no_frames\.mkv: .*(no decodable video frames|not a readable)"):
        decode_video(no_frames)


def test_no_video_stream(tmp_path):
    path = write_wav(tmp_path / "speech.wav", np.zeros(16000, np.float32))
    with pytest.raises(NoVideoStreamError, match=r"speech\.wav: has no video stream \(streams found: audio\)"):
        decode_video(path)


def test_truncated_file_without_index(tmp_path, face_video):
    # PyAV writes the MP4 index (moov) at the end: cutting the file loses it.
    data = face_video.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4: not a readable media file"):
        decode_video(path)


def test_truncated_file_keeps_the_frames_before_the_damage(tmp_path, face_video, caplog):
    # With the index first (fast start) and a keyframe every second, a cut file still opens and
    # decodes up to the cut.
    frames = decode_video(face_video, 60).frames
    full = write_frames(tmp_path / "faststart.mp4", list(frames), container_options={"movflags": "+faststart"},
                        codec_options={"g": "10"})  # fmt: skip
    data = full.read_bytes()
    cut = tmp_path / "faststart_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        video = decode_video(cut, num_frames=8)
    assert 1 <= video.frames.shape[0] < 8
    assert video.timestamps[-1] < 0.8 * probe_video(full).duration
    assert "faststart_cut.mp4" in caplog.text and "truncated" in caplog.text


def test_frames_from_array():
    video = frames_from_array(np.zeros((3, 8, 8, 3), np.float32), fps=2.0)
    assert video.frames.dtype == np.uint8
    np.testing.assert_allclose(video.timestamps, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="one entry per frame"):
        frames_from_array(np.zeros((3, 8, 8, 3), np.uint8), timestamps=[0.0, 1.0])


def test_keyframe_interval_from_the_index(tmp_path, face_video):
    from microemo.processing.video_io import _keyframe_interval

    frames = list(decode_video(face_video, 40).frames)
    path = write_frames(tmp_path / "gop.mp4", frames, codec_options={"g": "10"})
    with av.open(str(path)) as container:
        assert _keyframe_interval(container.streams.video[0]) == pytest.approx(1.0)
    with av.open(str(face_video)) as container:  # one keyframe: never seek
        assert _keyframe_interval(container.streams.video[0]) == float("inf")
    # Either way of decoding gives the same frames on this file.
    a, b = decode_video(path, 4), decode_video(path, 4, seek_gap=1e9)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_raw_stream_without_timestamps_or_duration(tmp_path, face_video):
    """A raw H.264 elementary stream stores neither times nor a duration: the nominal rate stands in."""
    frames = decode_video(face_video, 20).frames
    path = write_frames(tmp_path / "raw.h264", list(frames), fps=25, container_format="h264")
    info = probe_video(path)
    assert info.num_frames == 20 and info.duration == pytest.approx(20 / info.average_fps)
    video = decode_video(path, 3)  # targets 0.13, 0.40, 0.67 s at 25 fps: frames 3, 10, 17
    np.testing.assert_allclose(video.timestamps, np.array([3, 10, 17]) / info.average_fps)
