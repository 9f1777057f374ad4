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
SUBCOMMAND_MODULES: tuple[str, ...] = ("microemo.build", "microemo.hub", "microemo.predict", "microemo.app", "microemo.demo", "microemo.processing.cli", "microemo.training.cli", "microemo.evaluation.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microemo",
        description="MicroEmo: time-sensitive multimodal emotion recognition (transformers plugin).",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for subparser in subparsers.choices.values():  # `microemo CMD ... --debug` works too
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A failure prints one line (`microemo CMD: Error: message`) and exits 1; `--debug`
    shows the traceback instead."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"microemo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = " ".join(str(error).split()) or "(no message)"
        print(f"microemo {args.command}: {type(error).__name__}: {message} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
