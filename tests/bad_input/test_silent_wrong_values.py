"""Class E: values that used to be read as something else without a word are refused or noted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from microemo.processing.utterances import SpanError, load_spans, parse_json_spans


@pytest.mark.parametrize("start", [True, False, "1.0", None, [1], {"s": 1}])
def test_json_subtitle_times_must_be_numbers_not_booleans_or_strings(start):
    """Before: `"start": true` became 1.0 s."""
    with pytest.raises(SpanError, match=r"subs\.json: item 0: start/end must be numbers \(seconds\), got start="):
        parse_json_spans(json.dumps([{"start": start, "end": 2.0, "text": "hi"}]), "subs.json")


@pytest.mark.parametrize("text", [{"a": 1}, ["a", "b"], 3, True])
def test_json_subtitle_text_must_be_a_string(tmp_path, text):
    """Before: a dict `text` reached the prompt as its Python repr."""
    path = tmp_path / "subs.json"
    path.write_text(json.dumps({"utterances": [{"start": 0, "end": 1, "text": text}]}))
    with pytest.raises(SpanError, match=r"subs\.json: item 0: 'text' must be a string"):
        load_spans(path)


def test_json_subtitle_null_or_missing_text_is_empty():
    spans = parse_json_spans('[{"start": 0, "end": 1, "text": null}, {"start": 1, "end": 2}]', "subs.json")
    assert [s.text for s in spans] == ["", ""]


@pytest.mark.parametrize("name", ["pixel_values", "audio_values"])
def test_finite_but_huge_features_are_refused_by_sample(tiny_model, make_batch, name):
    """Before: 1e30 gave non-finite logits without an error."""
    batch = make_batch(tiny_model.config, frames=[4, 3], utterances=[2, 1], audio_clips=[3, 2])
    tensor = batch[name].clone()
    tensor[1].view(-1)[3] = 1e30
    with pytest.raises(ValueError, match=rf"`{name}` holds values beyond \+-10000 \(sample\(s\) \[1\]\)"), torch.no_grad():
        tiny_model(**dict(batch, **{name: tensor}))


# ---------------------------------------------------------------------------------------------------------------
# Pixel conventions of frame arrays


def test_float_frames_in_minus_one_to_one_are_mapped_with_a_note():
    """Before: clipped to black half-images without a word."""
    from microemo.processing.video_io import frames_from_array

    frames = np.linspace(-1.0, 1.0, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    video = frames_from_array(frames)
    assert video.frames.min() == 0 and video.frames.max() == 255
    assert np.abs(video.frames.astype(int) - (frames + 1) * 127.5).max() <= 0.5
    assert any("normalised -1-1" in note for note in video.notes)


def test_uint16_frames_are_scaled_from_16_bits_with_a_note():
    """Before: clipped to white."""
    from microemo.processing.video_io import frames_from_array

    frames = np.full((1, 4, 4, 3), 32896, dtype=np.uint16)  # mid-grey in 16 bits
    video = frames_from_array(frames)
    assert (video.frames == 128).all() and any("16-bit" in note for note in video.notes)


@pytest.mark.parametrize("frames", [np.full((1, 4, 4, 3), 300.0), np.full((1, 4, 4, 3), -5.0), np.full((1, 4, 4, 3), 1e30),
                                    np.full((1, 4, 4, 3), -3, dtype=np.int16), np.full((1, 4, 4, 3), 70_000, dtype=np.int64)])  # fmt: skip
def test_frames_outside_every_pixel_convention_are_refused(frames):
    from microemo.processing.video_io import frames_from_array

    with pytest.raises(ValueError, match="follow none of the pixel conventions"):
        frames_from_array(frames)


@pytest.mark.parametrize(
    "frames, expected",
    [(np.full((1, 2, 2, 3), 0.5, np.float32), 127), (np.full((1, 2, 2, 3), 200.0), 200), (np.full((1, 2, 2, 3), 7, np.int64), 7)],
)
def test_the_usual_conventions_convert_as_before_and_without_a_note(frames, expected):
    from microemo.processing.video_io import frames_from_array

    video = frames_from_array(frames)
    assert (video.frames == expected).all() and video.notes == []


# ---------------------------------------------------------------------------------------------------------------
# Landmarks


def test_landmarks_in_pixels_are_refused():
    """Before: accepted, and a face was 'found' on every frame."""
    from microemo.processing.input_checks import check_landmarks

    points = np.random.default_rng(0).uniform(0, 640, (2, 478, 2))
    with pytest.raises(ValueError, match=r"clip: landmark x/y values span .*fractions of the frame.*Pixels\?"):
        check_landmarks(points, 2, "clip")


def test_normalised_landmarks_with_no_face_rows_pass():
    from microemo.processing.input_checks import check_landmarks

    points = np.random.default_rng(0).uniform(-0.05, 1.05, (3, 478, 3))
    points[1] = np.nan
    assert check_landmarks(points, 3, "clip").dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 478), (3, 478, 2), (2, 478, 4), (1, 2, 478, 2)])
def test_landmarks_of_the_wrong_shape_are_named(shape):
    from microemo.processing.input_checks import check_landmarks

    with pytest.raises(ValueError, match=r"clip: landmarks must be \[T=2, 478, 2 or 3\]"):
        check_landmarks(np.zeros(shape), 2, "clip")


def test_a_jsonl_subtitle_or_question_that_is_not_text_sends_the_row_to_the_report(tmp_path):
    import shutil
    from pathlib import Path

    from microemo.training.data import jsonl_rows

    shutil.copy(Path(__file__).resolve().parents[1] / "assets" / "noface_speech.mp4", tmp_path / "v.mp4")
    lines = [{"video": "v.mp4", "name": "a", "answer": "calm", "subtitle": {"text": "hi"}},
             {"video": "v.mp4", "name": "b", "answer": "calm", "question": ["why"]},
             {"video": "v.mp4", "name": "c", "answer": "calm", "subtitle": "hi", "question": "why?"}]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = jsonl_rows(tmp_path / "train.jsonl")
    assert [row["name"] for row in rows.rows] == ["c"]
    assert [bad["reason"] for bad in rows.bad] == ["'subtitle' must be a string, got dict", "'question' must be a string, got list"]


def test_a_truncated_video_says_its_frames_stop_early_in_the_notes(tmp_path):
    """Before: only logged; the predict row did not say so."""
    import av

    from microemo.processing.video_io import decode_video

    full = tmp_path / "full.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:  # index first: a cut file opens
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    video = decode_video(cut, 8)
    assert video.timestamps[-1] < 4.0
    assert any(note.startswith("frames stop early") and "6.00 s" in note for note in video.notes)
    assert decode_video(full, 8).notes == []


def test_the_processor_refuses_landmarks_in_pixels():
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    processor = MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(),
                                                    build_tiny_qformer_tokenizer())  # fmt: skip
    pixels = np.random.default_rng(0).uniform(0, 224, (2, 478, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"video: landmark x/y values span .* fractions of the frame"):
        processor(videos=np.zeros((2, 16, 16, 3), np.uint8), landmarks=pixels, utterances=[])
