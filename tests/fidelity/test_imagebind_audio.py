"""MicroEmo's audio encoder, assembled from an ImageBind checkpoint, computes what Meta's ImageBind audio branch
computes with the same weights; and its audio features are the Kaldi fbank ImageBind feeds that branch.

References (test-only installs, never vendored: CC BY-NC-SA):
- `imagebind-unofficial` 0.1.1, Meta's ImageBind model code on PyPI: the whole multimodal `ImageBindModel` at tiny
  widths, its flat `state_dict` saved as `imagebind_huge.pth` is saved.
- `kaldi-native-fbank`, an independent C++ port of Kaldi's fbank, at the options ImageBind's `waveform2melspec`
  passes to torchaudio's Kaldi fbank (hanning window, 128 bins, 25 / 10 ms, no dither, no energy, htk_compat).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microemo.processing.audio_features import default_feature_extractor
from microemo.processing.audio_io import cut_clips, load_audio
from microemo.training.convert_checkpoints import assemble_model

from .conftest import ASSETS, import_imagebind_model

ATOL, RTOL = 1e-5, 1e-5
# ImageBind's normalisation of the fbank (AST's AudioSet statistics, `data.py`): (x - mean) / std.
IMAGEBIND_MEAN, IMAGEBIND_STD = -4.268, 9.138


@pytest.fixture(scope="module")
def imagebind(tmp_path_factory, fidelity_config):
    """A random ImageBind with every modality at tiny widths, its audio branch at the fidelity config's sizes."""
    module = import_imagebind_model()
    audio = fidelity_config.audio_config
    assert audio.intermediate_size == 4 * audio.hidden_size  # ImageBind's MLP ratio
    torch.manual_seed(31)
    reference = module.ImageBindModel(
        video_frames=2, kernel_size=(2, 14, 14), out_embed_dim=audio.projection_dim,
        vision_embed_dim=16, vision_num_blocks=1, vision_num_heads=2,
        audio_embed_dim=audio.hidden_size, audio_num_blocks=audio.num_hidden_layers,
        audio_num_heads=audio.num_attention_heads, audio_num_mel_bins=audio.num_mel_bins,
        audio_target_len=audio.target_length, audio_kernel_size=audio.patch_size, audio_stride=audio.patch_stride,
        audio_drop_path=0.1, text_embed_dim=16, text_num_blocks=1, text_num_heads=2,
        depth_embed_dim=16, depth_num_blocks=1, depth_num_heads=2, thermal_embed_dim=16, thermal_num_blocks=1,
        thermal_num_heads=2, imu_embed_dim=16, imu_num_blocks=1, imu_num_heads=2,
    )  # fmt: skip
    with torch.no_grad():  # LayerNorms start at (1, 0) and attention biases at 0; perturb them so that each counts
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    reference.eval()
    path = tmp_path_factory.mktemp("imagebind") / "imagebind_huge.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def test_imagebind_audio_embeddings_match_the_reference(imagebind, fidelity_config, record_property):
    reference, path = imagebind
    model, report = assemble_model(fidelity_config, imagebind=path)
    assert not report.reports[0].unexpected, report.summary()
    audio = fidelity_config.audio_config
    torch.manual_seed(7)
    fbank = torch.randn(3, 1, audio.num_mel_bins, audio.target_length)
    heads = []
    hook = reference.modality_heads["audio"][0].register_forward_hook(lambda m, i, o: heads.append(o))
    with torch.no_grad():
        expected = reference({"audio": fbank})["audio"]
        got = model.model.audio_encoder(fbank)
    hook.remove()
    torch.testing.assert_close(got.last_hidden_state, heads[0], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(got.pooler_output, expected, atol=ATOL, rtol=RTOL)
    record_property("max_abs_diff_trunk", float((got.last_hidden_state - heads[0]).abs().max()))
    record_property("max_abs_diff_embedding", float((got.pooler_output - expected).abs().max()))
    # ImageBind's audio post-processor: L2 normalisation times a fixed 20.
    torch.testing.assert_close(got.pooler_output.norm(dim=-1), torch.full((3,), 20.0))


def kaldi_fbank(clip: np.ndarray) -> np.ndarray:
    """[frames, 128] log-mel fbank of one 16 kHz clip by kaldi-native-fbank, with ImageBind's options."""
    knf = pytest.importorskip("kaldi_native_fbank")
    options = knf.FbankOptions()
    options.frame_opts.samp_freq = 16000
    options.frame_opts.dither = 0.0
    options.frame_opts.window_type = "hanning"
    options.frame_opts.frame_length_ms = 25
    options.frame_opts.frame_shift_ms = 10
    options.mel_opts.num_bins = 128
    options.use_energy = False
    options.htk_compat = True
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(16000, (clip - clip.mean()).tolist())  # ImageBind subtracts each clip's mean first
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def test_feature_extractor_computes_imagebinds_kaldi_fbank_on_real_and_synthetic_clips(record_property):
    speech = load_audio(ASSETS / "face_speech.mp4")
    clips, _ = cut_clips(speech, 3)
    t = np.arange(32000) / 16000
    rng = np.random.default_rng(0)
    clips += [
        (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32),
        (0.05 + 0.2 * rng.standard_normal(24000)).astype(np.float32),  # a DC offset and a short clip (1.5 s)
    ]
    extractor = default_feature_extractor()
    worst = 0.0
    for clip in clips:
        features = extractor(clip, sampling_rate=16000, return_tensors="np")["input_values"][0]  # [204, 128]
        expected = kaldi_fbank(clip)
        frames = expected.shape[0]
        assert features.shape == (204, 128) and frames <= 204
        raw = features * IMAGEBIND_STD + IMAGEBIND_MEAN  # undo the normalisation
        worst = max(worst, float(np.abs(raw[:frames] - expected).max()))
        # Short clips are padded with zeros in the fbank domain before normalisation, as ImageBind pads.
        np.testing.assert_allclose(raw[frames:], 0.0, atol=1e-4)
    # Log-mel values span about -15..5; the two float32 FFT implementations agree to a few 1e-4.
    assert worst < 2e-3, worst
    record_property("max_abs_diff_log_mel", worst)
