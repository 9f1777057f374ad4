"""`microemo --help` and every command's `--help`: fast (nothing heavy imported), every option explained."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys

import pytest

from microemo.cli import COMMANDS, build_parser

HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "gradio", "mediapipe", "av", "cv2", "pandas", "openai")
PROBE = """
import json, sys
from microemo.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def imported_by(argv: list[str]) -> tuple[set[str], str]:
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120)
    marker = [line for line in result.stdout.splitlines() if line.startswith("MODULES=")]
    assert marker, result.stderr
    return set(json.loads(marker[-1][len("MODULES="):])), result.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_no_heavy_library(command):
    modules, text = imported_by([command, "--help"] if command else ["--help"])
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert "usage: microemo" in text


def test_the_listed_help_lines_are_what_each_command_registers():
    for name, (module, help_line) in COMMANDS.items():
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(subparsers)
        assert name in subparsers.choices, (module, name)
        registered = next(action.help for action in subparsers._choices_actions if action.dest == name)
        assert registered == help_line, name


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, subparser in subparsers.choices.items():
        for action in subparser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_is_plain_text_with_each_default_once(command, capsys):
    with pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    text = capsys.readouterr().out
    for markup in ("``", ":func:", ":class:", ":mod:", "(default: None)"):
        assert markup not in text, (command, markup)
    assert not re.search(r"^\s*\.\. \w", text, re.M), command  # an RST directive
    for line in text.splitlines():
        assert line.count("(default:") <= 1, line
