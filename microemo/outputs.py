"""The predictions file of `microemo predict`: read it, resume it, lock it, retry its failures.

- Nothing is modified before the whole file is known to be a predictions file: every complete line a JSON object
  with a ``name``, and a last line without its newline (the cut-off row of a killed run) that begins like one of
  our rows. Anything else is refused, naming the file and the line, and left as it was.
- One writer at a time: an exclusive lock (``<output>.lock``, through ``filelock``) is held for the whole run; a
  second run on the same output is refused with the process that holds it.
- Failed rows are retried on resume by default: they leave the file (rewritten atomically) and their videos are
  predicted again; each row counts its ``attempts``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

# Our rows are written by `json.dumps` of a dict whose first key is "name".
_ROW_START = b'{"name": '


class OutputLockedError(RuntimeError):
    """Another process is writing the same predictions file."""


def read_rows(output: Path) -> tuple[dict[str, dict], int]:
    """Rows of a predictions file by name (the last row of a name wins), and the length of its complete lines.

    Raises ``ValueError`` naming the file and line for anything that is not a predictions file; the file is not
    modified (:func:`drop_partial_line` cuts a killed run's last line, under the lock).
    """
    if not output.exists():
        return {}, 0
    if not output.is_file():
        raise ValueError(f"--output {output}: not a regular file; expected a predictions .jsonl file (or a new path)")
    data = output.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    tail = data[len(complete) :]
    if tail.strip() and not tail.lstrip().startswith(_ROW_START):
        raise ValueError(
            f"{output}: its last line ({tail[:60]!r}) is neither a predictions row nor the start of one; is it a "
            "predictions file? Nothing was changed; give another --output"
        )
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError as error:
        line = complete[: error.start].count(b"\n") + 1
        raise ValueError(f"{output}, line {line}: not UTF-8 text; expected a predictions .jsonl file written by "
                         "`microemo predict`. Nothing was changed") from None  # fmt: skip
    rows: dict[str, dict] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            message = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
            raise ValueError(f"{output}, line {number}: not JSON ({message}); is it a predictions file? Nothing was "
                             "changed") from None  # fmt: skip
        if not isinstance(row, dict):
            raise ValueError(f"{output}, line {number}: a JSON {type(row).__name__}, expected a row object with a "
                             "'name'; is it a predictions file? Nothing was changed")  # fmt: skip
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{output}, line {number}: a row without a 'name' (a non-empty string), got {name!r:.40}; "
                             "is it a predictions file? Nothing was changed")  # fmt: skip
        rows[name] = row
    return rows, len(complete)


def drop_partial_line(output: Path, complete_length: int) -> None:
    """Cut the file back to its complete lines (the partial row a killed write leaves)."""
    if output.exists() and output.stat().st_size > complete_length:
        with open(output, "r+b") as handle:
            handle.truncate(complete_length)


def rewrite_rows(output: Path, rows: Iterable[dict]) -> None:
    """Replace the file by ``rows`` atomically (a temporary file beside it, then a rename)."""
    from microemo.evaluation.io import atomic_replace

    with atomic_replace(output, "wb") as stream:
        for row in rows:
            stream.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def append_row(output: Path, row: dict) -> None:
    """Append one row as a single write (a kill leaves whole rows, or one partial last line that is dropped)."""
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    descriptor = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class OutputLock:
    """Exclusive use of a predictions file for one run: ``with OutputLock(path): ...``.

    The lock is ``<output>.lock`` (an OS file lock: a killed run releases it); who holds it is written beside it
    in ``<output>.lock.owner`` so that a refused run can say which process to wait for.
    """

    def __init__(self, output: Path) -> None:
        from filelock import FileLock

        self.output = Path(output)
        self.path = self.output.with_name(self.output.name + ".lock")
        self.owner_path = self.output.with_name(self.output.name + ".lock.owner")
        self._lock = FileLock(str(self.path), timeout=0)

    def __enter__(self) -> OutputLock:
        from filelock import Timeout

        self.output.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise OutputLockedError(
                f"--output {self.output} is being written by another `microemo predict` ({self._owner()}); wait for "
                "it to finish or give another --output (two runs would write every video twice)"
            ) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.owner_path.write_text(json.dumps(owner), encoding="utf-8")
        return self

    def __exit__(self, *exc_info) -> None:
        self.owner_path.unlink(missing_ok=True)
        self._lock.release()

    def _owner(self) -> str:
        try:
            owner = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"a process holding {self.path}"


def plan_resume(output: Path, retry_failed: bool = True) -> tuple[dict[str, dict], dict[str, int]]:
    """Under the lock: the rows to keep and the attempts made so far of each video to retry.

    The file is checked whole first; only then is a killed run's partial last line cut and, with ``retry_failed``,
    the failed rows taken out (atomically) so that their new rows replace them and the file keeps one row per video.
    """
    rows, complete_length = read_rows(output)
    drop_partial_line(output, complete_length)
    retry = {name: int(row.get("attempts") or 1) for name, row in rows.items() if row.get("error")} if retry_failed else {}
    if retry:
        rows = {name: row for name, row in rows.items() if name not in retry}
        rewrite_rows(output, rows.values())
    return rows, retry


def unreadable_reason(path: Path) -> str | None:
    """Why a video path cannot be opened, for its row: a dangling link, a link loop, a folder, missing; else None."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return f"{path}: a symbolic link loop; expected a video file"
        except OSError as error:
            if "loop" in str(error).lower() or getattr(error, "errno", None) == 40:
                return f"{path}: a symbolic link loop; expected a video file"
            return f"{path}: a dangling symbolic link (to {os.readlink(path)}); expected a video file"
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a folder; expected a video file"
    if not path.is_file():
        return f"{path}: not a regular file; expected a video file"
    return None
