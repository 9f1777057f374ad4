"""The benchmark's ablation switch measures what the ablation configs build (benchmarks/bench_ablations.py)."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_ablations import VARIANTS, ablated, build_tiny_variants, make_inputs, video_inputs  # noqa: E402


@pytest.fixture(scope="module")
def variants():
    return build_tiny_variants(max_frames=16, max_utterances=8)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_switching_modules_off_gives_the_outputs_of_the_ablation_config(variants, name):
    local, windows = VARIANTS[name]
    full, built = variants["full"].model, variants[name].model
    inputs = video_inputs(make_inputs(full.config, frames=8, utterances=3, with_text=False))
    with torch.no_grad():
        expected = built.get_video_features(**inputs).pooler_output
        with ablated(full, local, windows):
            switched = full.get_video_features(**inputs).pooler_output
    assert len(switched) == len(expected)
    for switched_sample, expected_sample in zip(switched, expected, strict=True):
        torch.testing.assert_close(switched_sample, expected_sample, rtol=0, atol=0)


def test_the_switch_puts_the_modules_back(variants):
    full = variants["full"].model
    modules = (full.local_clue_attention, full.utterance_qformer, full.utterance_query_tokens)
    with ablated(full, False, False):
        assert full.local_clue_attention is None and full.utterance_qformer is None
        assert not full.config.use_local_clue_attention and not full.config.use_utterance_windows
    assert (full.local_clue_attention, full.utterance_qformer, full.utterance_query_tokens) == modules
    assert full.config.use_local_clue_attention and full.config.use_utterance_windows


def test_benchmark_inputs_match_the_placeholder_count_of_each_variant(variants):
    for model in variants.values():
        inputs = make_inputs(model.config, frames=4, utterances=2)
        with torch.no_grad():
            model(**inputs)  # raises if the placeholders and the video tokens disagree
