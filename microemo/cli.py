"""The `microemo` command line.

Each stage of the data's way owns its sub-commands in a `cli.py` of its own folder, with a
`register(subparsers)` function that adds them; this file only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules with a `register(subparsers: argparse._SubParsersAction) -> None` function.
# Each registered parser sets `func=<callable(args) -> int>` with `set_defaults`.
SUBCOMMAND_MODULES: tuple[str, ...] = ("microemo.build", "microemo.hub", "microemo.predict", "microemo.app", "microemo.demo", "microemo.processing.cli", "microemo.training.cli", "microemo.evaluation.cli")

# Each command's module and one-line help, so that `microemo --help` and `microemo CMD ...` import only what
# they need (the commands' modules pull in torch and transformers: seconds). A module missing here is imported
# every time; tests check that these lines match what the modules register.
COMMANDS: dict[str, tuple[str, str]] = {
    "build-model": ("microemo.build", "assemble a MicroEmo from a preset and save it"),
    "push": ("microemo.hub", "upload a saved model folder's model files (weights, code, processor, card) to the Hugging Face Hub"),
    "predict": ("microemo.predict", "explain the emotions in videos (JSONL results, resumable)"),
    "app": ("microemo.app", "a web page for a model: upload a video, read the explanation, see what the model saw"),
    "demo": ("microemo.demo", "the main job: tune the tiny model on the sample clips, predict, score, write an HTML report"),
    "visualize": ("microemo.processing.cli", "picture of a video's sampled frames, clue regions, utterances and audio clips"),
    "prepare-data": ("microemo.training.cli", "EMER/MER tables or JSONL + videos -> prepared training data with a seeded split"),
    "evaluate": ("microemo.evaluation.cli", "score predictions with EMER's Accuracy_s / Recall_s (LLM judge or saved groupings) and judge-free scores"),
}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `microemo` parser. With ``command``, only that command's module is imported and the others are
    listed by name and help alone; ``None`` imports every command (the whole parser)."""
    parser = argparse.ArgumentParser(
        prog="microemo",
        description="MicroEmo: time-sensitive multimodal emotion recognition (transformers plugin).",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listed = {module for module, _ in COMMANDS.values()}
    for module_name in SUBCOMMAND_MODULES:
        names = [name for name, (module, _) in COMMANDS.items() if module == module_name]
        if command is None or command in names or module_name not in listed:
            importlib.import_module(module_name).register(subparsers)
        else:
            for name in names:
                subparsers.add_parser(name, help=COMMANDS[name][1])
    for subparser in subparsers.choices.values():  # `microemo CMD ... --debug` works too
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def quiet_progress_off_terminal() -> None:
    """Off a terminal (a log file, CI), the Hub's, transformers' and datasets' progress bars would write a wall of
    carriage-return lines: turn them off (before those libraries are imported; child processes inherit it).
    A variable the user set wins."""
    if not sys.stderr.isatty():
        for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(variable, "1")


def _command(argv: list[str]) -> str:
    """The command named on the line (the first word that is not an option), or "" when there is none."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    """Run one command. A failure prints one line (`microemo CMD: Error: message`) and exits 1; `--debug`
    shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_progress_off_terminal()
    args = build_parser(_command(argv)).parse_args(argv)
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
