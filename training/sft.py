"""Instruction-tune MicroEmo with TRL's SFTTrainer and LoRA.

    accelerate launch training/sft.py --config training/configs/tiny-cpu.yaml --output_dir runs/tiny

The data: a folder written by ``microemo prepare-data`` (a DatasetDict with a seeded train/test split), or a
JSONL file (one {"video", "answer"[, "subtitle", "utterances", "question"]} per line), prepared into
OUTPUT_DIR/data on first use. With the EMER data: prepare, train, then predict the test split and evaluate it:

    microemo prepare-data emer --videos VIDEOS --descriptions EMER-Fine.csv --subtitles subtitles.csv \\
        --openset openset.csv --processor runs/paper-init --output data/emer
    accelerate launch training/sft.py --config training/configs/paper.yaml --dataset_path data/emer \\
        --model_name_or_path runs/paper-init --output_dir runs/microemo
    microemo predict VIDEOS --model runs/microemo --names data/emer/test_references.csv --output test.jsonl
    microemo evaluate --predictions test.jsonl --references data/emer/test_references.csv --judge-model MODEL

The model: a saved MicroEmo (``microemo build-model``) with its processor, or ``--preset tiny-random``. LoRA goes
on the LLM's attention projections; the paper's trained modules (Q-Formers, local clue attention, projections,
queries, position embeddings) train in full as ``modules_to_save``; the new modules get
``--new_modules_learning_rate``. Multi-GPU: the accelerate configs in training/accelerate/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from trl import ModelConfig, SFTConfig, TrlParser

from microemo.training.collator import MicroEmoDataCollator
from microemo.training.data import (
    jsonl_rows,
    load_prepared,
    preparation_key,
    prepare_dataset,
    prepared_is_current,
)
from microemo.training.loading import (
    DATA_FOLDER,
    build_preset_base,
    load_model_and_processor,
    lora_config,
)
from microemo.training.trainer import MicroEmoSFTTrainer, save_final_model, write_model_card


@dataclass
class MicroEmoScriptArguments:
    """Data, model source and what to save."""

    dataset_path: str = field(
        metadata={"help": "A folder from `microemo prepare-data`, or a JSONL file (video, answer[, subtitle, "
                          "utterances, question]; paths relative to the file) prepared into OUTPUT_DIR/data."}
    )  # fmt: skip
    preset: str | None = field(
        default=None, metadata={"help": "Build a random model of this preset ('tiny-random') instead of loading one."}
    )
    processor_name_or_path: str | None = field(default=None, metadata={"help": "Processor folder (default: the model's)."})
    new_modules_learning_rate: float | None = field(
        default=1e-3,
        metadata={"help": "Learning rate of the modules that start from scratch, the fusion gate and the local clue "
                          "attention (None: the global learning_rate). See docs/training.md."},
    )  # fmt: skip
    use_local_clue_attention: bool | None = field(
        default=None, metadata={"help": "Override the model config's switch (Table 2 ablations); None keeps it."}
    )
    use_utterance_windows: bool | None = field(
        default=None, metadata={"help": "Override the model config's switch (Table 2 ablations); None keeps it."}
    )
    merge_lora: bool = field(default=True, metadata={"help": "Merge LoRA into the saved model (else save the adapter)."})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads per process (1 is fastest for tiny models on shared cores)."}
    )
    test_fraction: float | None = field(
        default=None,
        metadata={"help": "Test share of a JSONL dataset's seeded split (default 0.2; a dataset under 10 rows trains "
                  "on every row, with a warning, unless a share is given)."},
    )
    num_proc: int | None = field(default=None, metadata={"help": "Processes preparing a JSONL dataset."})


@dataclass
class MicroEmoModelConfig(ModelConfig):
    """TRL's model arguments with MicroEmo's LoRA defaults (r=32, alpha=32, dropout 0.1, on by default)."""

    use_peft: bool = True
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": "Modules trained in full IN ADDITION to the paper's trained set (Q-Formers, local clue "
                          "attention, projections, queries, position embeddings), e.g. lm_head."},
    )  # fmt: skip


def _counts(data_path: Path, dataset) -> dict[str, int]:
    report = data_path / "prepare.json"
    counts = json.loads(report.read_text())["counts"] if report.is_file() else {}
    return {**counts, "train": len(dataset["train"]), "test": len(dataset["test"])}


def parse_arguments(argv: list[str] | None = None):
    """The script's three argument dataclasses (script, SFTConfig, model) from ``argv`` and ``--config``."""
    parser = TrlParser((MicroEmoScriptArguments, SFTConfig, MicroEmoModelConfig), description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None) -> None:
    # TRL 1.16 reads `model.is_gradient_checkpointing`, which transformers 5.24 deprecates: not our call, and
    # nothing for the user to change; keep it out of every run's log.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    script_args, training_args, model_args = parse_arguments(argv)
    # Video batches come from our collator; TRL must neither tokenise nor drop the prepared columns.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    training_args.max_length = None
    training_args.ddp_find_unused_parameters = False  # the model touches every trainable parameter each step
    # The Trainer's own push would upload checkpoints and the output folder as is (data/, base-model/); the
    # end of this script pushes the model files only (microemo.hub.push_model_folder's allow-list).
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    # transformers 5.24 names it activation_checkpointing (gradient_checkpointing is a deprecated mirror).
    if training_args.activation_checkpointing and training_args.activation_checkpointing_kwargs is None:
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False}

    if model_args.dtype in ("bfloat16", "float16") and not (training_args.bf16 or training_args.fp16):
        raise SystemExit(f"sft.py: dtype={model_args.dtype} keeps the frozen parts in half precision and the trained "
                         "modules in float32, which needs autocast: set bf16: true (or fp16: true)")  # fmt: skip
    if script_args.num_threads:
        torch.set_num_threads(script_args.num_threads)

    model_path = model_args.model_name_or_path
    if script_args.preset:
        with training_args.main_process_first(desc="building the base model"):
            model_path = str(build_preset_base(script_args.preset, training_args.output_dir, training_args.seed))
    if not model_path:
        raise SystemExit("sft.py: give --model_name_or_path (a saved MicroEmo) or --preset tiny-random")
    switches = {key: value for key in ("use_local_clue_attention", "use_utterance_windows")
                if (value := getattr(script_args, key)) is not None}  # fmt: skip
    model, processor = load_model_and_processor(model_path, script_args.processor_name_or_path, model_args.dtype,
                                                **switches)  # fmt: skip

    data_path = Path(script_args.dataset_path)
    if data_path.suffix == ".jsonl":
        prepared = Path(training_args.output_dir) / DATA_FOLDER
        with training_args.main_process_first(desc="preparing the dataset"):
            rows = jsonl_rows(data_path)
            # Prepared data is keyed on its inputs: an edited JSONL or other processor settings prepare it again.
            if not prepared_is_current(prepared, preparation_key(rows, processor)):
                prepare_dataset(rows, processor, prepared, test_fraction=script_args.test_fraction,
                                seed=training_args.seed, num_proc=script_args.num_proc)  # fmt: skip
        data_path = prepared
    dataset = load_prepared(data_path)

    trainer = MicroEmoSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["test"] if training_args.eval_strategy != "no" and len(dataset["test"]) else None,
        processing_class=processor,
        data_collator=MicroEmoDataCollator(processor),
        peft_config=lora_config(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                                model_args.lora_target_modules, model_args.lora_modules_to_save)
        if model_args.use_peft else None,  # fmt: skip
        new_modules_learning_rate=script_args.new_modules_learning_rate,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = dict(train_result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()  # trainer_state.json: the whole loss history, for plots and reports

    save_final_model(trainer, processor, training_args.output_dir, merge_lora=script_args.merge_lora)
    if trainer.is_world_process_zero():
        split_file = data_path / "split.json"
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path or f"preset {script_args.preset}",
            dataset=script_args.dataset_path,
            split=json.loads(split_file.read_text()) if split_file.is_file() else None,
            counts=_counts(data_path, dataset),
            arguments={"script": dataclasses.asdict(script_args), "model": dataclasses.asdict(model_args),
                       "training": training_args.to_dict()},  # fmt: skip
            metrics=metrics,
            merged=script_args.merge_lora or not model_args.use_peft,
        )
        if push_to_hub:  # the folder as saved (our card, not the Trainer's), model files only
            from microemo.hub import push_model_folder

            push_model_folder(training_args.output_dir, training_args.hub_model_id or Path(training_args.output_dir).name,
                              private=bool(training_args.hub_private_repo), token=training_args.hub_token)  # fmt: skip


if __name__ == "__main__":
    main()
