"""TRL's ``SFTTrainer`` with MicroEmo's optimizer groups, and the end of a run: save (merged or adapter) + card."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from trl import SFTTrainer

from microemo.hub import CardInfo, model_card, save_model_folder

from .loading import is_new_module_parameter

#: Parameters kept out of weight decay besides transformers' own rule (biases, norms): the fusion gate is one
#: scalar per channel that starts at zero; decay would pull the local clue path shut again.
NO_DECAY_NAMES = ("fusion_gate",)


def optimizer_parameter_groups(
    model: torch.nn.Module, weight_decay: float, decay_names: set[str] | list[str], new_modules_learning_rate: float | None
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups of the trainable parameters, each with its ``param_names``.

    A parameter decays when ``decay_names`` (transformers' ``get_decay_parameter_names``) holds it and it is not one
    of :data:`NO_DECAY_NAMES`. The modules that start from scratch (``is_new_module_parameter``: the fusion gate and
    the local clue attention) get ``new_modules_learning_rate``; every other group keeps the global rate (no "lr"
    key). The utterance Q-Former starts from Video-LLaMA's video Q-Former, so it trains at the global rate.
    """
    decay_names = set(decay_names)
    groups: dict[tuple[bool, bool], dict[str, list]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = name in decay_names and not any(part in NO_DECAY_NAMES for part in name.split("."))
        new = new_modules_learning_rate is not None and is_new_module_parameter(name)
        group = groups.setdefault((new, decays), {"params": [], "param_names": []})
        group["params"].append(parameter)
        group["param_names"].append(name)
    parameter_groups = []
    for (new, decays), group in sorted(groups.items()):
        group["weight_decay"] = weight_decay if decays else 0.0
        if new:
            group["lr"] = new_modules_learning_rate
        parameter_groups.append(group)
    return parameter_groups


class MicroEmoSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose optimizer gives the modules that start from scratch (fusion gate, local clue attention)
    their own learning rate, ``new_modules_learning_rate``, and keeps the fusion gate out of weight decay; the
    scheduler scales every group alike (warm-up, cosine). ``None`` keeps one learning rate for everything."""

    def __init__(self, *args: Any, new_modules_learning_rate: float | None = None, **kwargs: Any) -> None:
        self.new_modules_learning_rate = new_modules_learning_rate
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        groups = optimizer_parameter_groups(
            opt_model, self.args.weight_decay, self.get_decay_parameter_names(opt_model), self.new_modules_learning_rate
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        # The names are for tests and logs; some optimizer wrappers do not expect the key.
        self.optimizer = optimizer_cls([{k: v for k, v in g.items() if k != "param_names"} for g in groups],
                                       **optimizer_kwargs)  # fmt: skip
        return self.optimizer


def trained_parameter_names(model) -> list[str]:
    """Names of the parameters that train (LoRA and the copies PEFT keeps for ``modules_to_save``)."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def save_final_model(trainer: MicroEmoSFTTrainer, processor, output_dir: str | os.PathLike, merge_lora: bool):
    """Save the trained model and the processor in ``output_dir``.

    ``merge_lora=True`` folds LoRA into the LLM and writes a plain MicroEmo checkpoint (safetensors + remote
    code) that ``AutoModel.from_pretrained(..., trust_remote_code=True)`` loads; ``False`` writes the PEFT
    adapter (LoRA + the trained modules), to load with ``PeftModel.from_pretrained(base, output_dir)``.
    Returns the saved model (merged or the PEFT model).
    """
    output_dir = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "peft_config") and merge_lora:
        model = model.merge_and_unload()
        # The copies trained through `modules_to_save` are the modules now; they must train again if reloaded.
        model.freeze_pretrained_parts()
    if trainer.accelerator.is_main_process:
        if hasattr(model, "peft_config"):  # the adapter: PEFT's own files, and the processor
            model.save_pretrained(output_dir, safe_serialization=True)
            processor.save_pretrained(output_dir)
        else:  # one Hub-ready folder: weights, remote code, processor, the model's pipeline (the card follows)
            save_model_folder(model, processor, output_dir, CardInfo(weights="trained"))
    trainer.accelerator.wait_for_everyone()
    return model


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    base_model: str,
    dataset: str,
    split: dict[str, Any] | None,
    counts: dict[str, int],
    arguments: dict[str, Any],
    metrics: dict[str, float],
    merged: bool,
) -> Path:
    """The README.md of the saved model: the card of every model folder (``microemo.hub.model_card``), plus what
    it was trained from, on what data and split, with which settings, and the final metrics."""
    from transformers import AutoConfig

    usage = (
        "A plain MicroEmo checkpoint (LoRA merged): load it as below."
        if merged
        else "A PEFT adapter (LoRA on the LLM + the trained MicroEmo modules): "
        f"`PeftModel.from_pretrained(AutoModel.from_pretrained('{base_model}', trust_remote_code=True), path)`."
    )
    data = [
        usage,
        "",
        f"- base model: `{base_model}`",
        f"- data: `{dataset}`",
        f"- rows: {counts.get('train', '?')} train, {counts.get('test', '?')} test"
        + (f", {counts['bad']} excluded (see bad_rows.jsonl of the prepared data)" if counts.get("bad") else ""),
    ]
    if split:
        data.append(f"- split: seed {split.get('seed')}, test fraction {split.get('test_fraction')}; "
                    "the test names are in split.json of the prepared data")  # fmt: skip
    metric_lines = [f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
                    for key, value in sorted(metrics.items())]  # fmt: skip
    details = {
        "Training (TRL SFTTrainer, LoRA, `training/sft.py`)": "\n".join(data),
        "Final metrics": "\n".join(metric_lines),
        "Configuration": "```json\n" + json.dumps(arguments, indent=2, sort_keys=True, default=str) + "\n```",
    }
    base_models = [base_model] if base_model.count("/") == 1 and not Path(base_model).exists() else []
    datasets = [dataset] if dataset.count("/") == 1 and not Path(dataset).exists() else []
    # The held-out loss is the one score a run has; EMER scores come from `microemo evaluate`.
    scores = {"eval_loss": float(metrics["eval_loss"])} if "eval_loss" in metrics else {}
    info = CardInfo(weights="trained", base_models=base_models, details=details, datasets=datasets, scores=scores,
                    eval_dataset=(dataset, "test"), adapter=not merged)  # fmt: skip
    config = AutoConfig.from_pretrained(output_dir, trust_remote_code=True) if merged else None
    if config is None and not base_models and "tiny-random" in base_model:
        info.demo = True
    path = Path(output_dir) / "README.md"
    path.write_text(str(model_card(config, info)), encoding="utf-8")
    return path


__all__ = [
    "MicroEmoSFTTrainer", "NO_DECAY_NAMES", "optimizer_parameter_groups", "save_final_model", "write_model_card",
    "trained_parameter_names",
]  # fmt: skip
