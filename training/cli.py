"""``microemo prepare-data``: EMER / MER tables or a JSONL file + videos -> a prepared dataset with a split.

    microemo prepare-data emer --videos VIDEOS --descriptions EMER-Fine.csv [--subtitles S.csv] [--openset O.csv]
        --processor MODEL_DIR --output data/emer
    microemo prepare-data jsonl data.jsonl --processor MODEL_DIR --output data/mine

(``python -m microemo.training.cli prepare-data ...`` works too.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-data",
        help="EMER/MER tables or JSONL + videos -> prepared training data with a seeded split",
        description=__doc__,
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
                        help="what the model learns to answer")  # fmt: skip
    parser.add_argument("--language", choices=("english", "chinese"), default="english")
    parser.add_argument("--processor", required=True, help="a saved MicroEmo processor (the model folder)")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of rows in the test split")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split")
    parser.add_argument("--split-file", type=Path, help="reuse the names of an earlier split.json")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per video (default: the processor's)")
    parser.add_argument("--num-proc", type=int, default=None, help="processes preparing videos")
    parser.add_argument("--asr-model", help="utterances and their words (the rows' subtitles) from this "
                        "speech-recognition model where a row has no subtitle (e.g. openai/whisper-small)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from microemo.processing.processing_microemo import MicroEmoProcessor

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
        if args.asr_model:
            from microemo.processing.asr import asr_kind

            asr_kind(args.asr_model)  # refuses a checkpoint that is not a speech-recognition model
            processor.utterance_source, processor.asr_model = "asr", args.asr_model
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m microemo.training.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
