"""Two independent chains of one sample's preparation at the same time: a thread for one, the caller for the other.

The video chain (decode, then the face mesh, which runs in its worker process while the thread waits on the pipe)
and the sound chain (audio load, then voice activity) share nothing until the utterance spans are assigned to
frames, and both spend their time outside the GIL (FFmpeg, MediaPipe in another process, onnxruntime or torch).
Run side by side, a sample takes about the longer chain instead of their sum.

Hub-shipped with the processor: standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


def run_concurrently(first: Callable[[], A], second: Callable[[], B], *, overlap: bool = True) -> tuple[A, B]:
    """``(first(), second())``, with ``first`` in a thread of its own while ``second`` runs in the caller.

    The results, and the exception raised when either fails, are those of running them one after the other
    (``first``'s exception before ``second``'s); the thread has always ended when this returns or raises, so a
    failing ``second`` never leaves ``first`` writing to a shared worker. ``overlap=False`` runs them in order.
    """
    if not overlap:
        return first(), second()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = first()
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            outcome["error"] = error

    thread = threading.Thread(target=target, name="microemo-video-chain", daemon=True)
    thread.start()
    try:
        second_value = second()
    except BaseException:
        thread.join()
        if "error" in outcome:
            raise outcome["error"] from None
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], second_value  # type: ignore[return-value]
