"""TRL's standard conversational dataset, ``{"messages": [...]}`` with a video part, trains MicroEmo in SFTTrainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.training.collator import MicroEmoChatCollator

ASSETS = Path(__file__).resolve().parents[1] / "assets"
ANSWERS = ("happy and surprised", "calm")


@pytest.fixture(scope="module", autouse=True)
def quiet_cpu(one_thread_without_mediapipe):
    """The rows carry landmarks: no MediaPipe, one torch thread (tests/conftest.py)."""
    yield


@pytest.fixture(scope="module")
def processor() -> MicroEmoProcessor:
    return MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer()
    )


@pytest.fixture(scope="module")
def dataset(processor) -> Dataset:
    """Two rows in TRL's conversational format: the video part carries its utterances and face landmarks."""

    def row(answer: str, seed: int) -> dict:
        landmarks = np.random.default_rng(seed).uniform(0.3, 0.7, size=(processor.num_frames, 478, 3))
        video = {"type": "video", "path": str(ASSETS / "face_speech.mp4"),
                 "utterances": str(ASSETS / "face_speech.srt"), "landmarks": landmarks.astype(np.float32).tolist()}  # fmt: skip
        return {"messages": [
            {"role": "user", "content": [video, {"type": "text", "text": "Which emotions does she show?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]}  # fmt: skip

    return Dataset.from_list([row(answer, seed) for seed, answer in enumerate(ANSWERS)])


def tiny_model() -> MicroEmoForConditionalGeneration:
    torch.manual_seed(0)
    return MicroEmoForConditionalGeneration(tiny_random_config())


def lora(model) -> LoraConfig:
    return LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=list(model.trainable_module_names))


def sft_config(tmp_path, steps: int, **overrides) -> SFTConfig:
    return SFTConfig(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=2, learning_rate=5e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0, **overrides,
    )  # fmt: skip


def test_trl_alone_cannot_train_a_messages_dataset_with_a_video(dataset, processor, tmp_path):
    """The limitation the collator exists for (trl/trainer/sft_trainer.py: `_is_vision_dataset` looks only for
    `image` / `images` columns; other rows are tokenized ahead by `tokenize_fn`, keeping `input_ids` alone, so the
    model sees placeholders without a video). Its `tools=None` is accepted: the failure is the dropped video."""
    model = tiny_model()
    with pytest.raises(ValueError, match=r"video placeholder tokens but no video inputs"):
        trainer = SFTTrainer(model=model, args=sft_config(tmp_path, 1), train_dataset=dataset,
                             processing_class=processor, peft_config=lora(model))  # fmt: skip
        trainer.train()


def test_the_chat_collator_trains_a_messages_dataset_through_sft_trainer_and_the_loss_falls(dataset, processor, tmp_path):
    model = tiny_model()
    frozen_before = model.model.language_model.layers[0].self_attn.q_proj.weight.detach().clone()
    gate_before = model.model.video_projection.weight.detach().clone()
    trainer = SFTTrainer(
        model=model,
        args=sft_config(tmp_path, 4, remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora(model),
        data_collator=MicroEmoChatCollator(processor),
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.1, losses
    trained = trainer.model.base_model.model
    base = trained.model.language_model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(base, frozen_before)  # the LLM stays frozen: LoRA learns beside it
    projection = trained.model.video_projection.modules_to_save["default"].weight
    assert not torch.equal(projection, gate_before)  # the paper's trained modules learn


def test_the_chat_collator_supervises_only_the_answer(dataset, processor):
    rows = [dataset[0], dataset[1]]
    # Arrow gives every content part every field: the text part has `path: None`; the collator drops such Nones.
    assert rows[0]["messages"][0]["content"][1]["path"] is None
    batch = MicroEmoChatCollator(processor)(rows)
    assert batch["pixel_values"].shape[:2] == (2, processor.num_frames)
    assert bool(batch["clue_masks"].any())  # the given landmarks, not MediaPipe
    for labels, answer in zip(batch["labels"], ANSWERS, strict=True):
        supervised = processor.decode(labels[labels != -100], skip_special_tokens=True)
        assert supervised.strip() == answer
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_rows_without_messages_are_refused_naming_the_sft_settings(processor):
    with pytest.raises(ValueError, match=r"rows \[0\] have no 'messages'.*remove_unused_columns=False"):
        MicroEmoChatCollator(processor)([{"input_ids": [1, 2, 3]}])
