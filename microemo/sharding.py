"""Prediction over several processes, GPUs or machines with accelerate: one shard file per process, merged at the end.

``accelerate launch [--config_file ...] -m microemo.predict VIDEOS --model M --output out.jsonl`` starts the
processes (any accelerate config: GPUs, nodes); ``microemo predict --num-processes N`` starts the same command on
this machine through accelerate's launcher. In each process:

1. the videos still to do are the inputs less the names already in ``--output`` or in any shard file of
   ``<output>.shards/`` (every process reads the same files before any of them writes: a barrier);
2. ``PartialState.split_between_processes`` gives the process its contiguous share;
3. the process predicts its share into its own shard, ``<output>.shards/shard-<rank>-of-<world>.jsonl``, one
   appended and fsynced row at a time (as the one-process ``--output``), so a crash of one rank keeps every row it
   finished and a resume skips them;
4. after a barrier, the main process merges the output and every shard into ``--output`` (written whole and
   renamed into place, one row per name) and removes the shards.

Resume works per shard and across process counts: shards of an earlier run with another world size are read too,
and a one-process ``microemo predict`` merges the shards of a sharded run that stopped before its merge. Under a
launcher every process exits 0 once it finished (torchrun takes any other status for a crash): the main process
prints the summary with the failed videos, and ``microemo predict --num-processes N`` exits 3 when some failed.
The barrier waits up to :data:`BARRIER_TIMEOUT` (shares of a large corpus finish at different times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

#: How long a process waits at a barrier for the others (the default of torch.distributed is 30 minutes, less
#: than the gap between the first and the last share of a large corpus).
BARRIER_TIMEOUT = timedelta(hours=48)
#: The environment variables through which launchers (torchrun, MPI) give the number of processes.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def world_size() -> int:
    """The number of processes a launcher started this one among (1 outside a launcher)."""
    for name in WORLD_SIZE_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def in_launched_run() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` (torchrun) or MPI."""
    return world_size() > 1


def process_state(device: str | None = None):
    """accelerate's ``PartialState`` of this process: GPU ranks with NCCL, or CPU ranks with gloo when there is no
    GPU or ``device`` is ``cpu``."""
    import torch
    from accelerate import PartialState

    cpu = (device or "").startswith("cpu") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)


def shard_folder(output: str | os.PathLike) -> Path:
    """Where the processes of a sharded run write their shards: ``<output>.shards/`` beside ``output``."""
    output = Path(output)
    return output.parent / f"{output.name}.shards"


def shard_file(output: str | os.PathLike, index: int, count: int) -> Path:
    """The shard of process ``index`` of ``count``."""
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")
    return shard_folder(output) / f"shard-{index:05d}-of-{count:05d}.jsonl"


def read_rows(path: str | os.PathLike) -> dict[str, dict]:
    """The complete rows of a JSONL file by name, without changing the file (a last line cut off by a kill is
    ignored here; the process that owns the file drops it when it resumes)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = path.read_bytes()
    rows = {}
    for number, line in enumerate(data[: data.rfind(b"\n") + 1].decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not JSON ({error.msg}); is it a predictions file?") from None
            rows[row["name"]] = row
    return rows


def finished_rows(output: str | os.PathLike) -> dict[str, dict]:
    """Rows already predicted: those of ``output`` and of every shard beside it (any world size)."""
    rows = read_rows(output)
    folder = shard_folder(output)
    if folder.is_dir():
        for path in sorted(folder.glob("shard-*.jsonl")):
            rows.update(read_rows(path))
    return rows


def merge_shards(output: str | os.PathLike, order: Sequence[str] = ()) -> dict[str, dict]:
    """Merge ``output`` and the shards beside it into ``output`` (one row per name; the rows already in ``output``
    first, in their order, then the others in ``order`` and by name), then remove the shards. The merged file is
    written beside ``output`` and renamed over it, so a crash leaves either the old or the new file, and the
    shards are removed only after. Returns the merged rows; without shards, ``output`` is left as it is."""
    output = Path(output)
    folder = shard_folder(output)
    shards = sorted(folder.glob("shard-*.jsonl")) if folder.is_dir() else []
    existing = read_rows(output)
    if not shards:
        return existing
    merged = dict(existing)
    new: dict[str, dict] = {}
    for path in shards:
        new.update({name: row for name, row in read_rows(path).items() if name not in existing})
    rank = {name: index for index, name in enumerate(order)}
    for name in sorted(new, key=lambda name: (rank.get(name, len(rank)), name)):
        merged[name] = new[name]
    tmp = output.with_name(output.name + ".merging")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in merged.values():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, output)
    shutil.rmtree(folder)
    return merged


def run_sharded(
    predictor,
    state,
    videos: Sequence[str | os.PathLike],
    *,
    output: str | os.PathLike,
    subtitles: str | os.PathLike | None = None,
    names: Iterable[str] | None = None,
    progress: bool = True,
) -> list[dict] | None:
    """Predict this process's share of ``videos`` into its shard; on the main process, once every process is done,
    merge the shards into ``output`` and return all rows in input order (other processes return None)."""
    from microemo.predict import select_videos

    paths = select_videos(videos, names)
    finished = finished_rows(output)
    todo = [path for path in paths if path.stem not in finished]
    state.wait_for_everyone()  # every process has read the same files before any writes
    own = shard_file(output, state.process_index, state.num_processes)
    own.parent.mkdir(parents=True, exist_ok=True)
    with state.split_between_processes(todo) as share:
        predictor.run(share, subtitles=subtitles, output=own, progress=progress and state.is_main_process)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    merged = merge_shards(output, [path.stem for path in paths])
    return [merged[path.stem] for path in paths]


def free_port() -> int:
    """A TCP port free on this machine now, for the launched processes' rendezvous (a fixed port collides with
    another run on the same machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def forwarded_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, leave_out: Iterable[str]) -> list[str]:
    """The command line that gives ``args`` again under ``parser``: options that differ from their defaults and
    the positionals (``leave_out``: destinations not passed on)."""
    leave_out = set(leave_out)
    options: list[str] = []
    positionals: list[str] = []
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if action.dest in leave_out or action.dest == "help" or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if not action.option_strings:
            positionals += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif isinstance(action, argparse._StoreTrueAction):
            options += [action.option_strings[0]] if value else []
        elif value is not None and value != action.default:
            options += [action.option_strings[0], str(value)]
    return [*options, "--", *positionals] if positionals else options


def launch_command(num_processes: int, module: str, arguments: Sequence[str]) -> list[str]:
    """``accelerate launch`` of ``python -m module arguments`` in ``num_processes`` processes on this machine (one per
    GPU when there are enough GPUs, CPU processes with gloo otherwise)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", module, *arguments,
    ]  # fmt: skip


def launch(num_processes: int, module: str, arguments: Sequence[str], **popen: Any) -> int:
    """Run :func:`launch_command` and return its exit status (the first failing process's)."""
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 2:
        raise ValueError(f"--num-processes must be a whole number >= 1 (2 or more to launch), got {num_processes!r}")
    return subprocess.call(launch_command(num_processes, module, arguments), **popen)


def launch_predict(args: argparse.Namespace) -> int:
    """``microemo predict --num-processes N``: the same command in N processes under accelerate's launcher; exit
    status 3 when some video failed, as one process gives."""
    from microemo.predict import read_names, select_videos

    code = launch(args.num_processes, "microemo.predict", forwarded_arguments(args.predict_parser, args, {"num_processes"}))
    if code:
        return code
    # The processes exit 0 once they finished (torchrun takes any other status for a crash); the main one printed
    # the summary, and whether some video failed is in the merged rows.
    merged = read_rows(args.output)
    paths = select_videos(args.videos, read_names(args.names) if args.names else None)
    return 3 if any(merged[path.stem]["error"] for path in paths) else 0


def default_num_workers(device: str | None = None) -> int:
    """DataLoader workers preparing videos for ``microemo predict``: the cores of this process's share of the machine
    (all of them, or 1 / LOCAL_WORLD_SIZE under a launcher) left after generation's threads (one on a GPU, torch's
    intra-op threads on the CPU), at least 1."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    on_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    generation = 1 if on_gpu else torch.get_num_threads()
    return max(1, share - generation)
