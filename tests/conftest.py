"""Tiny random MicroEmo models and batches built to the input contract (docs/model-inputs.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from microemo.modeling_microemo import MicroEmoConfig, MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config

TEXT_IDS = list(range(10, 22))  # ordinary tokens of the tiny vocabulary


@pytest.fixture
def make_model() -> Callable[..., MicroEmoForConditionalGeneration]:
    def build(seed: int = 0, **overrides) -> MicroEmoForConditionalGeneration:
        torch.manual_seed(seed)
        return MicroEmoForConditionalGeneration(tiny_random_config(**overrides)).eval()

    return build


@pytest.fixture
def tiny_model(make_model) -> MicroEmoForConditionalGeneration:
    return make_model()


@pytest.fixture(scope="session")
def save_tiny_model() -> Callable[..., Path]:
    """``save(folder, **processor_options)``: a tiny random MicroEmo (seed 0) saved as every command saves one:
    weights, remote code, processor, pipeline file and card."""

    def save(folder: Path, **processor_options) -> Path:
        from microemo.hub import CardInfo, save_model_folder
        from microemo.processing.processing_microemo import MicroEmoProcessor
        from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

        config = tiny_random_config()
        torch.manual_seed(0)
        model = MicroEmoForConditionalGeneration(config)
        processor = MicroEmoProcessor.from_model_config(
            config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), **processor_options
        )
        return save_model_folder(model, processor, folder, CardInfo(weights="random"))

    return save


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, save_tiny_model) -> Path:
    """A tiny random model folder per test module (modules that need other settings define their own)."""
    return save_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def one_thread_without_mediapipe():
    """`import mediapipe` raises ImportError (inputs carry landmarks) and torch runs one thread: a tiny model gains
    nothing from threads that fight the other processes of a shared machine (measured: 7x slower steps)."""
    import sys

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "mediapipe", None)
        yield
    torch.set_num_threads(threads)


def build_batch(
    config: MicroEmoConfig,
    frames: Sequence[int] = (4,),
    utterances: Sequence[int] = (2,),
    audio_clips: Sequence[int] = (3,),
    regions: int = 3,
    seed: int = 0,
    answer: Sequence[int] = (),
) -> dict[str, torch.Tensor]:
    """A batch of samples with the given numbers of frames, utterances and audio clips (0 = no audio).

    Utterance u of a sample spans frames [u * T_b / U_b, (u + 1) * T_b / U_b); every frame has a face whose
    clue regions cover a few fixed patches; placeholders are expanded exactly as the processor does; the
    sequences are left-padded; `answer` tokens, if any, follow the prompt and are the only supervised labels.
    """
    generator = torch.Generator().manual_seed(seed)
    batch_size, num_frames = len(frames), max(frames)
    num_utterances, num_clips = max(utterances), max(max(audio_clips), 1)
    size, num_patches = config.vision_config.image_size, config.num_patches
    audio = config.audio_config
    # ImageBind-style fbank per clip; other encoders get their real features from the test itself.
    audio_features = (1, audio.num_mel_bins, audio.target_length) if hasattr(audio, "target_length") else (16,)

    frame_mask = torch.zeros(batch_size, num_frames, dtype=torch.bool)
    utterance_frame_mask = torch.zeros(batch_size, num_utterances, num_frames, dtype=torch.bool)
    audio_clip_mask = torch.zeros(batch_size, num_clips, dtype=torch.bool)
    clue_masks = torch.zeros(batch_size, num_frames, regions, num_patches, dtype=torch.bool)
    for b, (t, u, c) in enumerate(zip(frames, utterances, audio_clips, strict=True)):
        frame_mask[b, :t] = True
        audio_clip_mask[b, :c] = True
        for k in range(u):
            start, stop = k * t // u, max((k + 1) * t // u, k * t // u + 1)
            utterance_frame_mask[b, k, start:stop] = True
        for r in range(regions):
            clue_masks[b, :t, r, 9 + 8 * r : 12 + 8 * r] = True  # three patches per region, rows 1..regions

    sequences = []
    for u, c in zip(utterances, audio_clips, strict=True):
        audio_tokens = [config.audio_token_id] * (config.num_audio_query_tokens if c > 0 else 0)
        video_tokens = [config.video_token_id] * config.num_video_tokens(u)
        # The paper's order (section 3.4): video tokens, audio tokens, then the text.
        sequences.append([1, *video_tokens, *audio_tokens, *TEXT_IDS[: 4 + len(sequences)]])
    prompt_lengths = [len(s) for s in sequences]
    sequences = [s + list(answer) for s in sequences]
    length = max(len(s) for s in sequences)
    input_ids = torch.zeros(batch_size, length, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, length, dtype=torch.long)
    labels = torch.full((batch_size, length), -100, dtype=torch.long)
    for b, sequence in enumerate(sequences):
        input_ids[b, length - len(sequence) :] = torch.tensor(sequence)
        attention_mask[b, length - len(sequence) :] = 1
        if answer:
            labels[b, length - len(answer) :] = torch.tensor(answer)
        assert prompt_lengths[b] + len(answer) == len(sequence)

    text_length = 6
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": torch.randn(batch_size, num_frames, 3, size, size, generator=generator),
        "frame_mask": frame_mask,
        "qformer_input_ids": torch.randint(5, 100, (batch_size, num_frames, text_length), generator=generator),
        "qformer_attention_mask": torch.ones(batch_size, num_frames, text_length, dtype=torch.long),
        "clue_masks": clue_masks,
        "utterance_frame_mask": utterance_frame_mask,
        "audio_values": torch.randn(batch_size, num_clips, *audio_features, generator=generator),
        "audio_clip_mask": audio_clip_mask,
    }
    if answer:
        batch["labels"] = labels
    return batch


@pytest.fixture
def make_batch() -> Callable[..., dict[str, torch.Tensor]]:
    return build_batch


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from Debian's packages, driven by selenium (`make test` installs them when it can).

    Outside CI a machine without them skips the browser tests; in CI (CI=true) their absence is a failure.
    """
    import os
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver for the browser tests (make test installs them)")
        pytest.skip("no chromium / chromedriver: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()
