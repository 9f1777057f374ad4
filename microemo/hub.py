"""One folder per model, ready for the Hub: weights, remote code, processor and a model card.

Every command that writes a model (``build-model``, the demo, training) goes through
:func:`save_model_folder`, so a folder always holds what ``AutoModel`` / ``AutoProcessor`` need with
``trust_remote_code=True`` and a ``README.md`` whose YAML header the Hub reads (license,
pipeline_tag, library_name, base models). :func:`push_model_folder` uploads that same set.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from microemo.modeling_microemo.pipeline_microemo import PIPELINE_INFO
from microemo.modeling_microemo.pipeline_microemo import TASK as PIPELINE_TASK

PAPER = (
    "Liyun Zhang, Zhaojie Luo, Shuqiong Wu, Yuta Nakashima. MicroEmo: Time-Sensitive Multimodal Emotion "
    "Recognition with Subtle Clue Dynamics in Video Dialogues. MRAC '24 (ACM Multimedia workshop), 2024. "
    "https://doi.org/10.1145/3689092.3689408"
)
# What the three kinds of weights mean, for the card's reader.
WEIGHT_KINDS = {
    "random": "randomly initialised: the architecture and the pipeline work, the generated text is noise. "
    "Use it for tests and demos, not for predictions.",
    "converted": "assembled from the pretrained parts listed under `base_model`; the modules MicroEmo adds (local "
    "clue attention, utterance video Q-Former, fusion gate) are newly initialised and untrained, so the "
    "model needs instruction tuning on EMER data before its explanations mean anything.",
    "trained": "instruction-tuned; the training data, split, configuration and final metrics are listed below.",
}


@dataclass
class CardInfo:
    """What the model card says beyond the config: the kind of weights and where they came from."""

    weights: str
    base_models: list[str] = field(default_factory=list)
    license: str = "apache-2.0"
    details: dict[str, str] = field(default_factory=dict)  # heading -> markdown (data, config, metrics, ...)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_KINDS:
            raise ValueError(f"weights must be one of {sorted(WEIGHT_KINDS)}, got {self.weights!r}")


def model_card(config, info: CardInfo, repo_id: str | None = None) -> str:
    """The README.md of a model folder: YAML metadata, what the weights are, usage, the paper, the shapes."""
    metadata = {
        "license": info.license,
        "library_name": "transformers",
        "pipeline_tag": "video-text-to-text",
        "tags": ["microemo", "emotion-recognition", "explainable-emotion-recognition", "multimodal", "custom_code"],
    }
    if info.base_models:
        metadata["base_model"] = list(info.base_models)
    name = repo_id or "path/to/this/folder"
    text_config = config.text_config
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).rstrip(),
        "---",
        "",
        f"# MicroEmo ({info.weights} weights)",
        "",
        "MicroEmo explains which emotions a person in a video shows and why, from the face's subtle clues, the",
        "voice and the words. It adds two modules to a TimeChat / Video-LLaMA style video LLM: local attention",
        "over facial clue regions fused with the frame features, and a video Q-Former per utterance beside the",
        "global one.",
        "",
        f"**Weights:** {WEIGHT_KINDS[info.weights]}",
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModel, AutoProcessor",
        "",
        f'model = AutoModel.from_pretrained("{name}", trust_remote_code=True)',
        f'processor = AutoProcessor.from_pretrained("{name}", trust_remote_code=True)',
        'conversation = processor.emer_conversation("clip.mp4", utterances="clip.srt")  # the paper\'s prompt',
        "inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,",
        '                                       return_dict=True, return_tensors="pt")',
        "output = model.generate(**inputs, max_new_tokens=256)",
        'print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
        "Or in one line, with the pipeline that ships with the model (explanation, emotion labels, utterances):",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'pipe = pipeline("{PIPELINE_TASK}", model="{name}", trust_remote_code=True)',
        'print(pipe("clip.mp4"))',
        "```",
        "",
        f"A web page for it: `microemo app --model {name}`; add `--export-space DIR` to write a Hugging Face Space.", "",
        "Reading video files needs `pip install av`; finding faces needs",
        "`pip install mediapipe==0.10.21 'numpy<2' 'protobuf<5'` (the last mediapipe whose wheel ships the",
        "face-mesh models); resampling audio arrays needs `scipy`. Without mediapipe, pass `landmarks` or",
        "`clue_masks` yourself.",
        "",
        "## Model",
        "",
        "| part | setting |",
        "|---|---|",
        f"| frames | up to {config.max_frames} (the processor samples {getattr(config, 'num_frames', 8)} by default) |",
        f"| image / video / audio queries | {config.num_query_tokens} / {config.num_video_query_tokens} / "
        f"{config.num_audio_query_tokens} |",
        f"| utterance windows | {'on' if config.use_utterance_windows else 'off'} (at most {config.max_utterances}) |",
        f"| local clue attention | {'on' if config.use_local_clue_attention else 'off'} |",
        f"| language model | {text_config.model_type}, {text_config.num_hidden_layers} layers, width "
        f"{text_config.hidden_size} |",
        "",
    ]
    for heading, body in info.details.items():
        lines += [f"## {heading}", "", body.rstrip(), ""]
    lines += ["## Paper", "", PAPER, ""]
    return "\n".join(lines)


def save_model_folder(model, processor, output_dir: str | Path, info: CardInfo) -> Path:
    """Save the model (safetensors + remote code), the processor (with its chat template) and the model card."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: exists and is not a directory; choose a folder to save the model in")
    # The model's own pipeline travels with it: `pipeline(TASK, model=folder, trust_remote_code=True)`; the model's
    # save_pretrained writes the file that `custom_pipelines` names.
    custom = dict(getattr(model.config, "custom_pipelines", None) or {})
    custom[PIPELINE_TASK] = dict(PIPELINE_INFO)
    model.config.custom_pipelines = custom
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(model_card(model.config, info), encoding="utf-8")
    return output_dir


def push_model_folder(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a folder written by :func:`save_model_folder` to the Hub (creating the repo); returns its URL.

    The model card's usage snippet is rewritten with ``repo_id`` before the upload.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    missing = [name for name in ("config.json", "processor_config.json", "README.md") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a complete model folder, missing {missing} (save it with save_model_folder)")
    card = folder / "README.md"
    card.write_text(card.read_text(encoding="utf-8").replace("path/to/this/folder", repo_id), encoding="utf-8")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    return str(getattr(commit, "repo_url", None) or f"https://huggingface.co/{repo_id}")


def push(args: argparse.Namespace) -> int:
    url = push_model_folder(args.folder, args.repo_id, private=args.private)
    print(f"pushed {args.folder} to {url}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model folder (model, processor, card) to the Hugging Face Hub",
        description="Upload a folder written by build-model, the demo or training to the Hub: weights, remote code, "
        "processor and model card together.",
    )
    parser.add_argument("folder", help="the model folder")
    parser.add_argument("repo_id", help="the Hub repository, e.g. your-name/microemo-emer")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.set_defaults(func=push)
