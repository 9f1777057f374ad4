"""Fixtures of the time-sensitive tests: a generated two-person dialogue clip (left face speaks, right one
listens and is larger) and synthetic landmark sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microemo.processing.face_regions import NUM_LANDMARKS
from microemo.processing.face_tracking import LOWER_INNER_LIP, MOUTH_LEFT, MOUTH_RIGHT, UPPER_INNER_LIP


@pytest.fixture(scope="session")
def dialogue_clip(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A 12 s two-person dialogue video (H.264 + AAC) with its true utterance spans."""
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage")
    from microemo.processing.make_dialogue_media import write_dialogue

    path = tmp_path_factory.mktemp("dialogue") / "dialogue.mp4"
    spans = write_dialogue(path, seconds=12.0, fps=10)
    return path, spans


def synthetic_face(x0: float, width: float, mouth: float, seed: int = 0) -> np.ndarray:
    """[478, 3] landmarks filling the box at ``x0`` (normalised), with the inner lips ``mouth`` * mouth width apart."""
    rng = np.random.default_rng(seed)
    face = np.zeros((NUM_LANDMARKS, 3), dtype=np.float32)
    face[:, 0] = x0 + rng.uniform(0, width, NUM_LANDMARKS)
    face[:, 1] = 0.2 + rng.uniform(0, width, NUM_LANDMARKS)
    centre_x, centre_y = x0 + width / 2, 0.2 + 0.75 * width
    face[MOUTH_LEFT, :2] = (centre_x - width / 4, centre_y)
    face[MOUTH_RIGHT, :2] = (centre_x + width / 4, centre_y)
    face[UPPER_INNER_LIP, :2] = (centre_x, centre_y)
    face[LOWER_INNER_LIP, :2] = (centre_x, centre_y + mouth * width / 2)
    return face


@pytest.fixture(scope="session")
def long_dialogue(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A 40 s two-person dialogue (the long-video tests cut it into segments of 15 s)."""
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage")
    from microemo.processing.make_dialogue_media import write_dialogue

    path = tmp_path_factory.mktemp("long") / "long_dialogue.mp4"
    return path, write_dialogue(path, seconds=40.0, fps=10)


@pytest.fixture(scope="session")
def tiny_processor():
    """A processor for the tiny random model (energy voice activity: no model file needed)."""
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    return MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), utterance_source="energy"
    )


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A tiny random Whisper saved locally (byte-level vocabulary, Whisper's special and timestamp tokens): the
    ASR pipeline's whole path, offline. Its words are noise; its timestamps have Whisper's structure."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = tmp_path_factory.mktemp("tiny_whisper")
    vocab = {char: index for index, char in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>")
    specials = ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
                "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]  # fmt: skip
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.add_tokens([f"<|{k * 0.02:.2f}|>" for k in range(1501)])  # right after <|notimestamps|>, as Whisper's
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ["<|endoftext|>", *specials]}
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_target_positions=64,
        pad_token_id=end, bos_token_id=end, eos_token_id=end, decoder_start_token_id=start,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False, max_initial_timestamp_index=50, max_length=64,
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        lang_to_id={"<|en|>": ids["<|en|>"]},
    )  # fmt: skip
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    return folder
