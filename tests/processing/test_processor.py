"""MicroEmoProcessor: the model-input contract, placeholder counts, labels, round trip, and the tiny model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.video_io import decode_video


@pytest.fixture(scope="module")
def batch(processor, face_video, rotated_video, noface_video, assets):
    conversations = [
        processor.emer_conversation(video, utterances=utterances, answer=answer)
        for video, utterances, answer in [
            (face_video, assets / "face_speech.srt", "She is surprised, then relieved."),
            (rotated_video, None, "Surprised."),
            (noface_video, None, "Nobody is visible."),
        ]
    ]
    return processor.apply_chat_template(conversations, tokenize=True, return_dict=True, return_metadata=True)


def test_contract_keys_shapes_and_dtypes(batch, config):
    p = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    assert batch["pixel_values"].shape == (3, 8, 3, 64, 64) and batch["pixel_values"].dtype == torch.float32
    assert batch["frame_mask"].dtype == torch.bool and batch["frame_mask"].all()
    assert batch["clue_masks"].shape == (3, 8, 5, p) and batch["clue_masks"].dtype == torch.bool
    assert batch["qformer_input_ids"].shape[:2] == (3, 8)
    assert batch["qformer_attention_mask"].shape == batch["qformer_input_ids"].shape
    assert batch["audio_values"].shape == (3, 8, 1, 128, 204)
    assert batch["audio_clip_mask"].shape == (3, 8)
    # Utterances: 2 from the SRT, none for the silent clip, 1 found by VAD on the no-face clip.
    assert batch["utterance_frame_mask"].shape == (3, 2, 8)
    assert [len(s) for s in batch["utterance_spans"]] == [2, 0, 1]
    for b, spans in enumerate(batch["utterance_spans"]):
        assert batch["utterance_frame_mask"][b, : len(spans)].any(dim=1).all()
        assert not batch["utterance_frame_mask"][b, len(spans) :].any()
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["labels"].shape


def test_missing_modalities_are_visible(batch):
    assert batch["face_found"][:2].all() and not batch["face_found"][2].any()
    assert batch["notes"][0] == [] and any("no audio" in note for note in batch["notes"][1])
    assert any("no face" in note for note in batch["notes"][2])
    assert batch["clue_masks"][:2].flatten(2).any(-1).all() and not batch["clue_masks"][2].any()
    assert batch["audio_clip_mask"][0].all() and batch["audio_clip_mask"][2].all()
    assert not batch["audio_clip_mask"][1].any() and (batch["audio_values"][1] == 0).all()


def test_placeholders_expand_to_the_models_token_counts(batch, config):
    for b, utterances in enumerate([2, 0, 1]):
        ids = batch["input_ids"][b]
        assert int((ids == config.video_token_id).sum()) == config.num_video_tokens(utterances)
        audio = config.num_audio_query_tokens if batch["audio_clip_mask"][b].any() else 0
        assert int((ids == config.audio_token_id).sum()) == audio


def test_without_utterance_windows_only_the_global_tokens(config, face_video, assets):
    off = tiny_random_config(use_utterance_windows=False)
    processor = MicroEmoProcessor.from_model_config(off, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    out = processor(videos=face_video, utterances=assets / "face_speech.json")
    assert int((out["input_ids"] == off.video_token_id).sum()) == off.num_video_query_tokens


def test_timestamp_text_per_frame(batch, processor):
    for b in range(3):
        for t in range(8):
            text = processor.qformer_tokenizer.decode(batch["qformer_input_ids"][b, t], skip_special_tokens=True)
            stamp = round(float(batch["frame_timestamps"][b, t]), 1)
            assert text.replace(" ", "") == f"thisframeissampledat{stamp:.1f}second."


def test_labels_supervise_only_the_answer(batch, processor):
    for b, answer in enumerate(["She is surprised, then relieved.", "Surprised.", "Nobody is visible."]):
        supervised = batch["labels"][b][batch["labels"][b] != -100]
        # The answer and its end token (the chat template decides the spacing between them: LLaMA-2 writes " </s>").
        text, eos = processor.tokenizer.decode(supervised), processor.tokenizer.eos_token
        assert text.endswith(eos) and text[: -len(eos)].rstrip() == answer
        # The supervised tokens are the last tokens of the row, and they equal the input there.
        n = supervised.numel()
        assert torch.equal(batch["input_ids"][b, -n:], supervised)
        assert (batch["labels"][b, :-n] == -100).all()


def test_left_padding(batch):
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()
    shortest = int(lengths.argmin())
    assert batch["attention_mask"][shortest, -1] == 1 and batch["attention_mask"][shortest, 0] == 0


def test_chat_messages_and_generation_prompt(processor, rotated_video, noface_video, config):
    messages = [
        {"role": "system", "content": "You read emotions."},
        {"role": "user", "content": [{"type": "video", "path": str(rotated_video)}, {"type": "text", "text": "How does the scene feel?"}]},
    ]
    out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True, utterances=[])
    text = processor.decode(out["input_ids"][0])
    # Role markers come from the chat template (rendered here, not spelled out): the system text comes first, and
    # the ids end with the rendered generation prompt.
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.startswith(processor.tokenizer.bos_token) and "You read emotions." in text
    assert text.index("You read emotions.") < text.index("How does the scene feel?")
    assert text.endswith(rendered[rendered.index("How does the scene feel?") :])
    assert "labels" not in out


def test_a_video_with_sound_brings_its_audio_tokens_right_after_the_video_tokens(processor, noface_video, config):
    """The paper's order (section 3.4): video tokens, then audio tokens, then the text."""
    messages = [{"role": "user", "content": [{"type": "video", "path": str(noface_video)}, {"type": "text", "text": "Why?"}]}]
    out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = out["input_ids"][0].tolist()
    first_video, first_audio = ids.index(config.video_token_id), ids.index(config.audio_token_id)
    n_video, n_audio = ids.count(config.video_token_id), ids.count(config.audio_token_id)
    assert n_audio == config.num_audio_query_tokens and out["audio_clip_mask"].all()
    assert first_audio == first_video + n_video  # contiguous: [video tokens][audio tokens]
    assert processor.decode(ids[first_audio + n_audio :]).startswith("</Video>. Why?")
    # Switched off: no audio tokens, and the note says why.
    off = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, use_audio_in_video=False, return_metadata=True
    )
    assert int((off["input_ids"] == config.audio_token_id).sum()) == 0 and not off["audio_clip_mask"].any()
    assert any("use_audio_in_video=False" in note for note in off["notes"][0])


def test_given_landmarks_or_masks_skip_face_mesh(processor, face_video, config):
    decoded = decode_video(face_video, 4)
    landmarks = np.full((4, 478, 3), np.nan, np.float32)
    out = processor(videos=decoded, landmarks=landmarks, utterances=[], return_metadata=True)
    assert not out["face_found"].any() and not out["clue_masks"].any()
    masks = np.zeros((4, 2, 64), bool)
    masks[1, 0, 10] = True
    out = processor(videos=decoded, clue_masks=masks, utterances=[], return_metadata=True)
    assert out["clue_masks"].shape == (1, 4, 2, 64) and out["clue_masks"][0, 1, 0, 10]
    assert out["face_found"][0].tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match=r"clue_masks must be \[T=4, R, P=64\]"):
        processor(videos=decoded, clue_masks=np.zeros((4, 2, 50), bool))


def test_frame_arrays_and_waveforms(processor):
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    out = processor(
        videos=[frames, frames[:2]],
        frame_timestamps=[[0.0, 0.5, 1.0], None],
        audio=[np.zeros(8000, np.float32), None],
        utterances=[[(0.1, 0.6, "hi")], []],
        return_metadata=True,
    )
    assert out["frame_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert out["audio_clip_mask"][0].all() and not out["audio_clip_mask"][1].any()
    assert out["utterance_frame_mask"].shape == (2, 1, 3)
    assert out["utterance_frame_mask"][0, 0].tolist() == [False, True, False]


def test_bad_inputs_name_the_problem(processor, tmp_path, face_video, assets):
    with pytest.raises(FileNotFoundError, match="gone.mp4: no such file"):
        processor(videos=tmp_path / "gone.mp4")
    with pytest.raises(ValueError, match="one entry per video"):
        processor(videos=[face_video, face_video], audio=[None])
    spans = tmp_path / "late.json"
    spans.write_text('[{"start": 30.0, "end": 31.0, "text": "after the end"}]')
    with pytest.raises(ValueError, match=r"late\.json: utterance 0 starts at 30\.000 s, at or after the end"):
        processor(videos=face_video, utterances=spans)
    with pytest.raises(ValueError, match="more than the model's max_frames"):
        processor(videos=face_video, num_frames=64)


def test_from_model_config_checks_placeholder_ids(config):
    with pytest.raises(ValueError, match="tokenizer places <video>/<audio> at ids 1022/1023"):
        MicroEmoProcessor.from_model_config(
            tiny_random_config(video_token_id=5, audio_token_id=6),
            build_tiny_llm_tokenizer(),
            build_tiny_qformer_tokenizer(),
        )


def test_round_trip_through_save_pretrained(processor, tmp_path, face_video, assets):
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path / "saved")  # registers itself for AutoProcessor
    for name in ("processing_microemo.py", "face_regions.py", "video_io.py", "qformer_tokenizer/tokenizer.json"):
        assert (tmp_path / "saved" / name).is_file()
    loaded = AutoProcessor.from_pretrained(tmp_path / "saved", trust_remote_code=True)
    conversation = processor.emer_conversation(face_video, utterances=assets / "face_speech.srt", answer="Relieved.")
    kwargs = dict(tokenize=True, return_dict=True)
    first, second = processor.apply_chat_template(conversation, **kwargs), loaded.apply_chat_template(conversation, **kwargs)
    assert sorted(first) == sorted(second)
    for key in first:
        assert torch.equal(first[key], second[key]), key

    # And in a fresh Python that cannot import this project at all (as on the Hub).
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["microemo"] = None
        import torch
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path / "saved")!r}, trust_remote_code=True)
        conversation = processor.emer_conversation({str(face_video)!r}, utterances={str(assets / "face_speech.srt")!r}, answer="Relieved.")
        out = processor.apply_chat_template(conversation, tokenize=True, return_dict=True)
        torch.save(dict(out), {str(tmp_path / "out.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True, timeout=300)
    remote = torch.load(tmp_path / "out.pt", weights_only=True)
    for key in first:
        assert torch.equal(first[key], remote[key]), key


def test_processor_output_feeds_the_tiny_model(batch, config, processor):
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration

    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(config).eval()
    inputs = {k: v for k, v in batch.items() if k in processor.model_input_names}
    outputs = model(**inputs, labels=batch["labels"])
    assert torch.isfinite(outputs.loss)
    assert outputs.logits.shape[:2] == batch["input_ids"].shape
    outputs.loss.backward()  # the answer-only labels train the model's trainable parts
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape == (3, batch["input_ids"].shape[1] + 4)
    assert torch.equal(generated[:, : batch["input_ids"].shape[1]], batch["input_ids"])


def test_asr_utterances_through_a_transformers_pipeline(config, face_video, monkeypatch):
    """With utterance_source='asr' the processor calls transformers' ASR pipeline with timestamps and
    uses its chunks as utterances (the pipeline is replaced here: no model may be downloaded in tests)."""
    import transformers

    seen = {}

    def fake_pipeline(task, model, device=None):
        seen["task"], seen["model"] = task, model

        def run(inputs, return_timestamps):
            seen["sampling_rate"], seen["timestamps"] = inputs["sampling_rate"], return_timestamps
            return {"text": "one two", "chunks": [
                {"text": " one", "timestamp": (0.6, 3.4)},
                {"text": " two", "timestamp": (4.9, None)},
            ]}  # fmt: skip

        return run

    monkeypatch.setattr(transformers, "pipeline", fake_pipeline)
    # The model is checked to be a speech-recognition model before it loads (issue 20); there is no such
    # folder here, so the check is replaced too, and the per-process pipeline cache starts empty.
    from microemo.processing import asr

    monkeypatch.setattr(asr, "asr_kind", lambda model: "seq2seq")
    monkeypatch.setattr(asr, "_PIPELINES", {})
    processor = MicroEmoProcessor.from_model_config(
        config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(),
        utterance_source="asr", asr_model="local/whisper-folder",
    )  # fmt: skip
    out = processor(videos=face_video, return_metadata=True)
    assert seen == {"task": "automatic-speech-recognition", "model": "local/whisper-folder", "sampling_rate": 16_000, "timestamps": True}
    spans = out["utterance_spans"][0]
    assert [s[2] for s in spans] == ["one", "two"] and spans[1][1] == pytest.approx(8.2, abs=0.1)
    assert "<Subtitle>one two</Subtitle>" in processor.decode(out["input_ids"][0])
    with pytest.raises(ValueError, match="needs asr_model"):
        MicroEmoProcessor.from_model_config(
            config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), utterance_source="asr"
        )


def test_saved_processor_works_without_pyav_and_mediapipe(processor, tmp_path):
    """On frames with landmarks given, neither PyAV nor mediapipe is needed; a file path then says what to install."""
    processor.save_pretrained(tmp_path / "saved")
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("microemo", "av", "mediapipe"):
            sys.modules[name] = None
        import numpy as np
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path / "saved")!r}, trust_remote_code=True)
        frames = np.zeros((2, 32, 32, 3), np.uint8)
        landmarks = np.full((2, 478, 3), np.nan, np.float32)
        out = processor(videos=frames, landmarks=landmarks, utterances=[(0.0, 1.0, "hi")])
        assert out["pixel_values"].shape == (1, 2, 3, 64, 64), out["pixel_values"].shape
        try:
            processor(videos="clip.mp4")
        except (ImportError, FileNotFoundError) as error:
            print("ERROR:", error)
        """
    )
    (tmp_path / "clip.mp4").write_bytes(bytes(64))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR: Decoding video or audio files needs PyAV" in result.stdout


def test_a_transformers_audio_encoders_own_features(config, face_video):
    """audio_feature_layout='native' passes the chosen feature extractor's per-clip output through."""
    from transformers import WhisperFeatureExtractor

    processor = MicroEmoProcessor.from_model_config(
        config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(),
        feature_extractor=WhisperFeatureExtractor(), audio_feature_layout="native", num_audio_clips=3,
    )  # fmt: skip
    out = processor(videos=face_video, utterances=[])
    assert out["audio_values"].shape == (1, 3, 80, 3000)
    assert out["audio_clip_mask"].tolist() == [[True, True, True]]


def test_bad_videos_through_the_processor(processor, tmp_path):
    from .conftest import write_frames, write_wav

    one = write_frames(tmp_path / "one.mp4", [np.full((48, 48, 3), 120, np.uint8)])
    out = processor(videos=one, return_metadata=True)
    assert out["pixel_values"].shape == (1, 1, 3, 64, 64) and out["frame_mask"].tolist() == [[True]]
    assert not out["audio_clip_mask"].any() and out["utterance_frame_mask"].shape == (1, 0, 1)
    with pytest.raises(ValueError, match=r"talk\.wav: has no video stream"):
        processor(videos=write_wav(tmp_path / "talk.wav", np.zeros(16_000, np.float32)))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.mp4: is an empty file"):
        processor(videos=empty)


def test_separate_audio_file_for_a_silent_video(processor, rotated_video, face_video, tmp_path):
    from microemo.processing.audio_io import load_audio

    from .conftest import write_wav

    speech = write_wav(tmp_path / "speech.wav", load_audio(face_video)[: 3 * 16_000])
    out = processor(videos=rotated_video, audio=speech, return_metadata=True)
    assert out["audio_clip_mask"].all()
    assert int((out["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<audio>")).sum()) == 4
    # The speech starts at 0.7 s; the VAD span is fitted to this 3 s video.
    (start, end, _), = out["utterance_spans"][0]
    assert abs(start - 0.7) < 0.3 and end <= 2.98
