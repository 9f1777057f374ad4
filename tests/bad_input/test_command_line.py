"""Command-line errors are one line and a non-zero exit; `--debug` shows the traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from microemo.cli import main

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "microemo.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_visualize_to_an_unknown_picture_format_is_one_line(tmp_path):
    """Before: a matplotlib traceback after all the processing."""
    result = run_cli("visualize", str(ASSETS / "face_speech.mp4"), "-o", str(tmp_path / "out.xyz"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "cannot write" in result.stderr and "png" in result.stderr


def test_demo_on_a_file_that_is_not_a_video_is_one_line(tmp_path):
    """Before: a traceback ending in transformers_modules...MediaError."""
    bad = tmp_path / "not-a-video.mp4"
    bad.write_text("hello")
    result = run_cli("demo", "--sample", str(bad), "--output-dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("microemo demo:")]
    assert "MediaError" in line and "not-a-video.mp4: not a readable media file" in line and "--debug" in line


def test_debug_shows_the_traceback(tmp_path, capsys):
    bad = tmp_path / "not-a-video.mp4"
    bad.write_text("hello")
    assert main(["visualize", str(bad), "-o", str(tmp_path / "x.png"), "--frames", "0"]) != 0
    with pytest.raises(ValueError, match="num_frames must be a whole number"):
        main(["--debug", "visualize", str(ASSETS / "face_speech.mp4"), "-o", str(tmp_path / "x.png"), "--frames", "0"])
