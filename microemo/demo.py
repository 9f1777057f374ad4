"""`microemo demo`: the whole way from a video file to generated text, on a tiny random MicroEmo.

It builds the `tiny-random` model and its processor (offline tokenizers), saves both as a Hub-style folder,
loads them back the way a user of the Hub would (`AutoModel` / `AutoProcessor` with `trust_remote_code=True`),
runs the processor on the repository's sample videos (decoding, face clues, utterances, audio) and `generate`s.
The weights are random, so the text is noise: the demo shows the pipeline, not the paper's results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

SAMPLE_MEDIA = Path("tests/assets")
# (video, utterance file or None for voice-activity detection)
DEFAULT_SAMPLES = (("face_speech.mp4", "face_speech.srt"), ("noface_speech.mp4", None))


def _build_and_save(output_dir: Path, seed: int) -> None:
    from microemo.hub import CardInfo, save_model_folder
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    config = tiny_random_config()
    torch.manual_seed(seed)
    model = MicroEmoForConditionalGeneration(config)
    processor = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    save_model_folder(model, processor, output_dir, CardInfo(weights="random"))


def run_demo(args: argparse.Namespace) -> int:
    from transformers import AutoModel, AutoProcessor

    from microemo.processing.visualize import draw_sample

    output_dir = Path(args.output_dir)
    model_dir = output_dir / "model"
    samples = [(Path(s[0]), Path(s[1]) if len(s) > 1 else None) for s in args.sample] if args.sample else [
        (SAMPLE_MEDIA / video, SAMPLE_MEDIA / utterances if utterances else None)
        for video, utterances in DEFAULT_SAMPLES
    ]
    missing = [str(video) for video, _ in samples if not video.is_file()]
    if missing:
        print(f"microemo demo: sample video(s) not found: {missing} (run it from the repository root, "
              "or pass --sample VIDEO [UTTERANCES])", file=sys.stderr)  # fmt: skip
        return 2

    print(f"1. building the tiny-random MicroEmo and its processor -> {model_dir}")
    _build_and_save(model_dir, args.seed)
    print("2. loading them back with AutoModel / AutoProcessor (trust_remote_code=True)")
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    print(f"   {type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters (random)")

    for index, (video, utterances) in enumerate(samples, start=3):
        print(f"{index}. {video.name}" + (f" with utterances from {utterances.name}" if utterances else
                                          " with utterances from voice-activity detection"))  # fmt: skip
        start = time.perf_counter()
        # `processor(videos=...)` is prepare_sample + collate; split here to draw the prepared sample too.
        sample = processor.prepare_sample(str(video), utterances=str(utterances) if utterances else None)
        inputs = processor.collate([sample])
        prepared = time.perf_counter() - start
        timestamps = ", ".join(f"{t:.2f}" for t in sample.video.timestamps)
        print(f"   frames at [{timestamps}] s; face found on {int(sample.face_found.sum())}/{len(sample.face_found)}")
        spans = "; ".join(f"{s.start:.2f}-{s.end:.2f} s" for s in sample.utterances) or "none"
        print(f"   utterances: {spans}; audio: {'none' if sample.waveform is None else 'yes'}")
        tokens = {
            "video": int((inputs["input_ids"] == model.config.video_token_id).sum()),
            "audio": int((inputs["input_ids"] == model.config.audio_token_id).sum()),
        }
        print(f"   placeholders: {tokens['video']} video + {tokens['audio']} audio tokens; "
              f"prepared in {prepared:.1f} s")  # fmt: skip
        start = time.perf_counter()
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        text = processor.batch_decode(new_tokens, skip_special_tokens=True)[0]
        print(f"   generated {new_tokens.shape[1]} tokens in {time.perf_counter() - start:.2f} s: {text!r}")
        picture = draw_sample(
            sample,
            output_dir / f"{video.stem}.png",
            region_names=list(processor.clue_regions),
            image_size=processor.image_size,
            patch_size=processor.patch_size,
            num_audio_clips=processor.num_audio_clips,
        )
        print(f"   picture of what the model is given: {picture}")
    print("The weights are random: the generated text is noise. The pipeline ran end to end.")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="video file -> processor -> tiny random MicroEmo -> generated text",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output-dir", default="runs/demo", help="where the model, processor and pictures go")
    parser.add_argument("--sample", nargs="+", action="append", metavar="PATH",
                        help="VIDEO [UTTERANCES]; repeatable (default: the repository's sample videos)")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run_demo)
