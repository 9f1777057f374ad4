"""Sharded prediction: `microemo predict --num-processes 2` (accelerate's launcher, two CPU processes with gloo)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from microemo import sharding
from microemo.cli import main

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SOURCES = ["face_speech.mp4", "noface_speech.mp4", "face_rotated_vfr_silent.mp4"]
OPTIONS = ["--max-new-tokens", "5", "--batch-size", "1", "--num-workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Eight clips (links to the three sample videos) and one corrupt file."""
    folder = tmp_path_factory.mktemp("clips")
    for index in range(8):
        (folder / f"clip{index}.mp4").symlink_to(ASSETS / SOURCES[index % len(SOURCES)])
    (folder / "corrupt.mp4").write_bytes((ASSETS / "face_speech.mp4").read_bytes()[:3000])
    return folder


@pytest.fixture(scope="module")
def one_process(model_dir, clips, tmp_path_factory) -> dict[str, dict]:
    output = tmp_path_factory.mktemp("one") / "predictions.jsonl"
    assert main(["predict", str(clips), "--model", str(model_dir), "--output", str(output), *OPTIONS]) == 3
    return rows_of(output)


def rows_of(path: Path) -> dict[str, dict]:
    lines = path.read_text().splitlines()
    rows = {row["name"]: row for row in map(json.loads, lines)}
    assert len(rows) == len(lines), "a name appears on several lines"
    return rows


def test_two_processes_give_the_rows_of_one_process_merged_into_the_output(model_dir, clips, one_process, tmp_path):
    output = tmp_path / "predictions.jsonl"
    code = main(["predict", str(clips), "--model", str(model_dir), "--output", str(output), "--num-processes", "2",
                 *OPTIONS])  # fmt: skip
    assert code == 3  # the corrupt file's row says why; every other video was explained
    sharded = rows_of(output)
    assert sorted(sharded) == sorted(one_process) == sorted([f"clip{i}" for i in range(8)] + ["corrupt"])
    assert {n: r["english"] for n, r in sharded.items()} == {n: r["english"] for n, r in one_process.items()}
    assert "MediaError" in sharded["corrupt"]["error"]
    assert not sharding.shard_folder(output).exists()  # merged, then removed


def _rank_processes(launcher: psutil.Process) -> dict[int, psutil.Process]:
    ranks = {}
    for child in launcher.children(recursive=True):
        try:
            environment = child.environ()
            if "microemo.predict" in " ".join(child.cmdline()) and "RANK" in environment:
                ranks[int(environment["RANK"])] = child
        except psutil.NoSuchProcess:
            pass
    return ranks


def test_a_killed_rank_loses_no_finished_row_and_the_resume_leaves_no_duplicate(model_dir, clips, one_process, tmp_path):
    output = tmp_path / "predictions.jsonl"
    command = [sys.executable, "-m", "microemo.predict", str(clips), "--model", str(model_dir), "--output",
               str(output), "--num-processes", "2", *OPTIONS]  # fmt: skip
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    shard = sharding.shard_file(output, 1, 2)
    try:
        deadline = time.monotonic() + 240
        while not (shard.is_file() and shard.read_text().count("\n") >= 1):
            assert launcher.poll() is None and time.monotonic() < deadline, "rank 1 never finished a video"
            time.sleep(0.05)
        rank = _rank_processes(psutil.Process(launcher.pid))[1]
        os.kill(rank.pid, signal.SIGKILL)
        assert launcher.wait(timeout=120) != 0
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    finished = sharding.finished_rows(output)
    assert 1 <= len(finished) < 9, "the kill came after the whole run"
    assert not output.exists()  # no merge happened

    assert main(["predict", str(clips), "--model", str(model_dir), "--output", str(output), "--num-processes", "2",
                 *OPTIONS]) == 3  # fmt: skip
    resumed = rows_of(output)
    assert sorted(resumed) == sorted(one_process)
    for name, row in finished.items():
        assert resumed[name] == row  # kept as written before the kill (timings included), not predicted again
    assert {n: r["english"] for n, r in resumed.items()} == {n: r["english"] for n, r in one_process.items()}


def test_merge_keeps_one_row_per_name_rows_of_the_output_first_and_removes_the_shards(tmp_path):
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"name": "b", "english": "old"}) + "\n")
    folder = sharding.shard_folder(output)
    folder.mkdir()
    (folder / "shard-00000-of-00002.jsonl").write_text(
        json.dumps({"name": "c", "english": "c"}) + "\n" + json.dumps({"name": "b", "english": "new"}) + "\n")
    (folder / "shard-00001-of-00002.jsonl").write_text(json.dumps({"name": "a", "english": "a"}) + '\n{"name": "d", "eng')
    (folder / "shard-00000-of-00003.jsonl").write_text(json.dumps({"name": "e", "english": "e"}) + "\n")  # another world size
    merged = sharding.merge_shards(output, order=["a", "b", "c", "e"])
    assert [json.loads(line)["name"] for line in output.read_text().splitlines()] == ["b", "a", "c", "e"]
    assert merged["b"]["english"] == "old" and "d" not in merged  # the cut-off row of a killed process is not kept
    assert not folder.exists()


def test_the_launched_command_gets_back_every_argument_that_was_given(tmp_path):
    from microemo.predict import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    given = ["predict", "a b.mp4", "clips", "--model", "m", "--batch-size", "16", "--no-progress", "--num-processes", "4",
             "--output", str(tmp_path / "o.jsonl")]  # fmt: skip
    args = parser.parse_args(given)
    forwarded = sharding.forwarded_arguments(args.predict_parser, args, leave_out={"num_processes"})
    again = parser.parse_args(["predict", *forwarded])
    assert "--num-processes" not in forwarded
    assert {k: v for k, v in vars(again).items() if k != "num_processes"} == {
        k: v for k, v in vars(args).items() if k != "num_processes"}


def test_the_default_workers_are_the_cores_left_after_generation(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert sharding.default_num_workers("cpu") == 12
    assert sharding.default_num_workers("cuda:0") == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes share the machine: 4 cores each
    assert sharding.default_num_workers("cuda:1") == 3
    assert sharding.default_num_workers("cpu") == 1  # at least one


def test_a_number_of_processes_below_one_is_refused_by_name(model_dir, clips, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    assert main(["predict", str(clips), "--model", str(model_dir), "--output", str(output), "--num-processes", "0"]) == 1
    assert "--num-processes must be a whole number >= 1 (2 or more to launch), got 0" in capsys.readouterr().err
    assert not output.exists()
