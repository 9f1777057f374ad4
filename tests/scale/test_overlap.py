"""Two chains of one sample at the same time (processing/overlap.py): same results and errors as in order."""

from __future__ import annotations

import threading

import pytest

from microemo.processing.overlap import run_concurrently


def test_both_chains_run_at_the_same_time():
    meeting = threading.Barrier(2, timeout=2)  # passes only when both sides wait on it together

    def chain(name: str) -> str:
        meeting.wait()
        return name

    assert run_concurrently(lambda: chain("video"), lambda: chain("sound")) == ("video", "sound")
    meeting.reset()
    with pytest.raises(threading.BrokenBarrierError):  # in order, the first chain waits alone
        run_concurrently(lambda: chain("video"), lambda: chain("sound"), overlap=False)


def test_without_overlap_they_run_in_order_and_give_the_same_results():
    order: list[str] = []
    results = run_concurrently(lambda: order.append("video") or 1, lambda: order.append("sound") or 2, overlap=False)
    assert results == (1, 2) and order == ["video", "sound"]
    assert run_concurrently(lambda: 1, lambda: 2) == results


@pytest.mark.parametrize("overlap", [True, False])
def test_the_first_chains_error_comes_first_and_the_thread_has_ended(overlap):
    ended = threading.Event()

    def video():
        try:
            raise ValueError("corrupt video")
        finally:
            ended.set()

    def sound():
        raise OSError("no audio")

    with pytest.raises(ValueError, match="corrupt video"):
        run_concurrently(video, sound, overlap=overlap)
    assert ended.is_set()
    with pytest.raises(OSError, match="no audio"):
        run_concurrently(lambda: 1, sound, overlap=overlap)


def test_a_failing_sound_chain_waits_for_the_video_chain_before_raising():
    finished = threading.Event()

    def video():
        finished.wait(0.2)  # still working when the sound chain fails
        finished.set()
        return "frames"

    with pytest.raises(OSError):
        run_concurrently(video, lambda: (_ for _ in ()).throw(OSError("no audio")))
    assert finished.is_set()
