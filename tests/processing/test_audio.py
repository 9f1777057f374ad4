"""Audio: 16 kHz mono from the video, ImageBind's clip layout, and the Kaldi fbank features."""

from __future__ import annotations

import numpy as np
import pytest

from microemo.processing.audio_features import default_feature_extractor
from microemo.processing.audio_io import clip_starts, cut_clips, load_audio
from microemo.processing.video_io import NoAudioStreamError, probe_video

from .conftest import write_wav


def test_audio_of_the_video_is_16k_mono_and_as_long_as_the_video(face_video):
    waveform = load_audio(face_video)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(waveform.size / 16_000 - probe_video(face_video).duration) < 0.15
    assert 0.1 < np.abs(waveform).max() <= 1.0


def test_separate_audio_file_is_resampled(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(44_100) / 44_100).astype(np.float32) * 0.5
    path = write_wav(tmp_path / "tone.wav", tone, rate=44_100)
    waveform = load_audio(path)
    assert abs(waveform.size - 16_000) <= 32
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * 16_000 / waveform.size - 440) < 3


def test_no_audio_stream(rotated_video):
    with pytest.raises(NoAudioStreamError, match=r"face_rotated_vfr_silent\.mp4: has no audio stream"):
        load_audio(rotated_video)


def test_clip_layout_follows_imagebind():
    """start_k = k * max(d - 2, 0) / max(N - 1, 1): the first clip starts at 0, the last ends at the audio's end."""
    np.testing.assert_allclose(clip_starts(10.0, 8), np.arange(8) * 8.0 / 7)
    np.testing.assert_allclose(clip_starts(60.0, 8)[[0, -1]], [0.0, 58.0])
    np.testing.assert_allclose(clip_starts(7.0, 1), [0.0])
    np.testing.assert_allclose(clip_starts(1.0, 4), np.zeros(4))  # shorter than a clip: all start at 0
    waveform = np.arange(7 * 16_000 + 3, dtype=np.float32)
    clips, starts = cut_clips(waveform, num_clips=4)
    assert starts[0] == 0 and starts[-1] + 2.0 == pytest.approx(waveform.size / 16_000)
    assert all(clip.size == 32_000 for clip in clips)
    assert clips[0][0] == 0 and clips[-1][-1] == waveform[-1]  # nothing at either end is left unheard
    with pytest.raises(ValueError, match="empty"):
        cut_clips(np.zeros(0, np.float32))


def test_short_audio_is_padded_in_the_fbank_domain():
    """Audio under 2 s gives clips of what there is; the fbank gets zero frames after it, as ImageBind pads."""
    short = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    clips, _ = cut_clips(short, num_clips=3)
    assert [clip.size for clip in clips] == [16_000] * 3
    extractor = default_feature_extractor()
    features = extractor(clips, sampling_rate=16_000, return_tensors="np")["input_values"]
    real_frames = 1 + (16_000 - 400) // 160  # Kaldi frames of 1 s (25 ms windows every 10 ms)
    padded = features[:, real_frames:]
    # Zero fbank frames normalised: (0 + 4.268) / 9.138, not the features of a zero waveform.
    np.testing.assert_allclose(padded, 4.268 / 9.138, atol=1e-5)
    silence = extractor([np.zeros(32_000, np.float32)], sampling_rate=16_000, return_tensors="np")["input_values"]
    assert not np.allclose(silence[0, real_frames:198], 4.268 / 9.138, atol=1e-3)


def test_fbank_shape_padding_and_normalisation():
    """128 mel bins x 204 frames; a 2 s clip has 198 frames, the rest is zero padding; (x + 4.268) / 9.138."""
    extractor = default_feature_extractor()
    silence = np.zeros((1, 32_000), np.float32)
    features = extractor(list(silence), sampling_rate=16_000, return_tensors="np")["input_values"]
    assert features.shape == (1, 204, 128)
    floor = np.log(np.finfo(np.float32).eps)  # log of Kaldi's energy floor on a silent frame
    np.testing.assert_allclose(features[0, :198], (floor + 4.268) / 9.138, atol=1e-4)
    np.testing.assert_allclose(features[0, 198:], (0 + 4.268) / 9.138, atol=1e-6)


def test_fbank_peak_is_in_the_mel_bin_of_the_tone():
    extractor = default_feature_extractor()
    t = np.arange(32_000) / 16_000
    for frequency in (300.0, 1000.0, 3000.0):
        tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
        features = extractor([tone], sampling_rate=16_000, return_tensors="np")["input_values"][0, :198]
        peak = int(np.median(features.argmax(axis=1)))

        def mel(f):
            return 1127 * np.log(1 + f / 700)

        # Kaldi's bins are evenly spaced in mel between 20 Hz and Nyquist; centre of bin k is (k + 1) steps up.
        step = (mel(8000) - mel(20)) / 129
        expected = int(round((mel(frequency) - mel(20)) / step)) - 1
        assert abs(peak - expected) <= 1, (frequency, peak, expected)
