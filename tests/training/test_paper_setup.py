"""The paper's training set-up as the code builds it: optimizer parameter groups, LoRA defaults, ablation configs."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import Trainer, TrainingArguments

from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config
from microemo.training.loading import (
    DEFAULT_LORA_TARGET_MODULES,
    build_preset_base,
    load_model_and_processor,
    lora_config,
)
from microemo.training.sft import MicroEmoModelConfig, MicroEmoScriptArguments
from microemo.training.trainer import MicroEmoSFTTrainer, optimizer_parameter_groups

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.fixture(scope="module")
def peft_model():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = MicroEmoForConditionalGeneration(tiny_random_config())
    model.freeze_pretrained_parts()
    return peft.get_peft_model(model, lora_config(model, r=32, alpha=32, dropout=0.1))


def groups_by_name(groups: list[dict]) -> dict[str, dict]:
    return {name: group for group in groups for name in group["param_names"]}


def test_only_the_modules_that_start_from_scratch_get_the_new_modules_learning_rate(peft_model):
    decay = Trainer.get_decay_parameter_names(None, peft_model)
    groups = optimizer_parameter_groups(peft_model, 0.05, decay, new_modules_learning_rate=1e-3)
    by_name = groups_by_name(groups)
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert set(by_name) == trainable  # every trainable parameter in exactly one group
    assert sum(len(g["param_names"]) for g in groups) == len(trainable)

    fast = {name for name, group in by_name.items() if group.get("lr") == 1e-3}
    local = {name for name in trainable if ".local_clue_attention." in name}
    assert local and fast == local
    assert any(name.endswith("fusion_gate") for name in fast)
    # The utterance Q-Former starts from Video-LLaMA's video Q-Former: the global rate, like the video Q-Former.
    utterance = {name for name in trainable if "utterance_qformer" in name or "utterance_query_tokens" in name}
    assert utterance and not utterance & fast
    assert all("lr" not in by_name[name] for name in trainable - local)


def test_the_fusion_gate_biases_and_norms_are_out_of_weight_decay_and_matrices_decay(peft_model):
    decay = Trainer.get_decay_parameter_names(None, peft_model)
    by_name = groups_by_name(optimizer_parameter_groups(peft_model, 0.05, decay, new_modules_learning_rate=1e-3))
    gate = [name for name in by_name if name.endswith("fusion_gate")]
    assert gate and all(by_name[name]["weight_decay"] == 0.0 for name in gate)
    assert gate[0] in decay  # transformers' rule alone would decay it: the exclusion is ours
    for name, group in by_name.items():
        if name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name:
            assert group["weight_decay"] == 0.0, name
        if re.search(r"lora_[AB]\.default\.weight$|local_clue_attention\.modules_to_save\.default\.qkv\.weight$", name):
            assert group["weight_decay"] == 0.05, name


def test_without_a_new_modules_rate_every_group_trains_at_the_global_rate(peft_model):
    decay = Trainer.get_decay_parameter_names(None, peft_model)
    groups = optimizer_parameter_groups(peft_model, 0.05, decay, new_modules_learning_rate=None)
    assert all("lr" not in group for group in groups)
    assert {group["weight_decay"] for group in groups} == {0.0, 0.05}


def test_the_trainers_optimizer_holds_those_groups_and_rates(peft_model, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-5, weight_decay=0.05, report_to=[])
    host = SimpleNamespace(optimizer=None, model=peft_model, args=args, new_modules_learning_rate=1e-3,
                           get_decay_parameter_names=lambda m: Trainer.get_decay_parameter_names(None, m),
                           get_optimizer_cls_and_kwargs=Trainer.get_optimizer_cls_and_kwargs)  # fmt: skip
    optimizer = MicroEmoSFTTrainer.create_optimizer(host)
    names = {id(p): n for n, p in peft_model.named_parameters()}
    rates = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            rates[names[id(parameter)]] = (group["lr"], group["weight_decay"])
    gate = next(name for name in rates if name.endswith("fusion_gate"))
    assert rates[gate] == (1e-3, 0.0)
    utterance = next(name for name in rates if "utterance_qformer" in name and name.endswith("query.weight"))
    assert rates[utterance] == (3e-5, 0.05)
    lora = next(name for name in rates if "lora_A" in name)
    assert rates[lora] == (3e-5, 0.05)


def test_lora_defaults_are_timechats_r32_alpha32_dropout01_on_q_k_v_o(peft_model):
    defaults = MicroEmoModelConfig()
    assert (defaults.use_peft, defaults.lora_r, defaults.lora_alpha, defaults.lora_dropout) == (True, 32, 32, 0.1)
    wrapped = {name.rsplit(".", 1)[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj"}
    layers = {name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert all(".language_model.layers." in name for name in layers)
    assert len(layers) == 4 * tiny_random_config().text_config.num_hidden_layers
    assert not re.fullmatch(DEFAULT_LORA_TARGET_MODULES, "model.video_qformer.encoder.layer.0.attention.attention.query")
    config = next(iter(peft_model.peft_config.values()))
    assert (config.r, config.lora_alpha, config.lora_dropout) == (32, 32, 0.1)


def parse_config(path: Path) -> tuple[MicroEmoScriptArguments, object, MicroEmoModelConfig]:
    from trl import SFTConfig, TrlParser

    parser = TrlParser((MicroEmoScriptArguments, SFTConfig, MicroEmoModelConfig))
    # use_cpu: the configs ask for bf16, which TrainingArguments refuses on a machine without a GPU.
    return parser.parse_args_and_config(["--config", str(path), "--output_dir", "unused", "--use_cpu", "true"])


@pytest.mark.parametrize(
    ("name", "local", "windows"),
    [
        ("paper", None, None),
        ("ablation-no-local-clue-attention", False, None),
        ("ablation-no-utterance-windows", None, False),
        ("ablation-no-proposed-modules", False, False),
    ],
)
def test_each_training_config_sets_its_table_2_switches(name, local, windows):
    script, training, model_args = parse_config(CONFIGS / f"{name}.yaml")
    assert (script.use_local_clue_attention, script.use_utterance_windows) == (local, windows)
    # Everything else is the paper's setting: only the switches differ between the rows.
    assert (training.learning_rate, training.num_train_epochs, training.weight_decay) == (3e-5, 3, 0.05)
    assert (training.lr_scheduler_type, training.warmup_steps) == ("cosine", 0.05)  # TimeChat: warm-up + cosine
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (32, 32, 0.1)
    assert script.new_modules_learning_rate == 1e-3


def test_the_ablation_switches_remove_the_modules_from_the_loaded_model(tmp_path):
    folder = build_preset_base("tiny-random", tmp_path, seed=0)
    for local, windows in [(False, True), (True, False), (False, False)]:
        model, processor = load_model_and_processor(str(folder), use_local_clue_attention=local,
                                                    use_utterance_windows=windows)  # fmt: skip
        assert (model.model.local_clue_attention is not None) == local
        assert (model.model.utterance_qformer is not None) == windows
        assert processor.use_utterance_windows == windows
