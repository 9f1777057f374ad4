"""Bad or unusual inputs to the processor: channel layouts, several audio streams, non-finite samples, empty
and out-of-order inputs, limits that used to be passed silently."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FRAMES = np.zeros((4, 32, 32, 3), np.uint8)
NO_FACE = np.full((4, 478, 3), np.nan, np.float32)


@pytest.fixture(scope="module")
def processor():
    return MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), utterance_source="energy"
    )


def speech() -> np.ndarray:
    from microemo.processing.audio_io import load_audio

    return load_audio(ASSETS / "face_speech.mp4")[: 4 * 16_000]


def spans_of(processor, audio, **kwargs):
    out = processor(videos=FRAMES, landmarks=NO_FACE, audio=audio, return_metadata=True, **kwargs)
    return [(round(s, 1), round(e, 1)) for s, e, _ in out["utterance_spans"][0]], out["notes"][0]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_a_stereo_waveform_is_mixed_down_not_flattened(processor, layout):
    """Before: [2, N] became one track twice as long, [N, 2] interleaved samples; both gave wrong spans silently."""
    mono = speech()
    stereo = np.stack([mono, mono]) if layout == "channels_first" else np.stack([mono, mono], axis=1)
    mono_spans, _ = spans_of(processor, mono)
    stereo_spans, notes = spans_of(processor, stereo)
    assert stereo_spans == mono_spans and mono_spans
    assert "audio: 2 channels mixed down to mono" in notes


def test_a_waveform_without_a_clear_channel_axis_is_refused(processor):
    with pytest.raises(ValueError, match=r"video: audio: a waveform of shape \(16, 16\) has no clear channel axis"):
        processor(videos=FRAMES, landmarks=NO_FACE, audio=np.zeros((16, 16), np.float32))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_waveform_is_refused(processor, value):
    audio = speech()
    audio[100] = value
    with pytest.raises(ValueError, match="the waveform holds NaN or infinite samples"):
        processor(videos=FRAMES, landmarks=NO_FACE, audio=audio)


def test_an_empty_waveform_is_refused_with_the_alternative(processor):
    with pytest.raises(ValueError, match="the waveform is empty; pass None for a sample without audio"):
        processor(videos=FRAMES, landmarks=NO_FACE, audio=np.zeros(0, np.float32))


def write_two_audio_streams(path: Path, default: int) -> Path:
    """A 3 s video whose first audio stream is a loud 440 Hz tone and whose second is speech."""
    import av

    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * 16_000) / 16_000)
    tracks = [tone, speech()[: 3 * 16_000]]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        streams = [container.add_stream("aac", rate=16_000) for _ in tracks]
        for index, stream in enumerate(streams):
            stream.layout = "mono"
            stream.disposition = av.stream.Disposition.default if index == default else av.stream.Disposition(0)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for stream, wave in zip(streams, tracks, strict=True):
            frame = av.AudioFrame.from_ndarray(wave[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16_000, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
    return path


def test_the_audio_stream_a_player_would_play_is_heard_and_named(processor, tmp_path):
    """Before: the first stream was used even when it was a tone track marked non-default, with no note."""
    path = write_two_audio_streams(tmp_path / "two.mp4", default=1)
    landmarks = np.full((4, 478, 3), np.nan, np.float32)
    out = processor(videos=path, landmarks=landmarks, num_frames=4, return_metadata=True)
    assert any("audio stream 1 of 2 (marked default)" in note for note in out["notes"][0])
    assert out["utterance_spans"][0], "the speech track has utterances"
    chosen = MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), utterance_source="energy",
        audio_stream=0,
    )  # fmt: skip
    out = chosen(videos=path, landmarks=landmarks, num_frames=4, return_metadata=True)
    assert any("audio stream 0 of 2 (as asked)" in note for note in out["notes"][0])
    with pytest.raises(ValueError, match=r"two.mp4: audio_stream=5, but the file has 2 audio stream\(s\)"):
        MicroEmoProcessor.from_model_config(
            tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), audio_stream=5
        )(videos=path, landmarks=landmarks, num_frames=4)


@pytest.mark.parametrize("num_frames", [0, -2, 2.5, True])
def test_num_frames_must_be_a_whole_number_of_at_least_one(processor, num_frames):
    """Before: num_frames=0 silently became the default."""
    with pytest.raises(ValueError, match=rf"num_frames must be a whole number >= 1 .* got {num_frames!r}"):
        processor(videos=ASSETS / "face_speech.mp4", num_frames=num_frames)


def test_empty_and_out_of_order_video_inputs(processor):
    with pytest.raises(ValueError, match="`videos` is empty"):
        processor(videos=[])
    with pytest.raises(ValueError, match=r"non-empty \[T, H, W, 3\] RGB array, got shape \(0, 32, 32, 3\)"):
        processor(videos=np.zeros((0, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frame timestamps must increase from frame to frame, got \[0.0, 2.0, 1.0, 3.0\]"):
        processor(videos=FRAMES, landmarks=NO_FACE, frame_timestamps=[0.0, 2.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="frames hold NaN"):
        processor(videos=np.full((2, 8, 8, 3), np.nan, np.float32))


def test_many_utterances_are_merged_with_a_warning_and_a_note(processor, caplog):
    """Before: 20 utterances were merged down to max_utterances without a word."""
    spans = [(0.15 * k, 0.15 * k + 0.1, f"u{k}") for k in range(20)]
    with caplog.at_level(logging.WARNING, logger="microemo"):
        out = processor(videos=FRAMES, landmarks=NO_FACE, utterances=spans, return_metadata=True)
    assert len(out["utterance_spans"][0]) == processor.max_utterances
    message = f"20 utterances merged down to max_utterances={processor.max_utterances}"
    assert any(message in note for note in out["notes"][0])
    assert any(message in record.getMessage() for record in caplog.records)


def test_a_prompt_longer_than_the_language_models_context_is_refused(processor):
    """Before: 80,095 ids against max_position_embeddings 2048 passed on to the model."""
    assert processor.max_prompt_length == tiny_random_config().text_config.max_position_embeddings
    long_text = "Here is the video: <video>. " + "happy sad " * 2000
    with pytest.raises(ValueError, match=r"sample 0: the prompt has \d+ tokens .* more than the language model's context of 2048"):
        processor(text=long_text, videos=FRAMES, landmarks=NO_FACE, utterances=[])


def test_integer_pcm_samples_are_scaled_not_taken_as_huge_floats(processor):
    pcm = np.round(speech() * 32767).astype(np.int16)
    float_spans, _ = spans_of(processor, speech())
    pcm_spans, notes = spans_of(processor, pcm)
    assert pcm_spans == float_spans and "audio: int16 samples scaled to [-1, 1]" in notes


@pytest.mark.parametrize("rate", [0, -16_000, 44_100.5])
def test_a_sampling_rate_must_be_positive_hertz(processor, rate):
    with pytest.raises(ValueError, match=rf"sampling_rate must be a whole number of Hz > 0, got {rate!r}"):
        processor(videos=FRAMES, landmarks=NO_FACE, audio=speech(), sampling_rate=rate)


def test_inputs_that_are_not_what_they_claim(processor):
    with pytest.raises(ValueError, match="a video is None; expected a file path"):
        processor(videos=[FRAMES, None])
    with pytest.raises(ValueError, match="clue_masks must be boolean"):
        processor(videos=FRAMES, clue_masks=np.full((4, 2, 64), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"/: is a directory, not a media file"):
        processor(videos="/")
