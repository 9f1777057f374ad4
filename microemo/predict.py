"""`microemo predict`: explain the emotions in a folder of videos, resumably, into a JSONL file.

Per video the output row holds the explanation (``english``, the field ``microemo evaluate`` reads), the
emotion labels pulled out of it (``openset``; judge-free by default, the judge LLM of ``evaluation/`` when
asked), the utterance spans used, whether a face and audio were found, and timings. Preparing the next
batch (decoding, face mesh, voice activity, in a DataLoader worker) overlaps generating this one;
generation is batched and greedy, with left padding. Each row is appended as one write, so a killed run
resumes where it stopped; a video that cannot be read gets a row with the reason and the rest go on. The output
file is locked for the run, and failed rows are retried on resume (``outputs.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from microemo.outputs import OutputLock, append_row, plan_resume, read_rows, unreadable_reason

if TYPE_CHECKING:  # torch is imported where it is used: `microemo predict --help` must not wait for it
    import torch

SUBTITLE_SUFFIXES = (".srt", ".vtt", ".json")
# Files in a video folder that are never videos (subtitles beside the clips, our own outputs).
NOT_VIDEOS = (*SUBTITLE_SUFFIXES, ".jsonl", ".csv", ".txt", ".md", ".html", ".png", ".jpg", ".lock", ".owner")


def find_videos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files given, and the files of folders given (sorted; subtitles and outputs left out)."""
    videos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            # Links are kept even when broken or looping: every unreadable file gets a row saying why.
            videos += sorted(p for p in path.iterdir() if (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
                             and p.suffix.lower() not in NOT_VIDEOS)  # fmt: skip
        else:
            videos.append(path)  # a missing file gets a result row saying so
    names = [video.stem for video in videos]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"several videos share the name(s) {duplicates}; results are keyed by file name without suffix")
    return videos


def select_videos(inputs: Sequence[str | os.PathLike], names: Iterable[str] | None = None) -> list[Path]:
    """The videos of ``inputs`` (:func:`find_videos`), only those whose name is in ``names`` when given; a name
    without a video raises."""
    paths = find_videos(inputs)
    if names is not None:
        wanted = set(names)
        paths = [path for path in paths if path.stem in wanted]
        missing = sorted(wanted - {path.stem for path in paths})
        if missing:
            raise FileNotFoundError(f"{len(missing)} named sample(s) have no video among the inputs, e.g. {missing[:5]}")
    return paths


def read_names(path: str | os.PathLike) -> set[str]:
    """Sample names from a CSV with a ``name`` column (e.g. prepared data's ``test_references.csv``), a JSON
    ``split.json`` (its ``test`` list), or a text file with one name per line."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--names {path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        names = data.get("test") if isinstance(data, dict) else data
        if not isinstance(names, list):
            raise ValueError(f"--names {path}: expected a JSON list of names or an object with a 'test' list")
        return {str(name) for name in names}
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise ValueError(f"--names {path}: a CSV needs a 'name' column, found {reader.fieldnames}")
        return {row["name"] for row in reader}
    return {line.strip() for line in text.splitlines() if line.strip()}


def match_subtitles(videos: Sequence[Path], subtitles: str | os.PathLike | None) -> dict[Path, Path | None]:
    """Each video's utterance file: ``subtitles`` itself for one video, or ``<folder>/<video stem>.srt|.vtt|.json``."""
    if subtitles is None:
        return {video: None for video in videos}
    subtitles = Path(subtitles)
    if subtitles.is_file():
        if len(videos) != 1:
            raise ValueError(f"--subtitles {subtitles} is one file for {len(videos)} videos; give a folder of <name>.srt")
        return {videos[0]: subtitles}
    if not subtitles.is_dir():
        raise FileNotFoundError(f"--subtitles {subtitles}: no such file or folder")
    matched = {}
    for video in videos:
        candidates = [subtitles / f"{video.stem}{suffix}" for suffix in SUBTITLE_SUFFIXES]
        matched[video] = next((c for c in candidates if c.is_file()), None)
    return matched


def read_done(output: Path) -> dict[str, dict]:
    """Rows already in ``output`` by name (read only; see :func:`microemo.outputs.read_rows`)."""
    return read_rows(Path(output))[0]


class _Videos:
    """Prepares one video per item in a DataLoader worker (a map-style dataset: ``__len__`` and ``__getitem__``);
    a failure becomes the item's error message. A video longer than ``segment_seconds`` is only marked: its
    segments are prepared one at a time when predicted."""

    def __init__(self, processor, videos: Sequence[Path], subtitles: dict[Path, Path | None], face="speaker",
                 segment_seconds: float | None = None) -> None:  # fmt: skip
        self.processor, self.videos, self.subtitles = processor, list(videos), subtitles
        self.face, self.segment_seconds = face, segment_seconds

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        video = self.videos[index]
        start = time.perf_counter()
        try:
            reason = unreadable_reason(video)
            if reason is not None:
                raise FileNotFoundError(reason)
            subtitle = self.subtitles.get(video)
            from microemo.processing.video_io import probe_video
            from microemo.timeline import prepare_video

            if self.segment_seconds and probe_video(video).duration > self.segment_seconds:
                return {"video": video, "segmented": True, "subtitle": subtitle}
            sample = prepare_video(self.processor, video, utterances=str(subtitle) if subtitle else None, face=self.face)
        except Exception as error:  # reported in the video's row; the other videos go on
            return {"video": video, "error": f"{type(error).__name__}: {error}"}
        return {"video": video, "sample": sample, "prepare_seconds": time.perf_counter() - start}


def _keep(batch: list) -> list:
    return batch


class Predictor:
    """Batched, greedy MicroEmo predictions on video files, with labels, resumable into a JSONL file.

    Args:
        model, processor: a loaded MicroEmo and its processor.
        question: the question after the subtitle (default: the processor's EMER question).
        batch_size: videos generated together.
        max_new_tokens: longest explanation.
        num_workers: DataLoader workers preparing the next batch while this one generates (0: in this process).
        judge: an ``evaluation.judge.JudgeClient`` to extract the labels (default: judge-free word matching).
        per_utterance: also one answer per utterance (the row's ``timeline``), generated in one batch that shares
            the video's encoding (``microemo/timeline.py``).
        segment_seconds: videos longer than this (>= 2 s) are predicted in segments cut at pauses (``segments``).
        face: the person to look at: ``"speaker"`` (the active speaker, default), ``"largest"``, a face index
            (0 = leftmost), or None for the processor's per-frame largest face.
        retry_failed: on resume, predict again the videos whose rows hold an error (default True).
    """

    def __init__(self, model, processor, *, question: str | None = None, batch_size: int = 4,
                 max_new_tokens: int = 256, num_workers: int = 1, judge=None, per_utterance: bool = False,
                 segment_seconds: float | None = None, face: str | int | None = "speaker",
                 retry_failed: bool = True) -> None:  # fmt: skip
        if batch_size < 1 or num_workers < 0 or max_new_tokens < 1:
            raise ValueError(f"batch_size and max_new_tokens must be >= 1 and num_workers >= 0, got "
                             f"{batch_size}, {max_new_tokens}, {num_workers}")  # fmt: skip
        from microemo.processing.face_tracking import check_face_option
        from microemo.processing.segments import check_segment_seconds

        self.segment_seconds = None if segment_seconds is None else check_segment_seconds(segment_seconds)
        self.face = None if face is None else check_face_option(face)
        self.per_utterance = bool(per_utterance)
        self.model, self.processor, self.question = model.eval(), processor, question
        self.batch_size, self.max_new_tokens, self.num_workers, self.judge = batch_size, max_new_tokens, num_workers, judge
        self.retry_failed = retry_failed

    def run(
        self,
        videos: Sequence[str | os.PathLike],
        subtitles: str | os.PathLike | None = None,
        output: str | os.PathLike | None = None,
        progress: bool = True,
        names: Iterable[str] | None = None,
    ) -> list[dict]:
        """Predict every video (files or folders; only those whose name is in ``names``, when given); returns the
        rows, the ones already in ``output`` included."""
        paths = select_videos(videos, names)
        matched = match_subtitles(paths, subtitles)
        if output is None:
            return self._run(paths, matched, None, {}, {}, progress)
        output = Path(output)
        with OutputLock(output):
            done, attempts = plan_resume(output, self.retry_failed)
            return self._run(paths, matched, output, done, attempts, progress)

    def _run(self, paths: list[Path], matched: dict, output: Path | None, done: dict[str, dict],
             attempts: dict[str, int], progress: bool) -> list[dict]:  # fmt: skip
        todo = [path for path in paths if path.stem not in done]
        rows = dict(done)
        import torch

        from microemo.modeling_microemo.pipeline_microemo import exit_with_parent

        loader = torch.utils.data.DataLoader(
            _Videos(self.processor, todo, matched, self.face, self.segment_seconds), batch_size=self.batch_size, num_workers=self.num_workers,
            collate_fn=_keep, prefetch_factor=2 if self.num_workers else None,
            worker_init_fn=exit_with_parent if self.num_workers else None,
        )  # fmt: skip
        # disable=None: tqdm shows the bar on a terminal only (in a log file it would be a wall of \r lines).
        bar = tqdm(total=len(todo), desc="predict", unit="video", disable=True if not progress or not todo else None)
        for batch in loader:
            for row in self._predict_batch(batch):
                row["attempts"] = attempts.get(row["name"], 0) + 1
                rows[row["name"]] = row
                if output is not None:
                    append_row(output, row)
            bar.update(len(batch))
        bar.close()
        return [rows[path.stem] for path in paths]

    def _predict_batch(self, batch: list[dict]) -> list[dict]:
        failed = [_row(item["video"], error=item["error"]) for item in batch if "error" in item]
        good = [item for item in batch if "error" not in item]
        if self.per_utterance or any(item.get("segmented") for item in good):
            return failed + [self._predict_one(item) for item in good]
        if not good:
            return failed
        import torch

        inputs, model_inputs = self.inputs([item["sample"] for item in good])
        start = time.perf_counter()
        with torch.no_grad():
            generated = self.model.generate(**model_inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        seconds = (time.perf_counter() - start) / len(good)
        explanations = [t.strip() for t in self.processor.batch_decode(
            generated[:, model_inputs["input_ids"].shape[1] :], skip_special_tokens=True)]  # fmt: skip
        labels, source, label_errors = self._labels(explanations)
        from microemo.timeline import face_fields

        rows = []
        for b, item in enumerate(good):
            sample = item["sample"]
            rows.append(_row(
                item["video"], english=explanations[b], openset=labels[b], labels_from=source,
                utterances=[{"start": s.start, "end": s.end, "text": s.text} for s in sample.utterances],
                audio=bool(inputs["audio_clip_mask"][b].any()), notes=inputs["notes"][b], **face_fields(sample),
                # Labels the judge could not give are a failed row (exit 3, retried on resume), not empty labels.
                error=label_errors[b],
                seconds={"prepare": round(item["prepare_seconds"], 3), "generate": round(seconds, 3)},
            ))  # fmt: skip
        return failed + rows

    def _predict_one(self, item: dict) -> dict:
        """A video's row on its own: segment by segment when it is long, with a timeline when asked."""
        from microemo.timeline import explain, explain_segments

        try:
            if item.get("segmented"):
                fields = explain_segments(self, item["video"], segment_seconds=self.segment_seconds,
                                          utterances=item["subtitle"], face=self.face, per_utterance=self.per_utterance)
            else:
                fields = explain(self, item["sample"], per_utterance=self.per_utterance)
                fields["seconds"]["prepare"] = round(item["prepare_seconds"], 3)
        except Exception as error:  # reported in the video's row; the other videos go on
            return _row(item["video"], error=f"{type(error).__name__}: {error}")
        return _row(item["video"], **fields)

    def inputs(self, samples: Sequence, question: str | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
        """The batch of prepared samples under the EMER prompt (with ``question``, else the predictor's): the whole
        :class:`BatchFeature` (metadata included) and the model's inputs on the model's device."""
        question = question or self.question
        conversations = [self.processor.emer_conversation(subtitle=s.subtitle, question=question) for s in samples]
        texts, _ = self.processor.render_conversations(conversations)
        batch = self.processor.collate(list(samples), texts, return_tensors="pt", return_metadata=True)
        names = self.processor.model_input_names
        return batch, {k: v.to(self.model.device) for k, v in batch.items() if k in names}

    def _labels(self, explanations: list[str]) -> tuple[list[list[str]], str, list[str | None]]:
        if self.judge is None:
            return self.processor.post_process_emotions(explanations), "emotion words", [None] * len(explanations)
        from microemo.evaluation.emer import parse_extraction_reply
        from microemo.evaluation.prompts import extraction_prompt

        replies = self.judge.complete_many([extraction_prompt(t) for t in explanations], parse_extraction_reply,
                                           desc="extract labels", progress=False)  # fmt: skip
        labels = [reply.value if hasattr(reply, "value") else [] for reply in replies]
        errors = [None if hasattr(reply, "value") else f"label extraction failed: {reply}" for reply in replies]
        return labels, f"judge {self.judge.config.model}", errors


def _row(video: Path, *, error: str | None = None, **fields: Any) -> dict:
    row = {"name": video.stem, "video": str(video), "english": "", "openset": [], "error": error}
    row.update(fields)
    return row


def load_predictor(model: str | os.PathLike, *, device: str | None = None, dtype: str = "auto", **options) -> Predictor:
    """A :class:`Predictor` for a model folder or Hub id (loaded with remote code, as a user of the Hub would)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    loaded = AutoModel.from_pretrained(str(model), trust_remote_code=True, dtype=getattr(torch, dtype)).to(device)
    processor = AutoProcessor.from_pretrained(str(model), trust_remote_code=True)
    return Predictor(loaded, processor, **options)


def predict(
    videos: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike,
    *,
    subtitles: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    progress: bool = False,
    **options,
) -> list[dict]:
    """Everything in one call: ``predict("clips/", model="folder-or-hub-id")`` -> one row per video."""
    videos = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    return load_predictor(model, **options).run(videos, subtitles=subtitles, output=output, progress=progress)


def run_predict(args: argparse.Namespace) -> int:
    from microemo.processing.face_tracking import check_face_option
    from microemo.processing.segments import check_segment_seconds

    # Checked before the model loads: a typo should not cost a minute of loading.
    check_segment_seconds(args.segment_seconds, "--segment-seconds")
    args.face = check_face_option(args.face, "--face")
    if args.asr_model:
        from microemo.processing.asr import asr_kind

        asr_kind(args.asr_model)  # refuses a checkpoint that is not a speech-recognition model

    from microemo import sharding

    if args.num_processes != 1 and not sharding.in_launched_run():  # start the processes; each comes back here
        return sharding.launch_predict(args)
    state = sharding.process_state(args.device) if sharding.in_launched_run() else None
    judge = None
    if args.judge_model:
        from microemo.evaluation.judge import JudgeClient, JudgeConfig

        judge = JudgeClient(JudgeConfig(model=args.judge_model, base_url=args.judge_base_url,
                                        api_key_env=args.judge_api_key_env))  # fmt: skip
    device = str(state.device) if state is not None and args.device in (None, "cuda") else args.device
    predictor = load_predictor(
        args.model, device=device, dtype=args.dtype, question=args.question, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, judge=judge, retry_failed=args.retry_failed,
        num_workers=sharding.default_num_workers(device) if args.num_workers is None else args.num_workers,
        per_utterance=args.per_utterance, segment_seconds=args.segment_seconds, face=args.face,
    )  # fmt: skip
    if args.asr_model:  # utterances and their words from the transcript (subtitles, when given, still win)
        predictor.processor.utterance_source, predictor.processor.asr_model = "asr", args.asr_model
    names = read_names(args.names) if args.names else None
    if state is not None:  # one of several processes: its share into its shard, merged by the main process
        rows = sharding.run_sharded(predictor, state, args.videos, output=args.output, subtitles=args.subtitles,
                                    names=names, progress=not args.no_progress)  # fmt: skip
        if rows is None:
            return 0
    else:
        sharding.merge_shards(args.output)  # the shards of a sharded run that stopped before its merge
        rows = predictor.run(args.videos, subtitles=args.subtitles, output=args.output, progress=not args.no_progress,
                             names=names)  # fmt: skip
    failed = [row for row in rows if row["error"]]
    print(f"{len(rows)} video(s): {len(rows) - len(failed)} explained, {len(failed)} failed; results in {args.output}")
    for row in failed:
        print(f"  failed: {row['video']}: {row['error']}", file=sys.stderr)
    return 3 if failed and state is None else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="explain the emotions in videos (JSONL results, resumable)",
        description="Explain the emotions of the person in each video with a MicroEmo model. Results are appended "
        "to a JSONL file that `microemo evaluate --predictions` reads; videos already explained in it are skipped and "
        "failed ones retried (--no-retry-failed keeps them). One run at a time per output file. Exit status "
        "0 when every video was explained, 3 when some failed (their rows say why), 1 on an error.",
    )
    parser.add_argument("videos", nargs="+", help="video files and/or folders of videos")
    parser.add_argument("--model", required=True, help="a model folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument("--subtitles", help="an utterance file (.srt/.vtt/.json) for one video, or a folder of <name>.srt")
    parser.add_argument("--names", help="only these samples: a CSV with a name column (test_references.csv), "
                        "a split.json (its test list) or one name per line")
    parser.add_argument("--question", help="the question after the subtitle (default: the EMER question)")
    parser.add_argument("--batch-size", type=int, default=4, help="videos generated together (default 4)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest explanation (default 256)")
    parser.add_argument("--num-workers", type=int, default=None, help="processes preparing the next batches (default: "
                        "the cores of this process left after generation's threads, at least 1)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=Path("predictions.jsonl"), help="results (default predictions.jsonl)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="weights' dtype: auto = bfloat16 on a GPU that supports it, else float32 (default auto)")
    parser.add_argument("--judge-model", help="extract the labels with this judge LLM (default: judge-free word matching)")
    parser.add_argument("--judge-base-url", help="the judge's OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    parser.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=True,
                        help="on resume, predict again the videos whose rows hold an error (default: yes)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--per-utterance", action="store_true",
                        help="also one answer per utterance (the row's timeline), one shared encoding per video")
    parser.add_argument("--segment-seconds", type=float, default=60.0,
                        help="videos longer than this are predicted in segments cut at pauses (default 60, >= 2)")
    parser.add_argument("--asr-model", help="find utterances and their words with this speech-recognition model "
                        "(e.g. openai/whisper-small; a folder or Hub id); subtitles, when given, still win")
    parser.add_argument("--face", default="speaker",
                        help="who to look at with several faces: speaker (default), largest, or an index (0 = leftmost)")
    parser.add_argument("--num-processes", type=int, default=1,
                        help="processes sharing the videos, started with accelerate's launcher (default 1; one per GPU, "
                        "or CPU processes); for GPUs or nodes of an accelerate config: "
                        "accelerate launch -m microemo.predict ...")  # fmt: skip
    parser.set_defaults(func=run_predict, predict_parser=parser)


def main(argv: list[str] | None = None) -> int:
    """``python -m microemo.predict ...`` and ``accelerate launch -m microemo.predict ...``: the arguments of
    ``microemo predict``."""
    from microemo.cli import main as cli_main

    return cli_main(["predict", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
