"""The pipeline that ships with the model: written by a plain save, batched, saved again, run without MediaPipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.modeling_microemo.modeling_microemo import DEFAULT_CUSTOM_PIPELINES
from microemo.modeling_microemo.pipeline_microemo import PIPELINE_INFO, TASK
from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

VIDEO = Path(__file__).resolve().parents[1] / "assets" / "face_speech.mp4"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A fresh folder written by the model's and the processor's own save_pretrained (no project helper)."""
    config = tiny_random_config()
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(config)
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    target = tmp_path_factory.mktemp("fresh")
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def pipe(folder, one_thread_without_mediapipe):
    return pipeline(TASK, model=str(folder), trust_remote_code=True)


def face_landmarks(frames: int, seed: int) -> np.ndarray:
    """Face-mesh-shaped points, all inside the frame: every sampled frame has a face."""
    return np.random.default_rng(seed).uniform(0.3, 0.7, size=(frames, 478, 3)).astype(np.float32)


def test_the_pipeline_declarations_agree():
    assert DEFAULT_CUSTOM_PIPELINES == {TASK: PIPELINE_INFO}


def test_a_plain_model_save_writes_the_pipeline_file_its_config_names(folder):
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_microemo.MicroEmoEmotionPipeline"
    assert (folder / "pipeline_microemo.py").read_text() == (
        Path(__file__).resolve().parents[2] / "modeling_microemo" / "pipeline_microemo.py"
    ).read_text()


def test_a_reloaded_model_saved_again_still_writes_the_pipeline_file(folder, tmp_path):
    model = MicroEmoForConditionalGeneration.from_pretrained(folder)
    model.config.custom_pipelines = {"other-task": {**PIPELINE_INFO}}
    model.save_pretrained(tmp_path)
    assert (tmp_path / "pipeline_microemo.py").is_file()


def test_batch_size_2_with_given_landmarks_runs_without_mediapipe_and_matches_one_by_one(pipe):
    frames = pipe.processor.num_frames
    inputs = [{"video": str(VIDEO), "landmarks": face_landmarks(frames, seed), "subtitle": text}
              for seed, text in ((0, "I did not expect this."), (1, "Well, fine."))]  # fmt: skip
    batched = pipe(inputs, batch_size=2, max_new_tokens=4)
    alone = [pipe(item, max_new_tokens=4) for item in inputs]
    assert [r["explanation"] for r in batched] == [r["explanation"] for r in alone]
    for result in batched:
        assert result["face_found"] == result["frames"] == frames
        assert result["audio"] is True


def test_landmarks_as_a_call_argument_apply_to_every_input(pipe):
    frames = pipe.processor.num_frames
    no_face = np.full((frames, 478, 3), np.nan, dtype=np.float32)
    (result,) = pipe([str(VIDEO)], landmarks=no_face, max_new_tokens=2)
    assert result["face_found"] == 0 and result["frames"] == frames


def test_the_pipelines_save_keeps_the_processor_and_gives_the_pipeline_back(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "processor_config.json").is_file() and (tmp_path / "pipeline_microemo.py").is_file()
    again = pipeline(TASK, model=str(tmp_path), trust_remote_code=True)
    landmarks = face_landmarks(pipe.processor.num_frames, 0)
    first = pipe({"video": str(VIDEO), "landmarks": landmarks}, max_new_tokens=3)
    assert again({"video": str(VIDEO), "landmarks": landmarks}, max_new_tokens=3) == first


def test_per_utterance_adds_a_timeline_answered_with_one_shared_encoding(pipe):
    """The pipeline's per_utterance equals predict's timeline: same rows, same greedy words, one encoding."""
    from microemo.timeline import predict_timeline

    frames = pipe.processor.num_frames
    item = {"video": str(VIDEO), "landmarks": face_landmarks(frames, 0), "utterances": str(VIDEO.with_suffix(".srt"))}
    plain = pipe(dict(item), max_new_tokens=4)
    calls = []
    hook = pipe.model.model.vision_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        result = pipe(dict(item), max_new_tokens=4, per_utterance=True)
    finally:
        hook.remove()
    assert "timeline" not in plain and len(calls) == 1  # every row shares one pass of the frame encoder
    assert result["explanation"] == plain["explanation"]  # the whole-video row is the plain answer
    assert [(row["start"], row["end"], row["text"]) for row in result["timeline"]] == [
        (u["start"], u["end"], u["text"]) for u in result["utterances"]
    ] and len(result["timeline"]) == 2
    sample = pipe.processor.prepare_sample(item["video"], utterances=item["utterances"], landmarks=item["landmarks"])
    _, expected = predict_timeline(pipe.model, pipe.processor, sample, max_new_tokens=4)
    assert [row["explanation"] for row in result["timeline"]] == [row["explanation"] for row in expected]
    assert all(isinstance(row["labels"], list) for row in result["timeline"])


def test_a_face_option_the_pipeline_cannot_use_is_refused_by_name(pipe):
    with pytest.raises(ValueError, match="face"):
        pipe(str(VIDEO), face="loudest", max_new_tokens=2)
