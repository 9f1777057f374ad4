"""``microemo prepare-data``: EMER / MER tables or a JSONL file + videos -> a prepared dataset with a split.

    microemo prepare-data emer --videos VIDEOS --descriptions EMER-Fine.csv [--subtitles S.csv] [--openset O.csv]
        --processor MODEL_DIR --output data/emer
    microemo prepare-data jsonl data.jsonl --processor MODEL_DIR --output data/mine

(``python -m microemo.training.cli prepare-data ...`` works too.) In shards, one per machine, then combined:

    microemo prepare-data ... --output data/emer --num-shards N --shard-index I   # I = 0 .. N-1, anywhere
    microemo prepare-data ... --output data/emer --num-shards N                   # once all are done
    accelerate launch [--config_file ...] -m microemo.training.cli prepare-data ...   # process I prepares shard I
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The help page's text (the module docstring is reStructuredText for the API docs; a terminal shows it raw).
DESCRIPTION = """EMER / MER tables or a JSONL file + videos -> a prepared dataset with a seeded train/test split.

  microemo prepare-data emer --videos VIDEOS --descriptions EMER-Fine.csv [--subtitles S.csv] [--openset O.csv] \\
      --processor MODEL_DIR --output data/emer
  microemo prepare-data jsonl data.jsonl --processor MODEL_DIR --output data/mine

(python -m microemo.training.cli prepare-data ... works too.)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-data",
        help="EMER/MER tables or JSONL + videos -> prepared training data with a seeded split",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("format", choices=("emer", "jsonl"), help="emer: CSV tables + a video folder; jsonl: one object per line")
    parser.add_argument("jsonl", nargs="?", type=Path, help="the JSONL file (format jsonl)")
    parser.add_argument("--videos", type=Path, help="folder of videos named by sample name (format emer)")
    parser.add_argument("--descriptions", type=Path, help="EMER-Fine CSV name, chinese, english")
    parser.add_argument("--subtitles", type=Path, help="MER subtitles CSV name, chinese, english")
    parser.add_argument("--openset", type=Path, help="open-vocabulary labels CSV name, openset")
    parser.add_argument("--discrete", type=Path, help="MER2023 discrete labels CSV name, discrete[, valence]")
    parser.add_argument("--target", choices=("description", "openset", "discrete"), default="description",
                        help="what the model learns to answer (default description)")  # fmt: skip
    parser.add_argument("--language", choices=("english", "chinese"), default="english",
                        help="which of EMER's description columns becomes the answer (default english)")
    parser.add_argument("--processor", required=True, help="a saved MicroEmo processor (the model folder)")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="share of rows in the test split (default 0.2; under 10 rows none, with a warning)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split")
    parser.add_argument("--split-file", type=Path, help="reuse the names of an earlier split.json")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per video (default: the processor's)")
    parser.add_argument("--num-proc", type=int, default=None, help="processes preparing videos")
    parser.add_argument("--num-shards", type=int, default=None,
                        help="prepare in this many shards (one per machine): with --shard-index, prepare one; "
                        "without, combine them all into --output (see training/data_shards.py)")  # fmt: skip
    parser.add_argument("--shard-index", type=int, default=None, help="the shard this run prepares, 0 .. --num-shards - 1")
    parser.add_argument("--asr-model", help="utterances and their words (the rows' subtitles) from this "
                        "speech-recognition model where a row has no subtitle (e.g. openai/whisper-small)")
    parser.add_argument("--face", help="with several people on screen, whose face gives the clues: speaker, largest, "
                        "or an index (0 = leftmost); default: the processor's setting (the largest face of each frame)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.sharding import in_launched_run

    from .data import DataError, emer_rows, jsonl_rows, prepare_dataset

    try:
        if args.format == "emer":
            if args.videos is None:
                raise DataError("prepare-data emer needs --videos FOLDER")
            rows = emer_rows(args.videos, descriptions=args.descriptions, subtitles=args.subtitles,
                             openset=args.openset, discrete=args.discrete, target=args.target,
                             language=args.language)  # fmt: skip
        else:
            if args.jsonl is None:
                raise DataError("prepare-data jsonl needs the JSONL file")
            rows = jsonl_rows(args.jsonl)
        processor = MicroEmoProcessor.from_pretrained(args.processor)
        if args.face is not None:
            from microemo.processing.face_tracking import check_face_option

            processor.face = check_face_option(args.face, "--face")
        if args.asr_model:
            from microemo.processing.asr import asr_kind

            asr_kind(args.asr_model)  # refuses a checkpoint that is not a speech-recognition model
            processor.utterance_source, processor.asr_model = "asr", args.asr_model
        if args.num_shards is not None or args.shard_index is not None or in_launched_run():
            result = _sharded(args, rows, processor)
            if result is None:  # one shard prepared; the combining step comes later or on the main process
                return 0
        else:
            result = prepare_dataset(rows, processor, args.output, test_fraction=args.test_fraction, seed=args.seed,
                                     split_file=args.split_file, num_frames=args.num_frames, num_proc=args.num_proc)  # fmt: skip
    except (DataError, ValueError, OSError) as error:
        print(f"microemo prepare-data: error: {error}", file=sys.stderr)
        return 1
    counts = result.counts
    print(f"prepared {counts['train']} train + {counts['test']} test rows in {result.dataset_dir}")
    if result.bad:
        print(f"{len(result.bad)} row(s) left out, with reasons, in {args.output / 'bad_rows.jsonl'}:")
        for bad in result.bad[:10]:
            print(f"  {bad['name']}: {bad['reason']}")
    print(f"split: {args.output / 'split.json'}; test references for `microemo evaluate`: "
          f"{args.output / 'test_references.csv'}")  # fmt: skip
    return 0


def _sharded(args: argparse.Namespace, rows, processor):
    """Prepare one shard (``--shard-index``, or this process's under ``accelerate launch``) and/or combine them all;
    returns the combined result, or None when this run only prepared a shard."""
    from microemo.sharding import in_launched_run, process_state

    from .data import DataError
    from .data_shards import combine_shards, prepare_shard

    index, count, state = args.shard_index, args.num_shards, None
    if index is None and in_launched_run():  # under accelerate launch: process I of N prepares shard I
        state = process_state("cpu")
        if count is not None and count != state.num_processes:
            raise DataError(f"--num-shards {count} under accelerate launch with {state.num_processes} processes; "
                            "leave --num-shards out (one shard per process)")  # fmt: skip
        index, count = state.process_index, state.num_processes
    if count is None or count < 1:
        raise DataError(f"--shard-index needs --num-shards N >= 1, got --num-shards {count}")
    if index is not None:
        folder = prepare_shard(rows, processor, args.output, index=index, count=count, num_frames=args.num_frames,
                               num_proc=args.num_proc)  # fmt: skip
        print(f"prepared shard {index} of {count} in {folder}")
        if state is None:
            return None
        state.wait_for_everyone()
        if not state.is_main_process:
            return None
    return combine_shards(rows, processor, args.output, count=count, test_fraction=args.test_fraction, seed=args.seed,
                          split_file=args.split_file, num_frames=args.num_frames)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m microemo.training.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
