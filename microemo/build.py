"""`microemo build-model`: assemble a MicroEmo from a preset (and pretrained parts) and save it."""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from microemo.hub import CardInfo, save_model_folder
from microemo.presets import PRESETS

if TYPE_CHECKING:  # imported where used: `microemo build-model --help` must not wait for torch
    from microemo.modeling_microemo import MicroEmoForConditionalGeneration

# Rows of the parameter table: the paper's components, in the order the data flows through them.
COMPONENTS = OrderedDict(
    [
        ("vision_model", "frozen frame encoder (EVA ViT-g/14)"),
        ("local_clue_attention", "local clue attention and fusion gate (new)"),
        ("qformer", "image Q-Former (InstructBLIP)"),
        ("query_tokens", "image Q-Former queries"),
        ("frame_position_embedding", "frame position embedding"),
        ("video_qformer", "global video Q-Former (Video-LLaMA)"),
        ("video_query_tokens", "global video queries"),
        ("utterance_qformer", "utterance video Q-Former (new)"),
        ("utterance_query_tokens", "utterance video queries"),
        ("video_projection", "video projection to the LLM"),
        ("audio_encoder", "frozen audio encoder (ImageBind-style)"),
        ("audio_position_embedding", "audio clip position embedding"),
        ("audio_qformer", "audio Q-Former (Video-LLaMA)"),
        ("audio_query_tokens", "audio queries"),
        ("audio_projection", "audio projection to the LLM"),
        ("language_model", "frozen LLM base"),
    ]
)


def parameter_table(model: MicroEmoForConditionalGeneration) -> list[tuple[str, str, int, int]]:
    """(module, description, parameters, trainable parameters) per component, the LM head last."""
    counts: dict[str, list[int]] = {name: [0, 0] for name in [*COMPONENTS, "lm_head"]}
    for name, parameter in model.named_parameters():
        component = name.split(".")[1] if name.startswith("model.") else name.split(".")[0]
        counts[component][0] += parameter.numel()
        counts[component][1] += parameter.numel() if parameter.requires_grad else 0
    descriptions = dict(COMPONENTS, lm_head="frozen LM head")
    return [(name, descriptions[name], total, trainable) for name, (total, trainable) in counts.items() if total]


def format_table(rows: list[tuple[str, str, int, int]]) -> str:
    lines = [f"{'module':<26} {'parameters':>15} {'trainable':>15}  component", "-" * 96]
    for name, description, total, trainable in rows:
        lines.append(f"{name:<26} {total:>15,} {trainable:>15,}  {description}")
    total, trainable = sum(r[2] for r in rows), sum(r[3] for r in rows)
    lines += ["-" * 96, f"{'total':<26} {total:>15,} {trainable:>15,}"]
    return "\n".join(lines)


def build_model(args: argparse.Namespace) -> int:
    import torch

    from microemo.modeling_microemo import MicroEmoForConditionalGeneration

    config = PRESETS[args.preset]()
    sources = {
        "instructblip": args.instructblip,
        "language_model": args.language_model,
        "video_llama_video": args.video_llama_video,
        "video_llama_audio": args.video_llama_audio,
        "imagebind": args.imagebind,
    }
    if args.meta:
        with torch.device("meta"):
            model = MicroEmoForConditionalGeneration(config)
        print(f"MicroEmo preset '{args.preset}' on the meta device (no weights allocated):")
        print(format_table(parameter_table(model)))
        return 0
    if args.output_dir is None:
        raise SystemExit("build-model: OUTPUT_DIR is required unless --meta is given.")

    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise SystemExit(f"build-model: {output_dir} exists and is not a directory; give a folder to save the model in.")
    if args.preset == "paper" and not any(value is not None for value in sources.values()):
        raise SystemExit(
            "build-model: the paper preset has ~8B parameters; point it at its pretrained parts "
            "(--instructblip, --language-model, --video-llama-video, --video-llama-audio, --imagebind) "
            "or use --meta to inspect it."
        )
    processor = build_processor(config, args.preset, args.language_model, args.instructblip)
    dtype = getattr(torch, args.dtype)
    if any(value is not None for value in sources.values()):
        from microemo.training.convert_checkpoints import assemble_model

        model, report = assemble_model(config, dtype=dtype, **sources)
        print(report.summary())
    else:
        torch.manual_seed(args.seed)
        model = MicroEmoForConditionalGeneration(config).to(dtype)
    print(format_table(parameter_table(model)))
    converted = any(value is not None for value in sources.values())
    base_models = [str(v) for v in sources.values() if v is not None and _looks_like_hub_id(str(v))]
    info = CardInfo(weights="converted" if converted else "random", base_models=base_models,
                    license="llama2" if "llama-2" in str(args.language_model).lower() else "apache-2.0")  # fmt: skip
    save_model_folder(model, processor, output_dir, info)
    print(f"saved the model, its processor and a model card to {output_dir.resolve()}")
    return 0


def _looks_like_hub_id(value: str) -> bool:
    return value.count("/") == 1 and not Path(value).exists() and not value.endswith((".pth", ".pt", ".bin"))


def build_processor(config, preset: str, language_model: str | None, instructblip: str | None):
    """The processor that belongs with a built model: the tiny offline tokenizers for `tiny-random`; for real
    presets the language model's tokenizer (with `<video>` / `<audio>` added at the config's ids) and
    InstructBLIP's Q-Former tokenizer."""
    from microemo.processing.processing_microemo import MicroEmoProcessor

    if preset == "tiny-random":
        from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

        return MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())
    if language_model is None or instructblip is None:
        raise SystemExit(
            f"build-model: the '{preset}' processor needs the language model's tokenizer (--language-model) and "
            "InstructBLIP's Q-Former tokenizer (--instructblip)."
        )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(language_model)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<video>", "<audio>"]})
    qformer_tokenizer = AutoTokenizer.from_pretrained(instructblip, subfolder="qformer_tokenizer")
    return MicroEmoProcessor.from_model_config(config, tokenizer, qformer_tokenizer)  # checks the placeholder ids


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-model",
        help="assemble a MicroEmo from a preset and save it",
        description="Assemble a MicroEmo from a preset (and, for 'paper', its pretrained parts) and save it "
        "with save_pretrained (safetensors, remote code included).",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True,
                        help="the model's shapes: 'paper' (EVA ViT-g, LLaMA-2-7B, ImageBind; built from its pretrained "
                        "parts) or 'tiny-random' (a few MB, random weights: tests and the demo)")  # fmt: skip
    parser.add_argument("output_dir", nargs="?", help="where to save the model")
    parser.add_argument("--meta", action="store_true", help="build on the meta device and print parameter counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the saved weights (default float32)")
    parser.add_argument("--instructblip", help="InstructBLIP checkpoint (hub id or folder), e.g. Salesforce/instructblip-vicuna-7b")
    parser.add_argument("--language-model", help="causal LM checkpoint (hub id or folder), e.g. meta-llama/Llama-2-7b-chat-hf (the LLM the Video-LLaMA-2 branches were trained on)")
    parser.add_argument("--video-llama-video", help="Video-LLaMA vision-language .pth, e.g. VL_LLaMA_2_7B_Finetuned.pth")
    parser.add_argument("--video-llama-audio", help="Video-LLaMA audio-language .pth, e.g. AL_LLaMA_2_7B_Finetuned.pth")
    parser.add_argument("--imagebind", help="ImageBind checkpoint .pth, e.g. imagebind_huge.pth")
    parser.set_defaults(func=build_model)
