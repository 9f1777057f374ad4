"""``microemo visualize``: draw what the processor makes of a video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .face_regions import DEFAULT_CLUE_REGIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "visualize",
        help="picture of a video's sampled frames, clue regions, utterances and audio clips",
        description=(
            "Sample frames of VIDEO, find the face and its clue regions, the utterances and the audio clips as "
            "the processor does, and draw them into one PNG."
        ),
    )
    parser.add_argument("video", type=Path, help="a video file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--processor", type=str, default=None, help="a saved MicroEmoProcessor folder (its settings)")
    parser.add_argument("--frames", type=int, default=None, help="frames to sample (default: the processor's, 8)")
    parser.add_argument("--utterances", type=Path, default=None, help=".srt / .vtt / .json spans (default: voice activity)")
    parser.add_argument("--audio", type=Path, default=None, help="a separate audio file (default: the video's audio)")
    parser.add_argument("--image-size", type=int, default=224, help="model input size without --processor (224)")
    parser.add_argument("--patch-size", type=int, default=14, help="ViT patch size without --processor (14)")
    parser.add_argument(
        "--regions", nargs="+", default=list(DEFAULT_CLUE_REGIONS), help="clue regions without --processor"
    )
    parser.add_argument("--face-landmarker", type=Path, default=None, help="a mediapipe face_landmarker.task")
    parser.add_argument("--face", default="speaker",
                        help="with several faces: speaker (default), largest, or an index (0 = leftmost)")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="a `microemo predict` JSONL: draw this video's per-utterance emotions (and segments)")
    parser.set_defaults(func=run_visualize)


def _processor(args: argparse.Namespace):
    from .processing_microemo import MicroEmoProcessor
    from .video_processing_microemo import MicroEmoVideoProcessor

    if args.processor:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(args.processor, trust_remote_code=True)
    from .tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    # Drawing needs the processor's analysis only, never its tokenizers: tiny offline ones do.
    return MicroEmoProcessor(
        MicroEmoVideoProcessor(
            size={"height": args.image_size, "width": args.image_size}, max_frames=max(32, args.frames or 8)
        ),
        None,
        build_tiny_llm_tokenizer(),
        build_tiny_qformer_tokenizer(),
        patch_size=args.patch_size,
        clue_regions=args.regions,
        face_landmarker_path=str(args.face_landmarker) if args.face_landmarker else None,
    )


def _image_formats() -> set[str]:
    from matplotlib.figure import Figure

    return set(Figure().canvas.get_supported_filetypes())


def run_visualize(args: argparse.Namespace) -> int:
    from .utterances import SpanError
    from .video_io import MediaError
    from .visualize import draw_sample

    suffix = Path(args.output).suffix.lower().lstrip(".")
    supported = _image_formats()
    if suffix not in supported:
        print(f"microemo visualize: cannot write {args.output}: use one of the picture formats "
              f"{', '.join(sorted(supported))}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        from .face_tracking import check_face_option

        face = check_face_option(args.face, "--face")
        row = _prediction_row(args.predictions, args.video) if args.predictions else {}
        processor = _processor(args)
        if args.audio:
            sample = processor.prepare_sample(
                str(args.video),
                utterances=str(args.utterances) if args.utterances else None,
                audio=str(args.audio),
                num_frames=args.frames,
            )
        else:
            from microemo.timeline import prepare_video

            sample = prepare_video(processor, args.video, utterances=str(args.utterances) if args.utterances else None,
                                   face=face, num_frames=args.frames)  # fmt: skip
    except (FileNotFoundError, MediaError, SpanError, ValueError) as error:
        if getattr(args, "debug", False):
            raise
        print(f"microemo visualize: {error}", file=sys.stderr)
        return 2
    path = draw_sample(
        sample,
        args.output,
        region_names=list(processor.clue_regions),
        image_size=processor.image_size,
        patch_size=processor.patch_size,
        num_audio_clips=processor.num_audio_clips,
        timeline=row.get("timeline"),
        segments=row.get("segments"),
    )
    found = int(sample.face_found.sum())
    print(
        f"{path}: {sample.video.frames.shape[0]} frames ({found} with a face), {len(sample.utterances)} utterances, "
        f"{'no audio' if sample.waveform is None else f'{processor.num_audio_clips} audio clips'}"
    )
    return 0


def _prediction_row(predictions: Path, video: Path) -> dict:
    """The row of ``video`` (by file name without suffix) in a ``microemo predict`` JSONL file."""
    import json

    if not predictions.is_file():
        raise FileNotFoundError(f"--predictions {predictions}: no such file")
    for line in predictions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("name") == Path(video).stem:
                return row
    raise ValueError(f"--predictions {predictions} has no row named {Path(video).stem!r}")
