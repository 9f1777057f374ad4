"""The paper's mechanisms, pinned by what influences what: change one input and see which outputs move.

- Utterance-aware video Q-Former (section 3.3): window u sees exactly the frames of utterance u, with the utterance
  Q-Former's weights; the global window sees every frame of its own sample, with the video Q-Former's, and comes first.
- Local clue attention (section 3.2): a patch gathers features only from the patches it shares a clue region with.
"""

from __future__ import annotations

import pytest
import torch

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.modeling_microemo.modeling_microemo import MicroEmoLocalClueAttention
from microemo.presets import tiny_random_config

UTTERANCES = {0: [0, 1], 1: [2, 3, 4]}  # sample 0: frame 5 lies in no utterance


@pytest.fixture(scope="module")
def model() -> MicroEmoForConditionalGeneration:
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(tiny_random_config()).eval()
    with torch.no_grad():  # different weights in every Q-Former, so that each window's source shows
        for parameter in model.model.utterance_qformer.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        model.model.utterance_query_tokens.weight.normal_()
        model.model.video_query_tokens.weight.normal_()
    return model


def video_windows(model, pixel_values, frame_mask, utterance_frame_mask) -> list[list[torch.Tensor]]:
    """Per sample, its windows in output order, each [V, D]."""
    with torch.no_grad():
        rows = model.model.get_video_features(pixel_values, frame_mask, utterance_frame_mask=utterance_frame_mask).pooler_output
    v = model.config.num_video_query_tokens
    return [list(sample.split(v)) for sample in rows]


def inputs(config):
    torch.manual_seed(1)
    size = config.vision_config.image_size
    pixel_values = torch.randn(2, 6, 3, size, size)
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    utterances = torch.zeros(2, 2, 6, dtype=torch.bool)
    for u, frames in UTTERANCES.items():
        utterances[0, u, frames] = True
    utterances[1, 0, 1:4] = True  # sample 1: one utterance
    return pixel_values, frame_mask, utterances


def test_window_u_sees_exactly_utterance_us_frames_and_the_global_window_sees_all_first(model):
    pixel_values, frame_mask, utterances = inputs(model.config)
    base = video_windows(model, pixel_values, frame_mask, utterances)
    assert [len(sample) for sample in base] == [3, 2]  # global + one per utterance
    for frame in range(6):
        changed = pixel_values.clone()
        changed[0, frame] += 1.0
        moved = video_windows(model, changed, frame_mask, utterances)
        window_moved = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(base[0], moved[0], strict=True)]
        expected = [True] + [frame in UTTERANCES[u] for u in (0, 1)]
        assert window_moved == expected, f"frame {frame}: windows moved {window_moved}, expected {expected}"
        # Another sample's windows never see this sample's frames.
        assert all(torch.equal(a, b) for a, b in zip(base[1], moved[1], strict=True))


def test_a_padded_frame_reaches_no_window(model):
    pixel_values, frame_mask, utterances = inputs(model.config)
    base = video_windows(model, pixel_values, frame_mask, utterances)
    changed = pixel_values.clone()
    changed[1, 5] += 100.0  # sample 1 has 4 real frames
    moved = video_windows(model, changed, frame_mask, utterances)
    assert all(torch.equal(a, b) for a, b in zip(base[1], moved[1], strict=True))


def test_the_global_window_is_the_video_qformers_and_the_utterance_windows_the_utterance_qformers(model):
    pixel_values, frame_mask, utterances = inputs(model.config)
    base = video_windows(model, pixel_values, frame_mask, utterances)
    # Without utterances only the global window remains, and it is the first window of the full output.
    alone = video_windows(model, pixel_values, frame_mask, None)
    for sample in range(2):
        assert len(alone[sample]) == 1
        torch.testing.assert_close(base[sample][0], alone[sample][0])
    with torch.no_grad():
        saved = model.model.utterance_query_tokens.weight.clone()
        model.model.utterance_query_tokens.weight.add_(1.0)
        try:
            moved = video_windows(model, pixel_values, frame_mask, utterances)
        finally:
            model.model.utterance_query_tokens.weight.copy_(saved)
    for sample in range(2):
        assert torch.equal(base[sample][0], moved[sample][0])  # the global window: untouched
        assert all(not torch.allclose(a, b) for a, b in zip(base[sample][1:], moved[sample][1:], strict=True))


def test_an_utterance_window_equals_the_utterance_qformer_over_its_frames_alone(model):
    """Masking the other frames is the same as giving the utterance's frames only (positions kept)."""
    pixel_values, frame_mask, utterances = inputs(model.config)
    base = video_windows(model, pixel_values, frame_mask, utterances)
    frames = UTTERANCES[1]
    only = torch.zeros_like(frame_mask)
    only[0, frames] = True
    everything = torch.zeros_like(utterances)
    everything[0, 0, frames] = True
    with torch.no_grad():
        # The same frames as the only real frames of sample 0: its global window uses the video Q-Former, so compare
        # the utterance window of a one-utterance sample covering exactly them.
        alone = video_windows(model, pixel_values, frame_mask, everything)
    torch.testing.assert_close(alone[0][1], base[0][2])


@pytest.fixture(scope="module")
def local_attention() -> MicroEmoLocalClueAttention:
    torch.manual_seed(2)
    module = MicroEmoLocalClueAttention(hidden_size=16, num_heads=2, layer_norm_eps=1e-6, fusion_size=8)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.3)
    return module.eval()


def test_local_clue_attention_stays_inside_each_regions_patches(local_attention):
    patches = 10
    regions = torch.zeros(1, 2, patches, dtype=torch.bool)
    regions[0, 0, 0:4] = True  # e.g. the mouth
    regions[0, 1, 3:7] = True  # e.g. the eyes, overlapping at patch 3
    share = (regions[0].float().T @ regions[0].float()) > 0  # [P, P]
    torch.manual_seed(3)
    features = torch.randn(1, patches, 16)
    with torch.no_grad():
        base, patch_mask = local_attention(features, regions)
    assert patch_mask[0].tolist() == [True] * 7 + [False] * 3
    assert torch.count_nonzero(base[0, 7:]) == 0  # patches outside every region give nothing
    for source in range(patches):
        changed = features.clone()
        changed[0, source] += torch.randn(16)  # not a constant: the pre-norm would remove it
        with torch.no_grad():
            moved, _ = local_attention(changed, regions)
        for target in range(7):
            influenced = not torch.allclose(base[0, target], moved[0, target], atol=1e-6)
            should = bool(share[target, source]) or target == source
            assert influenced == should, f"patch {source} -> patch {target}: {influenced}, expected {should}"


def test_local_clue_attention_of_a_patch_in_one_region_ignores_the_other_regions(local_attention):
    """A patch of region 0 only: its output equals the output with region 1's patches removed altogether."""
    regions = torch.zeros(1, 2, 10, dtype=torch.bool)
    regions[0, 0, 0:3] = True
    regions[0, 1, 5:9] = True
    torch.manual_seed(4)
    features = torch.randn(1, 10, 16)
    with torch.no_grad():
        both, _ = local_attention(features, regions)
        first_only, _ = local_attention(features, regions[:, :1])
    torch.testing.assert_close(both[0, :3], first_only[0, :3])


def test_the_local_qformer_pass_sees_only_its_frames_region_patches(model):
    """The image Q-Former's local pass over a face frame equals the same Q-Former over that frame's region patches
    alone (not the CLS slot, not the patches outside every region); a frame without a face has no local pass."""
    config = model.config
    torch.manual_seed(5)
    pixel_values = torch.randn(2, 3, config.vision_config.image_size, config.vision_config.image_size)
    clue_masks = torch.zeros(2, 2, config.num_patches, dtype=torch.bool)
    clue_masks[0, 0, 3:9] = True
    clue_masks[0, 1, 20:26] = True  # frame 1: no face
    calls = []
    hook = model.model.qformer.register_forward_hook(
        lambda module, args, kwargs, output: calls.append((kwargs, output.last_hidden_state)), with_kwargs=True
    )
    with torch.no_grad():
        model.model.get_frame_features(pixel_values, clue_masks=clue_masks, frame_positions=torch.arange(2))
    hook.remove()
    (kwargs, output), = calls
    assert output.shape[0] == 3  # two global rows, one local row (frame 0 only)
    local_states = kwargs["encoder_hidden_states"][2:3]
    region = clue_masks[0].any(dim=0).nonzero().flatten()
    with torch.no_grad():
        alone = model.model.qformer(
            input_ids=None,
            query_embeds=model.model.query_tokens(1),
            encoder_hidden_states=local_states[:, 1 + region],  # slot 0 is the (masked) CLS slot
            encoder_attention_mask=torch.ones(1, region.numel(), dtype=torch.long),
        ).last_hidden_state
    torch.testing.assert_close(output[2:3], alone)
