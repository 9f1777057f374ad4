"""Class C: work bounded by the input's size. Before: merging 200k cues did not finish in 300 s."""

from __future__ import annotations

import numpy as np
import pytest

from microemo.processing import utterances
from microemo.processing.utterances import (
    Span,
    SpanError,
    load_spans,
    merge_spans,
    parse_json_spans,
    parse_srt,
)


def reference_merge(spans, max_utterances):
    """The rule, written the slow way: join the neighbours with the smallest gap (leftmost on ties) until few enough."""
    merged = list(spans)
    while len(merged) > max_utterances:
        gaps = [merged[i + 1].start - merged[i].end for i in range(len(merged) - 1)]
        i = int(np.argmin(gaps))
        a, b = merged[i], merged[i + 1]
        merged[i : i + 2] = [Span(a.start, max(a.end, b.end), " ".join(t for t in (a.text, b.text) if t))]
    return merged


def test_fast_merging_joins_the_same_neighbours_as_the_rule():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 14))
        starts = np.sort(rng.choice([0.0, 0.5, 1.0, 2.0, 3.5], n) + rng.integers(0, 8, n))
        spans = [Span(float(s), float(s + rng.choice([0.0, 0.5, 2.0, 4.0])), str(rng.choice(["", "a", "b c"]))) for s in starts]
        limit = int(rng.integers(1, 15))
        assert merge_spans(spans, limit) == reference_merge(spans, limit)


def test_merging_many_cues_does_few_steps_per_cue(monkeypatch):
    """O(n log n): the heap sees a bounded number of pushes and pops per cue (counted, not timed)."""
    calls = {"push": 0, "pop": 0}
    heappush, heappop = utterances.heapq.heappush, utterances.heapq.heappop

    def counting_push(heap, item):
        calls["push"] += 1
        return heappush(heap, item)

    def counting_pop(heap):
        calls["pop"] += 1
        return heappop(heap)

    monkeypatch.setattr(utterances.heapq, "heappush", counting_push)
    monkeypatch.setattr(utterances.heapq, "heappop", counting_pop)
    n = 20_000
    merged = merge_spans([Span(i * 2.0, i * 2.0 + 1.0, "w") for i in range(n)], 8)
    assert len(merged) == 8 and merged[0].start == 0.0 and merged[-1].end == (n - 1) * 2.0 + 1.0
    assert calls["push"] <= n and calls["pop"] <= 2 * n


def test_a_subtitle_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(utterances, "MAX_SUBTITLE_BYTES", 1000)
    path = tmp_path / "huge.srt"
    path.write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\nhi\n\n" * 100)
    with pytest.raises(SpanError, match=r"huge\.srt: 3,?\d{3} bytes, over the 1,000-byte limit"):
        load_spans(path)


@pytest.mark.parametrize("kind", ["srt", "json"])
def test_more_cues_than_the_limit_is_a_clear_error(monkeypatch, kind):
    monkeypatch.setattr(utterances, "MAX_CUES", 50)
    if kind == "srt":
        text = "".join(f"00:00:{i % 60:02d},000 --> 00:00:{i % 60:02d},500\nw\n\n" for i in range(51))
        with pytest.raises(SpanError, match=r"subs: more than 50 subtitle cues"):
            parse_srt(text, "subs")
    else:
        with pytest.raises(SpanError, match=r"subs: more than 50 subtitle cues"):
            parse_json_spans([{"start": 0, "end": 1}] * 51, "subs")


def test_a_megabyte_line_without_an_arrow_is_read_in_linear_time():
    """A long line of digits used to make the timing regex backtrack over the whole line."""
    text = "1\n00:00:01,000 --> 00:00:02,000\n" + "1" * 1_000_000 + "\n"
    spans = parse_srt(text, "long")
    assert len(spans) == 1 and len(spans[0].text) == 1_000_000


# ---------------------------------------------------------------------------------------------------------------
# Streams longer than the video


def write_short_video_long_audio(path, video_seconds: int = 1, audio_seconds: int = 60):
    """A tiny video of ``video_seconds`` with a ``audio_seconds`` tone track (aac, mono, 16 kHz)."""
    import av

    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(audio_seconds * 16_000) / 16_000)).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width = video.height = 16
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16_000)
        audio.layout = "mono"
        for i in range(10 * video_seconds):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for start in range(0, tone.size, 16_000):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 16_000], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16_000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


@pytest.fixture(scope="module")
def long_audio_clip(tmp_path_factory):
    return write_short_video_long_audio(tmp_path_factory.mktemp("media") / "short_video_long_audio.mp4")


def test_the_sound_of_a_video_is_decoded_over_the_videos_span_only_with_a_note(long_audio_clip, monkeypatch):
    """Before: all 60 s were decoded (and run through voice activity) for a 1 s video, with no note."""
    from microemo.processing import audio_io
    from microemo.processing.video_io import probe_video

    decoded_until = []
    real_decode = audio_io._decode_audio

    def spy(path, rate, origin, stream, until):
        decoded_until.append(until)
        return real_decode(path, rate, origin, stream, until)

    monkeypatch.setattr(audio_io, "_decode_audio", spy)
    duration = probe_video(long_audio_clip).duration
    waveform, _, notes = audio_io.load_audio_for_video(long_audio_clip, duration)
    assert decoded_until == [pytest.approx(duration + audio_io.AUDIO_OVERRUN_SECONDS)]  # never the whole minute
    assert waveform.size == int(round(duration * 16_000))
    assert notes and "runs past the end of the video" in notes[0]
    full = audio_io.load_audio(long_audio_clip)
    assert full.size > 50 * 16_000  # the file really holds the long track


def test_a_video_whose_sound_fits_gets_no_note(tmp_path):
    from microemo.processing.audio_io import load_audio_for_video
    from microemo.processing.video_io import probe_video

    path = write_short_video_long_audio(tmp_path / "fits.mp4", video_seconds=2, audio_seconds=1)
    waveform, _, notes = load_audio_for_video(path, probe_video(path).duration)
    assert notes == [] and 0 < waveform.size <= 2 * 16_000


def test_every_streams_duration_is_read_before_decoding(long_audio_clip):
    from microemo.processing.video_io import stream_durations

    durations = {(kind, index): seconds for kind, index, seconds in stream_durations(long_audio_clip)}
    assert durations[("video", 0)] == pytest.approx(1.0, abs=0.2)
    assert durations[("audio", 0)] == pytest.approx(60.0, abs=0.5)


def test_the_app_refuses_a_short_video_with_a_long_sound_before_decoding(long_audio_clip, monkeypatch):
    """Before: the app's --max-seconds checked the video stream only."""
    from microemo.app import EmotionPage, InputError

    class NoProcessor:
        def prepare_sample(self, *args, **kwargs):
            raise AssertionError("nothing may be decoded for a refused clip")

    page = EmotionPage(type("P", (), {"processor": NoProcessor()})(), max_seconds=10)
    with pytest.raises(InputError, match=r"short_video_long_audio\.mp4: its audio stream 0 lasts 60\.\d s; .* up to 10 s"):
        page.prepare(long_audio_clip)


def test_the_app_refuses_a_question_past_its_length_limit_before_reading_the_video(long_audio_clip):
    from microemo.app import MAX_QUESTION_CHARS, EmotionPage

    class NoProcessor:
        def prepare_sample(self, *args, **kwargs):
            raise AssertionError("nothing may be decoded for a refused question")

    page = EmotionPage(type("P", (), {"processor": NoProcessor()})(), max_seconds=100)
    *_, last = page.explain(str(long_audio_clip), None, "why? " * MAX_QUESTION_CHARS)
    assert "Could not use this input. the question has 10,000 characters" in last[0]


def test_the_processor_hears_a_video_only_over_its_span_and_says_so(long_audio_clip):
    """Before: the 8 clips covered 0-60 s while the frames covered 0-1 s, with no note."""
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    processor = MicroEmoProcessor.from_model_config(tiny_random_config(), build_tiny_llm_tokenizer(),
                                                    build_tiny_qformer_tokenizer(), utterance_source="energy")  # fmt: skip
    sample = processor.prepare_sample(str(long_audio_clip), landmarks=np.full((8, 478, 3), np.nan, np.float32),
                                      num_frames=8)  # fmt: skip
    assert sample.waveform.size <= int(round(sample.video.duration * 16_000))
    assert sample.audio_clip_starts.max() + 2.0 <= max(sample.video.duration, 2.0) + 1e-6
    assert any("runs past the end of the video" in note for note in sample.notes)
