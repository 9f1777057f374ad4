"""Quiet logs: no progress-bar walls off a terminal, no deprecation warnings from our configs, no bf16 on CPU."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from microemo.resources import training_file

CONFIGS = sorted(training_file("configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_run_config_parses_without_a_future_warning(config, tmp_path):
    from microemo.training.sft import parse_arguments

    gpu_only = [] if "use_cpu: true" in config.read_text() else ["--bf16", "false"]  # bf16 needs a GPU to parse
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_arguments(["--config", str(config), "--output_dir", str(tmp_path), *gpu_only])
    deprecated = [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))
                  and "microemo" not in str(w.filename) and "jax" not in str(w.filename)]  # fmt: skip
    assert not deprecated, deprecated


def test_the_cpu_config_trains_in_float32(tmp_path):
    from microemo.training.sft import parse_arguments

    _, training_args, _ = parse_arguments(["--config", str(training_file("configs", "tiny-cpu.yaml")),
                                           "--output_dir", str(tmp_path)])  # fmt: skip
    assert training_args.use_cpu and not training_args.bf16 and not training_args.fp16


def test_off_a_terminal_the_command_line_turns_progress_bars_off():
    probe = ("import os, sys; from microemo.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'), os.environ.get('HF_DATASETS_DISABLE_PROGRESS_BARS'))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)  # not a tty
    assert result.stdout.strip().splitlines()[-1] == "1 1"


def test_a_progress_setting_of_the_user_wins(monkeypatch):
    from microemo import cli

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    cli.quiet_progress_off_terminal()
    import os

    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0" and os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"


def test_the_demo_turns_the_trainers_bar_off_in_a_log(monkeypatch, tmp_path):
    from microemo import demo

    commands = []
    monkeypatch.setattr(demo.subprocess, "run", lambda command, **kwargs: commands.append((command, kwargs["env"])))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    demo._train(tmp_path / "model", quick=True)
    command, env = commands[0]
    assert command[command.index("--disable_tqdm") + 1] == "True"
    assert env["DS_ACCELERATOR"] == "cpu"  # DeepSpeed, where installed, is told the run is on the CPU: no warning
    data = Path(command[command.index("--dataset_path") + 1])
    assert data.is_file() and all(Path(p).is_absolute() for p in data.read_text().split('"') if p.endswith(".mp4"))
