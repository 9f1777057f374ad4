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
