"""Preparation in shards: each machine (or process) prepares its share of the rows, a last step combines them.

    microemo prepare-data ... --output data/emer --num-shards 4 --shard-index I    # on machine I = 0..3
    microemo prepare-data ... --output data/emer --num-shards 4                    # once all four are done

The share is ``datasets.Dataset.shard(num_shards, index, contiguous=True)`` of the rows (the same on every machine:
the builders read the tables in a fixed order), prepared with the same ``datasets.map`` and cache as the one-shot
:func:`~training.data.prepare_dataset`, and saved under ``<output>/shards/shard-I-of-N/`` (its ``dataset/``, then
``done.json`` once it is complete). The combining step concatenates the shards in index order, which is the order
of the rows, and writes the split, the bad-row report and the test references exactly as a one-shot preparation
does. ``<output>`` is a shared folder, or the shard folders are copied into it before the last step.

Under ``accelerate launch`` (any config: processes, nodes) without ``--shard-index``, process I of N prepares shard
I, and the main process combines them when all are done.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .data import (
    DataError,
    PreparedData,
    Rows,
    _write_json,
    choose_split,
    map_prepare,
    source_dataset,
    write_prepared,
)


def shard_dir(output_dir: str | os.PathLike, index: int, count: int) -> Path:
    """The folder of shard ``index`` of ``count`` under ``output_dir``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard-index must be in [0, --num-shards={count}), got {index}")
    return Path(output_dir) / "shards" / f"shard-{index:05d}-of-{count:05d}"


def prepare_shard(rows: Rows, processor, output_dir: str | os.PathLike, *, index: int, count: int,
                  num_frames: int | None = None, num_proc: int | None = None) -> Path:  # fmt: skip
    """Prepare shard ``index`` of ``count`` of ``rows`` and save it; returns its folder. Running it again (after an
    interruption, or with other rows or settings) reads what ``datasets``' cache in the shard folder still holds."""
    folder = shard_dir(output_dir, index, count)
    if not rows.rows:
        raise DataError(f"no usable rows ({len(rows.bad)} bad: {rows.bad[:3]}); nothing to prepare")
    (folder / "done.json").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    share = source_dataset(rows, folder).shard(num_shards=count, index=index, contiguous=True)
    prepared = map_prepare(share, processor, num_frames, num_proc)
    tmp = folder / "dataset.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    prepared.save_to_disk(str(tmp), num_shards=1)
    shutil.rmtree(folder / "dataset", ignore_errors=True)
    os.replace(tmp, folder / "dataset")
    _write_json(folder / "done.json", {"index": index, "count": count, "rows": len(rows.rows), "share": len(prepared)})
    return folder


def _read_done(folder: Path) -> dict | None:
    path = folder / "done.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def combine_shards(rows: Rows, processor, output_dir: str | os.PathLike, *, count: int, test_fraction: float = 0.2,
                   seed: int = 42, split_file: str | os.PathLike | None = None,
                   num_frames: int | None = None) -> PreparedData:  # fmt: skip
    """Concatenate the ``count`` shards under ``output_dir`` and write what a one-shot preparation writes. Raises
    :class:`DataError` naming the shards that are missing or incomplete, or that were cut from other rows."""
    from datasets import concatenate_datasets, load_from_disk

    output_dir = Path(output_dir)
    split = choose_split(rows, split_file, test_fraction, seed)
    folders = [shard_dir(output_dir, index, count) for index in range(count)]
    missing = [index for index, folder in enumerate(folders) if _read_done(folder) is None]
    if missing:
        raise DataError(f"shard(s) {missing} of {count} are missing or incomplete under {output_dir / 'shards'}; "
                        f"run prepare-data with --num-shards {count} --shard-index I for each of them first")  # fmt: skip
    prepared = concatenate_datasets([load_from_disk(str(folder / "dataset")) for folder in folders])
    names = [row["name"] for row in rows.rows]
    if prepared["name"] != names:
        raise DataError(f"the {count} shards under {output_dir / 'shards'} hold {len(prepared)} rows that are not the "
                        f"{len(names)} rows given (other tables or videos?); prepare them again")  # fmt: skip
    return write_prepared(rows, prepared, split, output_dir, processor, seed=seed, test_fraction=test_fraction,
                          num_frames=num_frames)  # fmt: skip
