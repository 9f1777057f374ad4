"""Shared pieces of the equivalence tests: a tiny MicroEmo whose parts have the reference implementations' sizes,
and the import of ImageBind's model code from the `imagebind-unofficial` package without its data code."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from microemo.modeling_microemo import MicroEmoConfig
from microemo.presets import tiny_random_config


def import_imagebind_model():
    """`imagebind.models.imagebind_model` from `imagebind-unofficial`, or skip when the package is missing.

    The package's `__init__` imports its data code (torchaudio, pytorchvideo, decord: none fits torch 2.14); the
    model modules need only torch, timm, einops, ftfy, regex and iopath. So the package is registered as an empty
    namespace pointing at its folder and only `imagebind.models.imagebind_model` is executed.
    """
    if "imagebind.models.imagebind_model" in sys.modules:
        return sys.modules["imagebind.models.imagebind_model"]
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("imagebind-unofficial is not installed (make test installs it: see the Makefile)")
    package = types.ModuleType("imagebind")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("imagebind", package)
    return importlib.import_module("imagebind.models.imagebind_model")


@pytest.fixture(scope="session")
def fidelity_config() -> MicroEmoConfig:
    """The tiny preset with an ImageBind audio encoder small enough to compare quickly: 32 mel bins x 46 frames
    (3 x 4 patches of 16 at stride 10, as ImageBind's 12 x 19)."""
    return tiny_random_config(
        audio_config=dict(
            model_type="microemo_imagebind_audio", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, projection_dim=48, num_mel_bins=36, target_length=46,
        ),
    )  # fmt: skip


ASSETS = Path(__file__).resolve().parents[1] / "assets"
