"""`microemo demo`, the main job: the whole MicroEmo pipeline on the repository's sample clips, in minutes.

1. Instruction-tunes the tiny random MicroEmo with `training/sft.py` and `training/configs/tiny-cpu.yaml`
   (TRL SFTTrainer + LoRA, launched through accelerate, exactly as on a GPU) on the bundled clips and answers.
2. Predicts on the clips with the tuned model (`microemo predict`'s code, greedy, batched).
3. Pulls the emotion labels out of each explanation (judge-free) and scores them against the references.
4. Writes one self-contained HTML report: what the model saw, what it said, the loss curve, the scores, and
   the commands to run the real thing.

The model is a tiny demo: it learns to repeat its training answers, which shows the pipeline works; it says
nothing about real videos.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from microemo.resources import sample_clips, training_file

CONFIG = training_file("configs", "tiny-cpu.yaml")
DATA = training_file("configs", "tiny-cpu-data.jsonl")
REAL_THING = """# 1. The paper's model from its pretrained parts (weights you download; LLaMA-2 needs Meta's licence):
microemo build-model --preset paper runs/paper-init \\
    --instructblip Salesforce/instructblip-vicuna-7b --language-model meta-llama/Llama-2-7b-chat-hf \\
    --video-llama-video VL_LLaMA_2_7B_Finetuned.pth --video-llama-audio AL_LLaMA_2_7B_Finetuned.pth \\
    --imagebind imagebind_huge.pth
# 2. EMER data (a licence agreement with its authors): a video folder + EMER-Fine.csv, subtitles, labels
microemo prepare-data emer --videos data/videos --descriptions data/EMER-Fine.csv --subtitles data/subtitles.csv \\
    --openset data/openset.csv --processor runs/paper-init --output data/emer
# 3. Instruction tuning (one GPU; training/accelerate/ has DDP and DeepSpeed configs):
accelerate launch --config_file training/accelerate/single-gpu.yaml training/sft.py \\
    --config training/configs/paper.yaml --output_dir runs/microemo
# 4. Predict and score (the judge: any OpenAI-compatible endpoint; scores compare only under one judge):
microemo predict data/videos --model runs/microemo --names data/emer/test_references.csv --output predictions.jsonl
microemo evaluate --predictions predictions.jsonl --references data/emer/test_references.csv --judge-model gpt-4o-mini
"""


def demo_rows() -> list[dict]:
    """The demo's training rows with their media paths made absolute, found wherever the package is installed (the
    JSONL names them relative to the repository; an installed wheel has them in ``microemo.samples``)."""
    rows = []
    for line in DATA.read_text().splitlines():
        row = json.loads(line)
        for key in ("video", "utterances"):
            if row.get(key):
                row[key] = str(sample_clips() / Path(row[key]).name)
        rows.append(row)
    return rows


def _references() -> dict[str, dict]:
    """Per sample clip (by file stem): the answer to the EMER question and the reference labels."""
    references: dict[str, dict] = {}
    for row in demo_rows():
        stem = Path(row["video"]).stem
        entry = references.setdefault(stem, {"video": Path(row["video"]), "utterances": None})
        if row.get("utterances"):
            entry["utterances"] = Path(row["utterances"])
        if "question" not in row:  # the EMER question: the explanation to reproduce
            entry["answer"], entry["row"] = row["answer"], row["name"]
        if "openset" in row:
            entry["openset"] = list(row["openset"])
    return references


def _train(model_dir: Path, quick: bool) -> float:
    data = model_dir.parent / "demo-data.jsonl"  # the rows with absolute media paths (see demo_rows)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(row) + "\n" for row in demo_rows()), encoding="utf-8")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(training_file("sft.py")),
        "--config", str(CONFIG), "--output_dir", str(model_dir), "--dataset_path", str(data),
        # The Trainer's progress bar only on a terminal; in a log its loss lines every logging_steps are enough.
        "--disable_tqdm", str(not sys.stderr.isatty()),
    ]  # fmt: skip
    if quick:
        command += ["--num_train_epochs", "10", "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "5"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    # The run is on the CPU (--cpu): said to DeepSpeed (imported by accelerate where installed), it does not warn
    # that it "could not detect" a GPU in every log.
    env.setdefault("DS_ACCELERATOR", "cpu")
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def _check_samples(samples: list[Path]) -> None:
    """Fail before training on a sample that is not a readable video (one line, from the CLI)."""
    from microemo.processing.video_io import probe_video

    for sample in samples:
        probe_video(sample)


def run_demo(args: argparse.Namespace) -> int:
    from microemo.evaluation.wheel import matching_scores
    from microemo.predict import load_predictor
    from microemo.processing.visualize import draw_sample
    from microemo.report import ClipResult, answers_to_other_questions, loss_plot, write_report

    output_dir = Path(args.output_dir)
    model_dir = output_dir / "model"
    references = _references()
    extra = [Path(s) for s in args.sample or []]
    _check_samples(extra)
    output_dir.mkdir(parents=True, exist_ok=True)

    print(f"1/4 instruction-tuning the tiny MicroEmo on {len(references)} sample clips (TRL + LoRA) -> {model_dir}")
    seconds = _train(model_dir, args.quick)
    history = json.loads((model_dir / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    print(f"    trained in {seconds:.0f} s; loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    print("2/4 predicting with the tuned model (loaded through AutoModel with remote code)")
    predictor = load_predictor(model_dir, max_new_tokens=args.max_new_tokens, batch_size=3, num_workers=1)
    videos = [entry["video"] for entry in references.values()] + extra
    subtitles = {entry["video"]: entry["utterances"] for entry in references.values()}
    predictions_path = output_dir / "predictions.jsonl"
    predictions_path.unlink(missing_ok=True)
    rows = []
    for video in videos:  # one call per clip: each has its own subtitle file
        rows += predictor.run([video], subtitles=subtitles.get(video), output=predictions_path, progress=False)

    print("3/4 scoring the emotion labels of each explanation against the references (judge-free)")
    scored = [(row, references.get(row["name"], {})) for row in rows]
    with_reference = [(row, ref) for row, ref in scored if ref.get("openset")]
    scores = matching_scores([ref["openset"] for _, ref in with_reference], [row["openset"] for row, _ in with_reference],
                             return_details=True)  # fmt: skip
    details = dict(zip([row["name"] for row, _ in with_reference], scores["details"], strict=True))

    print("4/4 writing the report")
    split_file = model_dir / "data" / "split.json"
    held_out_rows = set(json.loads(split_file.read_text())["test"]) if split_file.is_file() else set()
    clips = []
    for row, ref in scored:
        picture = None
        if not row["error"]:
            sample = predictor.processor.prepare_sample(row["video"], utterances=str(ref["utterances"]) if ref.get("utterances") else None)
            picture = draw_sample(sample, output_dir / f"{row['name']}.png", region_names=list(predictor.processor.clue_regions),
                                  image_size=predictor.processor.image_size, patch_size=predictor.processor.patch_size,
                                  num_audio_clips=predictor.processor.num_audio_clips, columns=4, font_scale=1.4)  # fmt: skip
        detail = details.get(row["name"]) or {}
        clips.append(ClipResult(
            name=row["name"], picture=picture, explanation=row["english"], reference=ref.get("answer", "(no reference)"),
            labels=row["openset"], reference_labels=ref.get("openset", []), precision=detail.get("precision"),
            recall=detail.get("recall"), notes=row.get("notes", []), error=row["error"],
            split="new" if "row" not in ref else "held-out" if ref["row"] in held_out_rows else "train",
            flags=answers_to_other_questions(row["english"], None, demo_rows()),
        ))  # fmt: skip
    summary = {
        "model": f"tiny-random preset, {sum(p.numel() for p in predictor.model.parameters()):,} parameters",
        "training": f"{len(losses)} logged steps over {history[-1].get('step', '?')} steps in {seconds:.0f} s; "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}",
        "labels (lemma match, judge-free)": f"F {scores['lemma_match_fscore']:.2f}, precision "
        f"{scores['lemma_match_precision']:.2f}, recall {scores['lemma_match_recall']:.2f} over "
        f"{scores['lemma_match_num_scored']} clips",
        "files": f"{model_dir} (model folder), {predictions_path} (predictions)",
    }
    report = write_report(output_dir / "report.html", clips, loss_plot(history, output_dir / "loss.png"),
                          summary=summary, commands=REAL_THING,
                          held_out=any("eval_loss" in entry for entry in history))  # fmt: skip
    print(f"report: {report.resolve()}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: tune the tiny model on the sample clips, predict, score, write an HTML report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output-dir", default="runs/demo", help="where the model, predictions and report go")
    parser.add_argument("--sample", action="append", metavar="VIDEO",
                        help="also predict on this video after tuning (repeatable)")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=48,
                        help="longest explanation the tuned model writes per clip (default 48: the answers are short)")
    parser.add_argument("--quick", action="store_true", help="a few training steps only (a smoke test, not a demo)")
    parser.set_defaults(func=run_demo)
