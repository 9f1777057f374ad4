"""The transcript: utterance spans and words from a speech-recognition model; subtitles still win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microemo.processing import asr as asr_module
from microemo.processing.asr import NotAnASRModelError, asr_kind, transcribe
from microemo.processing.audio_io import load_audio
from microemo.processing.utterances import Span

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The ASR pipeline's output with return_timestamps=True (Whisper's chunk form), written for the sample clip
# from its true utterances (tests/assets/face_speech.json); Whisper timestamps have 0.02 s steps and leading
# spaces in the text. Used to test the text path without a real checkpoint.
PIPELINE_OUTPUT = {
    "text": " I really did not expect to see you here today. Well, maybe this is good news after all.",
    "chunks": [
        {"timestamp": (0.7, 3.54), "text": " I really did not expect to see you here today."},
        {"timestamp": (4.84, 7.5), "text": " Well, maybe this is good news after all."},
    ],
}


class _Recorded:
    """Stands in for the pipeline: answers with the recorded output and remembers that it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, inputs, return_timestamps=None):
        self.calls += 1
        assert return_timestamps is True and inputs["sampling_rate"] == 16_000
        return PIPELINE_OUTPUT


@pytest.fixture
def recorded(monkeypatch):
    pipeline = _Recorded()
    monkeypatch.setattr(asr_module, "load_asr", lambda model, device=None: (pipeline, "seq2seq"))
    return pipeline


def test_a_tiny_whisper_times_its_text_into_spans_inside_the_sound(tiny_whisper):
    assert asr_kind(tiny_whisper) == "seq2seq"
    wave = load_audio(ASSETS / "face_speech.mp4")
    spans = transcribe(wave, str(tiny_whisper))
    duration = wave.size / 16_000
    assert spans and all(isinstance(s, Span) for s in spans)
    assert all(0 <= s.start < s.end <= duration for s in spans)
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_a_model_that_is_not_speech_recognition_is_refused_with_its_type(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(NotAnASRModelError, match=r"is a 'bert' model .*not a speech-recognition model.*whisper-small"):
        transcribe(load_audio(ASSETS / "face_speech.mp4"), str(tmp_path))


def test_the_transcript_gives_the_spans_and_the_words_of_the_prompt(recorded):
    tiny_processor_asr = _asr_processor("recorded")
    sample = tiny_processor_asr.prepare_sample(str(ASSETS / "face_speech.mp4"))
    truth = json.loads((ASSETS / "face_speech.json").read_text())
    assert [(s.start, s.end) for s in sample.utterances] == [(0.7, 3.54), (4.84, 7.5)]
    assert [s.text for s in sample.utterances] == [t["text"] for t in truth]
    assert sample.subtitle == " ".join(t["text"] for t in truth)
    prompt = tiny_processor_asr.render_conversations([tiny_processor_asr.emer_conversation(subtitle=sample.subtitle)])
    assert "Well, maybe this is good news after all." in prompt[0][0]
    assert recorded.calls == 1


def test_subtitles_given_by_the_user_win_over_the_transcript(recorded):
    processor = _asr_processor("x")
    sample = processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=[(1.0, 2.0, "my own words")])
    assert [s.text for s in sample.utterances] == ["my own words"] and recorded.calls == 0


def test_predict_with_an_asr_model_says_where_the_words_came_from(tiny_whisper, tmp_path):
    from microemo.cli import main

    from .test_predict_time import _predict

    model = _model_folder(tmp_path)
    row = _predict(model, ASSETS / "face_speech.mp4", tmp_path / "rows.jsonl", "--asr-model", str(tiny_whisper))
    assert f"utterances and text: ASR {tiny_whisper}" in row["notes"]
    assert all(0 <= u["start"] < u["end"] for u in row["utterances"])
    # Not an ASR model: refused before the MicroEmo model loads (its folder does not even exist here).
    assert main(["predict", str(ASSETS / "face_speech.mp4"), "--model", str(tmp_path / "absent"),
                 "--asr-model", str(model)]) == 1  # fmt: skip


def _asr_processor(model: str):
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    return MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(),
                                               build_tiny_qformer_tokenizer(), utterance_source="asr", asr_model=model)  # fmt: skip


def _model_folder(tmp_path: Path) -> Path:
    import torch

    from microemo.hub import CardInfo, save_model_folder
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    config = tiny_random_config()
    torch.manual_seed(0)
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    return save_model_folder(MicroEmoForConditionalGeneration(config), processor, tmp_path / "model",
                             CardInfo(weights="random"))  # fmt: skip
