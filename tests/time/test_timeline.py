"""Per-utterance timeline: one answer per utterance, one shared encoding of the video and its sound."""

from __future__ import annotations

import pytest
import torch

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.timeline import generate_shared, predict_timeline, shared_inputs, timeline_questions

ASSETS = __import__("pathlib").Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def model_and_processor():
    config = tiny_random_config()
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(config).eval()
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    return model, processor


@pytest.fixture(scope="module")
def sample(model_and_processor):
    _, processor = model_and_processor
    return processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=str(ASSETS / "face_speech.srt"))


def test_each_question_names_its_utterance_span_and_words(sample):
    questions = timeline_questions(sample, question="How does she feel?")
    assert questions[0] == "How does she feel?" and len(questions) == 1 + len(sample.utterances) == 3
    assert "Utterance 2 of 2 lasts from 4.8 s to 7.5 s" in questions[2]
    assert 'says "Well, maybe this is good news after all"' in questions[2]
    silent = type(sample.utterances[0])(1.0, 2.0, "")
    sample_without_words = type(sample)(**{**sample.__dict__, "utterances": [silent]})
    assert "(no transcript)" in timeline_questions(sample_without_words)[1]


def test_shared_encoding_answers_exactly_as_one_copy_of_the_video_per_row(model_and_processor, sample):
    model, processor = model_and_processor
    questions = timeline_questions(sample)
    shared = generate_shared(model, shared_inputs(processor, sample, questions), max_new_tokens=6)
    texts, _ = processor.render_conversations([processor.emer_conversation(subtitle=sample.subtitle, question=q)
                                               for q in questions])  # fmt: skip
    batch = processor.collate([sample] * len(questions), texts, return_tensors="pt")
    with torch.no_grad():
        copied = model.generate(**{k: v for k, v in batch.items() if k in processor.model_input_names},
                                max_new_tokens=6, do_sample=False)  # fmt: skip
    assert torch.equal(shared, copied[:, batch["input_ids"].shape[1] :])


def test_the_encoders_run_once_per_video_not_once_per_utterance(model_and_processor, sample):
    model, processor = model_and_processor
    seen = {"vision": [], "audio": []}
    hooks = [
        model.model.vision_model.register_forward_hook(lambda m, a, out: seen["vision"].append(len(out[0]))),
        model.model.audio_encoder.register_forward_hook(lambda m, a, out: seen["audio"].append(len(out[0]))),
    ]
    try:
        generate_shared(model, shared_inputs(processor, sample, timeline_questions(sample)), max_new_tokens=3)
    finally:
        for hook in hooks:
            hook.remove()
    frames = sample.video.frames.shape[0]
    assert seen["vision"] == [frames]  # one call over the video's frames, for 3 rows
    assert seen["audio"] == [processor.num_audio_clips]


def test_the_timeline_has_one_entry_per_utterance_on_the_video_clock(model_and_processor, sample):
    model, processor = model_and_processor
    answer, timeline = predict_timeline(model, processor, sample, max_new_tokens=4, offset=60.0)
    assert isinstance(answer, str) and len(timeline) == 2
    assert [round(entry["start"] - 60.0, 3) for entry in timeline] == [round(s.start, 3) for s in sample.utterances]
    assert timeline[1]["text"] == "Well, maybe this is good news after all."
    assert set(timeline[0]) == {"start", "end", "text", "explanation", "labels"}


def test_a_video_without_utterances_gives_an_empty_timeline_and_the_whole_answer(model_and_processor):
    model, processor = model_and_processor
    lone = processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=[])
    answer, timeline = predict_timeline(model, processor, lone, max_new_tokens=3)
    assert timeline == [] and isinstance(answer, str)
