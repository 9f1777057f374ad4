"""Per-process state and logging shared by the Hub-shipped processing files.

- :class:`ProcessLocalCache`: a dict for things that belong to one process (a face-mesh worker, a
  loaded VAD model, memoised file digests). It is emptied in a forked child and pickles as an empty
  cache, so a processor that refers to one can be pickled and hashed (``datasets.map`` fingerprints
  it) identically in every process.
- A forked child runs torch on one thread (see ``_forget_in_child``).
- :func:`get_logger`: loggers under the ``microemo`` name whose records also obey transformers'
  verbosity (``transformers.logging.set_verbosity_error()`` silences them).
"""

from __future__ import annotations

import logging
import os
import sys
import weakref

_CACHES: weakref.WeakSet = weakref.WeakSet()


class ProcessLocalCache(dict):
    """A dict that a forked child sees empty and that pickles as an empty cache.

    What a forked child inherits from its parent (a worker's pipes, a mediapipe graph) must not be used
    there; the parent's objects are kept referenced in ``orphans`` so that no destructor of theirs runs
    in the child either.
    """

    def __init__(self) -> None:
        super().__init__()
        self.orphans: list = []
        _CACHES.add(self)

    def __reduce__(self):
        return (ProcessLocalCache, ())

    def __hash__(self) -> int:  # a WeakSet member must be hashable; identity is what matters
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def _forget_in_child() -> None:
    for cache in list(_CACHES):
        cache.orphans.extend(cache.values())
        dict.clear(cache)
    # torch's OpenMP thread pool does not survive a fork: the first parallel op in a child of a process that had
    # used it hangs or crashes (a datasets.map worker resizing frames or running silero-vad). One thread, as
    # torch's own DataLoader workers do; the parallelism of such children is across processes.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class _TransformersVerbosity(logging.Filter):
    """Drops records below transformers' current verbosity (WARNING by default)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            return True
        return record.levelno >= hf_logging.get_verbosity()


_FILTER = _TransformersVerbosity()


def get_logger(name: str) -> logging.Logger:
    """The logger ``microemo.<name>``, filtered by transformers' verbosity.

    The same name whether the file runs from the installed package or as remote code from the Hub, so
    ``logging.getLogger("microemo")`` configures both.
    """
    logger = logging.getLogger(f"microemo.{name}")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


__all__ = ["ProcessLocalCache", "get_logger"]
