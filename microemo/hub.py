"""One folder per model, ready for the Hub: weights, remote code, processor and a model card.

Every command that writes a model (``build-model``, the demo, training) goes through
:func:`save_model_folder`, so a folder always holds what ``AutoModel`` / ``AutoProcessor`` need with
``trust_remote_code=True`` and a ``README.md`` whose YAML header the Hub reads (license,
pipeline_tag, library_name, base models). :func:`push_model_folder` uploads that same set.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The task name of the pipeline that ships with every model folder (``pipeline_microemo.TASK``; a test
#: checks they agree, so that building the command line does not import the model code).
PIPELINE_TASK = "video-emotion-explanation"
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
#: Below this language-model width a model is a tiny test / demo model, and its card says so.
TINY_HIDDEN_SIZE = 256


@dataclass
class CardInfo:
    """What the model card says beyond the config.

    Attributes:
        weights: "random", "converted" or "trained" (:data:`WEIGHT_KINDS`).
        base_models: Hub ids the weights come from (the card's ``base_model``).
        datasets: Hub ids of the training data (the card's ``datasets``), if any.
        scores: metric name -> value on ``eval_dataset``; written as the card's ``model-index``.
        eval_dataset: (name, split) the scores were measured on.
        demo: a tiny demo model; ``None`` decides from the config (language model narrower than 256).
        adapter: the folder holds a PEFT adapter, not a full model.
        details: heading -> markdown (data, configuration, metrics, ...).
    """

    weights: str
    base_models: list[str] = field(default_factory=list)
    license: str = "apache-2.0"
    details: dict[str, str] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    eval_dataset: tuple[str, str] = ("EMER-Fine", "test")
    demo: bool | None = None
    adapter: bool = False

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_KINDS:
            raise ValueError(f"weights must be one of {sorted(WEIGHT_KINDS)}, got {self.weights!r}")


def _templates():
    """The Jinja2 environment of the package's templates (model card, report): blocks leave no blank lines."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("microemo", "templates"), trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False,
    )  # fmt: skip


def _model_rows(config) -> list[tuple[str, str]]:
    text_config = config.text_config
    return [
        ("frames", f"up to {config.max_frames} (the processor samples {getattr(config, 'num_frames', 8)} by default)"),
        ("image / video / audio queries",
         f"{config.num_query_tokens} / {config.num_video_query_tokens} / {config.num_audio_query_tokens}"),
        ("utterance windows", f"{'on' if config.use_utterance_windows else 'off'} (at most {config.max_utterances})"),
        ("local clue attention", "on" if config.use_local_clue_attention else "off"),
        ("language model",
         f"{text_config.model_type}, {text_config.num_hidden_layers} layers, width {text_config.hidden_size}"),
    ]  # fmt: skip


def model_card(config, info: CardInfo, repo_id: str | None = None):
    """The model card (``huggingface_hub.ModelCard``) of a model folder: metadata (license, pipeline, base
    models, datasets, a model-index when there are scores), what the weights are, intended and out-of-scope
    uses, limitations, evaluation, usage, the licences of the parts, the paper. ``str(card)`` is the README.md.

    ``config`` may be ``None`` for an adapter folder (no model table then).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    name = repo_id or "path/to/this/folder"
    demo = info.demo if info.demo is not None else bool(config is not None and config.text_config.hidden_size < TINY_HIDDEN_SIZE)
    tags = ["microemo", "emotion-recognition", "explainable-emotion-recognition", "multimodal", "custom_code"]
    if demo:
        tags.append("tiny-demo")
    if info.adapter:
        tags.append("lora")
    eval_results = [
        EvalResult(task_type="video-text-to-text", task_name="Explainable multimodal emotion recognition",
                   dataset_type=info.eval_dataset[0], dataset_name=info.eval_dataset[0],
                   dataset_split=info.eval_dataset[1], metric_type=metric, metric_name=metric, metric_value=value)
        for metric, value in info.scores.items()
    ]  # fmt: skip
    data = ModelCardData(
        license=info.license,
        library_name="peft" if info.adapter else "transformers",
        pipeline_tag="video-text-to-text",
        tags=tags,
        base_model=list(info.base_models) or None,
        datasets=list(info.datasets) or None,
        model_name=f"MicroEmo ({'tiny demo, ' if demo else ''}{info.weights} weights)",
        eval_results=eval_results or None,
    )
    content = _templates().get_template("model_card.md.jinja").render(
        card_data=data.to_yaml(),
        title=f"MicroEmo ({'tiny demo, ' if demo else ''}{info.weights} weights{', PEFT adapter' if info.adapter else ''})",
        weights_text=WEIGHT_KINDS[info.weights],
        demo=demo,
        trained=info.weights == "trained",
        adapter=info.adapter,
        base_model=info.base_models[0] if info.base_models else None,
        name=name,
        pipeline_task=PIPELINE_TASK,
        details=[(heading, body.rstrip()) for heading, body in info.details.items()],
        model_rows=_model_rows(config) if config is not None else [],
        paper=PAPER,
    )
    return ModelCard(content)


def save_model_folder(model, processor, output_dir: str | Path, info: CardInfo) -> Path:
    """Save the model (safetensors + remote code), the processor (with its chat template) and the model card."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: exists and is not a directory; choose a folder to save the model in")
    # The model's own pipeline travels with it: `pipeline(TASK, model=folder, trust_remote_code=True)`; the model's
    # save_pretrained writes the file that `custom_pipelines` names.
    from microemo.modeling_microemo.pipeline_microemo import PIPELINE_INFO

    custom = dict(getattr(model.config, "custom_pipelines", None) or {})
    custom[PIPELINE_TASK] = dict(PIPELINE_INFO)
    model.config.custom_pipelines = custom
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(str(model_card(model.config, info)), encoding="utf-8")
    return output_dir


#: What a model repository needs, as ``fnmatch`` patterns on paths relative to the model folder. A pattern
#: without ``/`` matches top-level files only, so nothing inside a sub-folder goes up unless a pattern names
#: that folder. Everything else in a run folder stays at home: ``data/`` (decoded frames and audio of licensed
#: videos with people's faces and voices), ``checkpoint-*/``, ``base-model/``, logs, predictions, reports.
PUSH_ALLOW_PATTERNS: tuple[str, ...] = (
    # weights (a full model, its shards, or a LoRA adapter that was not merged) and config
    "*.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json", "adapter_config.json",
    # remote code (the flat modeling / processing files save_pretrained copies) and the model's pipeline file
    "*.py",
    # processor files, both tokenizers and the chat template
    "processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json", "tokenizer.json",
    "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
    "qformer_tokenizer/*",
    # the card
    "README.md",
)


def _matches(relative: str, pattern: str) -> bool:
    if "/" not in pattern and "/" in relative:
        return False
    return fnmatch.fnmatchcase(relative, pattern)


@dataclass
class PushPlan:
    """Which files of a model folder go to the Hub (``upload``) and which stay (``left_out``), as relative paths."""

    upload: list[str]
    left_out: list[str]

    def summary(self, limit: int = 12) -> str:
        """Lines for the terminal: every uploaded file, and the files left out grouped by top-level folder."""
        lines = [f"uploading {len(self.upload)} files: " + ", ".join(self.upload)]
        if self.left_out:
            groups: dict[str, int] = {}
            for path in self.left_out:
                top = path.split("/", 1)[0] + ("/" if "/" in path else "")
                groups[top] = groups.get(top, 0) + 1
            shown = [f"{top} ({count} files)" if top.endswith("/") else top for top, count in sorted(groups.items())]
            more = f", ... {len(shown) - limit} more" if len(shown) > limit else ""
            lines.append(f"leaving out {len(self.left_out)} files (not part of a model repository; add any with "
                         f"--include PATTERN): " + ", ".join(shown[:limit]) + more)  # fmt: skip
        return "\n".join(lines)


def plan_push(folder: str | Path, include: Sequence[str] = ()) -> PushPlan:
    """Split the files under ``folder`` into those a model repository needs (:data:`PUSH_ALLOW_PATTERNS`, plus
    ``include`` patterns the user adds on purpose) and the rest."""
    folder = Path(folder)
    upload, left_out = [], []
    patterns = tuple(PUSH_ALLOW_PATTERNS) + tuple(include)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if "__pycache__" in relative.split("/") or relative.startswith(".cache/"):
            left_out.append(relative)
        elif any(_matches(relative, pattern) for pattern in patterns):
            upload.append(relative)
        else:
            left_out.append(relative)
    return PushPlan(upload=upload, left_out=left_out)


def push_model_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    include: Sequence[str] = (),
    api=None,
    log=print,
) -> str:
    """Upload the model-repository files of a folder written by :func:`save_model_folder` or training to the Hub
    (creating the repo); returns its URL.

    Only :data:`PUSH_ALLOW_PATTERNS` (and ``include``) are sent; what is sent and what is left out is printed
    through ``log``. The model card's usage snippet is rewritten with ``repo_id`` before the upload. ``api``
    replaces ``huggingface_hub.HfApi(token=token)`` (tests).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: no such model folder (write one with build-model, the demo or training)")
    plan = plan_push(folder, include)
    has_model = "config.json" in plan.upload or "adapter_config.json" in plan.upload
    missing = [name for name in ("README.md",) if name not in plan.upload]
    if not has_model or missing:
        missing = (["config.json or adapter_config.json"] if not has_model else []) + missing
        raise FileNotFoundError(f"{folder}: not a complete model folder, missing {missing} (save it with save_model_folder)")
    card = folder / "README.md"
    card.write_text(card.read_text(encoding="utf-8").replace("path/to/this/folder", repo_id), encoding="utf-8")
    log(plan.summary())
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    # allow_patterns are the exact paths chosen above (escaped: the client reads them as fnmatch patterns), so
    # the Hub client cannot widen the set.
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                               allow_patterns=[glob.escape(path) for path in plan.upload])  # fmt: skip
    return str(getattr(commit, "repo_url", None) or f"https://huggingface.co/{repo_id}")


def push(args: argparse.Namespace) -> int:
    url = push_model_folder(args.folder, args.repo_id, private=args.private, include=args.include or ())
    print(f"pushed {args.folder} to {url}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model folder's model files (weights, code, processor, card) to the Hugging Face Hub",
        description="Upload a folder written by build-model, the demo or training to the Hub: weights, remote code, "
        "processor and model card together.",
    )
    parser.add_argument("folder", help="the model folder")
    parser.add_argument("repo_id", help="the Hub repository, e.g. your-name/microemo-emer")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--include", action="append", metavar="PATTERN",
                        help="also upload files matching this pattern (relative to the folder, fnmatch; without '/' it "
                        "matches top-level files only; repeatable); "
                        "by default only weights, config, remote code, processor files, chat template, pipeline "
                        "file, card and adapter go up")  # fmt: skip
    parser.set_defaults(func=push)
