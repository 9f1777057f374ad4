"""The `microemo` command line.

Each stage of the data's way owns its sub-commands in a `cli.py` of its own folder, with a
`register(subparsers)` function that adds them; this file only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules with a `register(subparsers: argparse._SubParsersAction) -> None` function.
# Each registered parser sets `func=<callable(args) -> int>` with `set_defaults`.
SUBCOMMAND_MODULES: tuple[str, ...] = ("microemo.build", "microemo.hub", "microemo.demo", "microemo.processing.cli", "microemo.evaluation.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microemo",
        description="MicroEmo: time-sensitive multimodal emotion recognition (transformers plugin).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
