"""Bad input raises a ValueError that names the argument, its shape and the expected shape."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def batch(tiny_model, make_batch):
    return make_batch(tiny_model.config, frames=[4, 3], utterances=[2, 1], audio_clips=[3, 0])


def expect_error(model, batch, *fragments):
    with pytest.raises(ValueError) as error, torch.no_grad():
        model(**batch)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message


def test_too_few_video_placeholders(tiny_model, batch):
    ids = batch["input_ids"].clone()
    first = (ids[0] == tiny_model.config.video_token_id).nonzero()[0, 0]
    ids[0, first] = 15
    expect_error(tiny_model, dict(batch, input_ids=ids), "`input_ids`", "video placeholder", "[23, 16]", "[24, 16]")


def test_audio_placeholders_for_a_sample_without_audio(tiny_model, batch):
    ids = batch["input_ids"].clone()
    ids[1, -1] = tiny_model.config.audio_token_id
    expect_error(tiny_model, dict(batch, input_ids=ids), "audio placeholder", "[4, 1]", "[4, 0]")


def test_placeholders_without_their_inputs(tiny_model, batch):
    without_video = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "audio_values",
                                                               "audio_clip_mask")}  # fmt: skip
    expect_error(tiny_model, without_video, "video placeholder", "no video inputs")


def test_frames_beyond_max_frames(tiny_model, make_batch):
    config = tiny_model.config
    batch = make_batch(config, frames=[config.max_frames + 1], utterances=[1])
    expect_error(tiny_model, batch, "`pixel_values`", f"at most max_frames={config.max_frames}", "(1, 17, 3, 64, 64)")


def test_utterance_on_padding_frames(tiny_model, batch):
    mask = batch["utterance_frame_mask"].clone()
    mask[1, 0, 3] = True  # sample 1 has 3 frames: index 3 is padding
    expect_error(tiny_model, dict(batch, utterance_frame_mask=mask), "`utterance_frame_mask`", "frame 3", "3 frames")


def test_utterance_mask_of_the_wrong_frame_count(tiny_model, batch):
    mask = batch["utterance_frame_mask"][..., :3]
    expect_error(tiny_model, dict(batch, utterance_frame_mask=mask), "`utterance_frame_mask`", "(2, 2, 3)", "(2, utterances, 4)")


def test_clue_masks_on_the_wrong_patch_grid(tiny_model, batch):
    masks = torch.zeros(2, 4, 3, 49, dtype=torch.bool)  # a 7x7 grid instead of 8x8
    expect_error(tiny_model, dict(batch, clue_masks=masks), "`clue_masks`", "(2, 4, 3, 49)", "8x8 patch grid")


def test_frames_of_the_wrong_size(tiny_model, batch):
    pixels = torch.randn(2, 4, 3, 32, 32)
    expect_error(tiny_model, dict(batch, pixel_values=pixels), "`pixel_values`", "(2, 4, 3, 32, 32)", "64, 64")


def test_integer_pixels(tiny_model, batch):
    pixels = (batch["pixel_values"] * 100).long()
    expect_error(tiny_model, dict(batch, pixel_values=pixels), "`pixel_values`", "torch.int64", "float")


def test_float_masks(tiny_model, batch):
    expect_error(tiny_model, dict(batch, clue_masks=batch["clue_masks"].float() * 0.5), "`clue_masks`", "torch.float32")


def test_inputs_on_another_device(tiny_model, batch):
    expect_error(tiny_model, dict(batch, pixel_values=batch["pixel_values"].to("meta")), "`pixel_values`", "meta", "cpu")


def test_batch_sizes_that_disagree(tiny_model, batch):
    expect_error(tiny_model, dict(batch, audio_values=batch["audio_values"][:1], audio_clip_mask=batch["audio_clip_mask"][:1]),
                 "`audio_values`", "batch size 2")  # fmt: skip


def test_audio_of_the_wrong_feature_shape(tiny_model, batch):
    audio = torch.randn(2, 3, 1, 128, 100)
    expect_error(tiny_model, dict(batch, audio_values=audio), "`audio_values`", "(2, 3, 1, 128, 100)", "(2, 3, 1, 128, 204)")


def test_sample_without_any_frame(tiny_model, batch):
    frame_mask = batch["frame_mask"].clone()
    frame_mask[1] = False
    expect_error(tiny_model, dict(batch, frame_mask=frame_mask), "`frame_mask`", "sample(s) [1]")


def test_config_rejects_placeholders_outside_the_vocabulary():
    from microemo.presets import tiny_random_config

    with pytest.raises(ValueError, match="video_token_id.*outside the language model's vocabulary"):
        tiny_random_config(video_token_id=5000)
