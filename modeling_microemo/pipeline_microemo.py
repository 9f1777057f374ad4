"""The model's own pipeline: a video in, an explanation of the person's emotions and their labels out.

Shipped with a checkpoint (``config.custom_pipelines`` names it), so that

    pipe = pipeline("video-emotion-explanation", model="folder-or-repo", trust_remote_code=True)
    pipe("clip.mp4")  # {"explanation": ..., "labels": [...], "utterances": [...], "face_found": ..., ...}

works with only transformers installed (plus PyAV to read the file). It asks the paper's EMER question with
greedy decoding, through the processor's chat template, exactly as ``microemo predict`` does. Imports nothing
but transformers and torch.
"""

from __future__ import annotations

import collections.abc
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

TASK = "video-emotion-explanation"
# What `config.custom_pipelines` holds for this pipeline (`pipeline(folder)` reads it to find the class).
PIPELINE_INFO = {"impl": "pipeline_microemo.MicroEmoEmotionPipeline", "pt": ["AutoModel"], "type": "multimodal"}
# Per-input options: as call arguments (for every input) or as keys of a dict input (for that one).
INPUT_OPTIONS = ("utterances", "subtitle", "question", "landmarks", "clue_masks")
# MicroEmo's per-sample extras that ride on the conversation's video part (the processor reads them there).
VIDEO_PART_OPTIONS = ("landmarks", "clue_masks")


# --------------------------------------------------------------------------------------------------
# Per-utterance answers in one batch that shares the video's encoding (``per_utterance=True`` here, and
# ``microemo predict --per-utterance``): the video and audio tokens are computed once and written into every
# row's embedded prompt, so U utterances cost one pass of the encoders and Q-Formers; only the LLM runs per row.

UTTERANCE_QUESTION = (
    "Utterance {number} of {count} lasts from {start:.1f} s to {end:.1f} s{words}. From what clues can we infer "
    "the person's emotional state during this utterance? Describe the clues, then the emotions."
)
MEDIA_INPUTS = ("pixel_values", "frame_mask", "qformer_input_ids", "qformer_attention_mask", "clue_masks",
                "utterance_frame_mask", "audio_values", "audio_clip_mask")  # fmt: skip


def utterance_question(span, number: int, count: int) -> str:
    """The question of one timeline row: it names the utterance by number, span (s) and words."""
    words = f' and says "{span.text.strip().rstrip(".")}"' if span.text.strip() else " (no transcript)"
    return UTTERANCE_QUESTION.format(number=number, count=count, start=span.start, end=span.end, words=words)


def shared_inputs(processor, sample, questions: Sequence[str | None], device: torch.device | str = "cpu") -> dict[str, Any]:
    """The media tensors of ``sample`` (batch of 1) and the token ids of one EMER prompt per question (left
    padded): what :func:`generate_shared` needs."""
    conversations = [processor.emer_conversation(subtitle=sample.subtitle, question=q) for q in questions]
    texts, _ = processor.render_conversations(conversations)
    media = processor.collate([sample], texts[:1], return_tensors="pt", return_metadata=True)
    has_audio = bool(media["audio_clip_mask"].any())
    tokenizer = processor.tokenizer
    rows = [tokenizer(processor.expand_placeholders(text, len(sample.utterances), has_audio, f"question {k}"))["input_ids"]
            for k, text in enumerate(texts)]  # fmt: skip
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):  # left padding: every row's answer starts at the right end
        input_ids[b, width - len(row) :] = torch.tensor(row)
        attention_mask[b, width - len(row) :] = 1
    inputs = {name: media[name].to(device) for name in MEDIA_INPUTS}
    inputs.update(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), notes=media["notes"][0])
    return inputs


@torch.no_grad()
def embed_shared(model, inputs: dict[str, Any]) -> torch.Tensor:
    """Embedded prompts [N, S, D] with the one video's tokens (and sound's) written into every row."""
    config = model.config
    input_ids = inputs["input_ids"]
    rows = input_ids.shape[0]
    embeds = model.get_input_embeddings()(input_ids)
    video = torch.cat(model.get_video_features(
        inputs["pixel_values"], inputs["frame_mask"], inputs["qformer_input_ids"], inputs["qformer_attention_mask"],
        inputs["clue_masks"], inputs["utterance_frame_mask"],
    ).pooler_output)  # fmt: skip
    filled = [(config.video_token_id, video, "video")]
    if inputs["audio_clip_mask"].any():
        audio = torch.cat(model.get_audio_features(inputs["audio_values"], inputs["audio_clip_mask"]).pooler_output)
        filled.append((config.audio_token_id, audio, "audio"))
    for token_id, features, modality in filled:
        mask = input_ids == token_id
        if int(mask.sum()) != rows * features.shape[0]:
            raise ValueError(
                f"timeline: the prompts hold {int(mask.sum())} {modality} placeholders, expected {rows} rows x "
                f"{features.shape[0]} {modality} tokens"
            )
        # Row-major order of the mask = the same features once per row.
        embeds[mask] = features.to(embeds.dtype).repeat(rows, 1)
    return embeds


@torch.no_grad()
def generate_shared(model, inputs: dict[str, Any], max_new_tokens: int = 256, **generate_kwargs) -> torch.Tensor:
    """Answers of all rows of ``inputs`` (from :func:`shared_inputs`; greedy unless ``generate_kwargs`` say
    otherwise); returns the new tokens [N, L]."""
    embeds = embed_shared(model, inputs)
    generate_kwargs.setdefault("do_sample", False)
    return model.generate(
        inputs_embeds=embeds, attention_mask=inputs["attention_mask"], max_new_tokens=max_new_tokens, **generate_kwargs
    )


def timeline_questions(sample, question: str | None = None) -> list[str | None]:
    """The whole-video question (None: the processor's EMER question) and one question per utterance."""
    count = len(sample.utterances)
    return [question] + [utterance_question(span, number, count) for number, span in enumerate(sample.utterances, 1)]


def predict_timeline(
    model, processor, sample, *, question: str | None = None, max_new_tokens: int = 256, offset: float = 0.0,
    whole: bool = True, **generate_kwargs,
) -> tuple[str | None, list[dict]]:
    """The whole video's answer and the timeline ``[{start, end, text, explanation, labels}]`` of ``sample``
    (a prepared sample), in one shared-encoding batch. ``offset`` (s) is added to the spans (a segment's start);
    ``whole=False`` asks the utterances' questions only (the answer is then None)."""
    questions = timeline_questions(sample, question)[(0 if whole else 1) :]
    if not questions:
        return None, []
    inputs = shared_inputs(processor, sample, questions, model.device)
    generated = generate_shared(model, inputs, max_new_tokens, **generate_kwargs)
    answers = [text.strip() for text in processor.batch_decode(generated, skip_special_tokens=True)]
    answer, per_utterance = (answers[0], answers[1:]) if whole else (None, answers)
    labels = processor.post_process_emotions(per_utterance) if per_utterance else []
    timeline = [
        {"start": round(span.start + offset, 3), "end": round(span.end + offset, 3), "text": span.text,
         "explanation": text, "labels": found}
        for span, text, found in zip(sample.utterances, per_utterance, labels, strict=True)
    ]  # fmt: skip
    return answer, timeline


# --------------------------------------------------------------------------------------------------
# `microemo predict` on one video: the speaking face, the timeline, and segments of long videos.


def _concatenate(items: list[dict]) -> dict:
    """DataLoader collate: the samples differ in frames, utterances and clips, so they travel as one list of
    conversations and the processor pads them together (transformers' `pad_collate_fn` pads tokenizer outputs
    only, and refuses a processor whose tokenizer and feature extractor pad on different sides)."""
    return {key: [entry for item in items for entry in item[key]] for key in ("conversations", "requests")}


def exit_with_parent(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: end the worker as soon as the main process is gone (SIGKILL, the OOM killer,
    a preempted job). Otherwise a worker whose prepared sample is still in the pipe blocks forever at exit (torch
    joins the queue's feeder thread), keeping its memory and its face-mesh process."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # no clean-up left to do: the results go to a process that no longer exists

    threading.Thread(target=watch, name="microemo-parent-watch", daemon=True).start()


class MicroEmoEmotionPipeline(Pipeline):
    """Explain the emotions in videos.

    Inputs: a video path (or frames / a ``DecodedVideo``), or a dict ``{"video": ..., "utterances": ...,
    "subtitle": ..., "question": ..., "landmarks": ..., "clue_masks": ...}``; a list of them, batched with
    ``batch_size``. Call arguments ``utterances``, ``subtitle``, ``question``, ``landmarks``, ``clue_masks`` and
    ``max_new_tokens`` (default 256) apply to every input; other keywords go to ``generate``. ``landmarks``
    ([T, 478, 2 or 3] face-mesh points of the T sampled frames, NaN rows where no face) or ``clue_masks`` stand in
    for MediaPipe, which is then not needed.

    ``per_utterance=True`` adds a ``timeline``: one answer per utterance (``[{start, end, text, explanation,
    labels}]``), generated with the whole-video answer in one batch that encodes the video once. ``face``
    (``"speaker"``, ``"largest"`` or a face index) chooses whose face gives the clues when several people are
    on screen (the processor's setting otherwise). ``segment_seconds`` (>= 2): a video file longer than this is
    explained segment by segment, cut in pauses (``segments``: ``[{start, end, cut, explanation, labels,
    utterances[, timeline]}]`` on the video's clock); its ``explanation`` is the segments' in order, each after
    its time span, as ``microemo predict --segment-seconds`` writes it.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, max_new_tokens=None, per_utterance=None, face=None, segment_seconds=None, **kwargs):
        preprocess = {key: kwargs.pop(key) for key in INPUT_OPTIONS if kwargs.get(key) is not None}
        for key in INPUT_OPTIONS:
            kwargs.pop(key, None)
        forward = {"max_new_tokens": max_new_tokens or 256, **kwargs}
        if per_utterance:
            forward["per_utterance"] = True
        if face is not None:
            forward["face"] = face
        if segment_seconds is not None:
            forward["segment_seconds"] = segment_seconds
        return preprocess, forward, {}

    def preprocess(self, video, **options) -> dict:
        if isinstance(video, dict):
            given = dict(video)
            if "video" not in given:
                raise ValueError(f"a dict input needs a 'video' key, got keys {sorted(given)}")
            video = given.pop("video")
            unknown = sorted(set(given) - set(INPUT_OPTIONS))
            if unknown:
                raise ValueError(f"unknown input keys {unknown}; use video, {', '.join(INPUT_OPTIONS)}")
            options = {**options, **{key: value for key, value in given.items() if value is not None}}
        conversation = self.processor.emer_conversation(
            video, utterances=options.get("utterances"), subtitle=options.get("subtitle"), question=options.get("question")
        )
        video_part = next(part for part in conversation[0]["content"] if part.get("type") == "video")
        video_part.update({key: options[key] for key in VIDEO_PART_OPTIONS if key in options})
        return {"conversations": [conversation], "requests": [{"video": video, **options}]}

    def get_iterator(self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params):
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)  # an iterable dataset split across workers would repeat inputs
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_concatenate,
                            worker_init_fn=exit_with_parent if num_workers else None)  # fmt: skip
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict, per_utterance: bool = False, face=None, segment_seconds=None,
                 **generate_kwargs) -> dict:  # fmt: skip
        if segment_seconds is not None:
            return {"results": [self._explain_segments(request, segment_seconds, per_utterance, face, **generate_kwargs)
                                for request in model_inputs["requests"]]}  # fmt: skip
        if per_utterance or face is not None:
            return {"results": [self._explain_sample(request, per_utterance, face, **generate_kwargs)
                                for request in model_inputs["requests"]]}  # fmt: skip
        inputs = self.processor.apply_chat_template(
            model_inputs["conversations"], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", return_metadata=True,
        )  # fmt: skip
        metadata = {key: inputs.pop(key) for key in ("face_found", "frame_timestamps", "utterance_spans", "notes")}
        inputs = {key: value.to(self.device) if isinstance(value, torch.Tensor) else value for key, value in inputs.items()}
        generate_kwargs.setdefault("do_sample", False)
        output = self.model.generate(**inputs, **generate_kwargs)
        generated = output[:, inputs["input_ids"].shape[1] :].cpu()  # prompts are left-padded: all end here
        audio = inputs["audio_clip_mask"].any(dim=1).tolist()
        # One entry per sample under one key: the pipeline's batch iterator hands postprocess one entry each.
        results = [
            {"generated": generated[i], "audio": audio[i], **{key: values[i] for key, values in metadata.items()}}
            for i in range(generated.shape[0])
        ]
        return {"results": results}

    def _explain_sample(self, request: dict, per_utterance: bool, face, max_new_tokens: int = 256, *, sample=None,
                        offset: float = 0.0, **generate_kwargs) -> dict:  # fmt: skip
        """One input (or its given prepared ``sample``) through the prepared-sample path: the face chosen by
        ``face``, and with ``per_utterance`` the timeline, answered in one batch with the whole video's question;
        ``offset`` (s) puts a segment's times on the video's clock."""
        if sample is None:
            sample = self.processor.prepare_sample(
                request["video"], utterances=request.get("utterances"), subtitle=request.get("subtitle"),
                landmarks=request.get("landmarks"), clue_masks=request.get("clue_masks"), face=face,
            )  # fmt: skip
        if per_utterance:
            text, timeline = predict_timeline(self.model, self.processor, sample, question=request.get("question"),
                                              max_new_tokens=max_new_tokens, offset=offset, **generate_kwargs)  # fmt: skip
        else:
            inputs = shared_inputs(self.processor, sample, [request.get("question")], self.device)
            generated = generate_shared(self.model, inputs, max_new_tokens, **generate_kwargs)
            text, timeline = self.processor.batch_decode(generated, skip_special_tokens=True)[0].strip(), None
        result = {
            "text": text, "audio": sample.waveform is not None,  # the video's sound joins it (collate's default)
            "face_found": torch.as_tensor(sample.face_found),
            "frame_timestamps": torch.as_tensor(sample.video.timestamps) + offset,
            # A segment's spans on the video's clock, to the millisecond as microemo predict writes them.
            "utterance_spans": [(round(s.start + offset, 3), round(s.end + offset, 3), s.text) if offset else
                                (s.start, s.end, s.text) for s in sample.utterances],
            "notes": sample.notes,
        }  # fmt: skip
        if timeline is not None:
            result["timeline"] = timeline
        return result

    def _explain_segments(self, request: dict, segment_seconds: float, per_utterance: bool, face,
                          **generate_kwargs) -> dict:  # fmt: skip
        """A video file segment by segment (:meth:`MicroEmoProcessor.prepare_segments`): one segment in memory at
        a time; a video no longer than ``segment_seconds`` is explained whole, with no ``segments``."""
        segments = self.processor.prepare_segments(
            request["video"], segment_seconds, utterances=request.get("utterances"), face=face,
            subtitle=request.get("subtitle"), landmarks=request.get("landmarks"), clue_masks=request.get("clue_masks"),
        )  # fmt: skip
        parts, audio = [], False
        whole = {"face_found": [], "frame_timestamps": [], "utterance_spans": [], "notes": [], "timeline": []}
        for segment in segments:  # prepared one at a time: one segment's frames and sound in memory
            result = self._explain_sample(request, per_utterance, face, sample=segment.sample, offset=segment.start,
                                          **generate_kwargs)  # fmt: skip
            if segment.cut == "whole video":  # not longer than segment_seconds
                return result
            audio = audio or result["audio"]
            for key, values in whole.items():
                values.extend([result[key]] if key in ("face_found", "frame_timestamps") else result.get(key, []))
            parts.append({"start": segment.start, "end": segment.end, "cut": segment.cut, "explanation": result["text"],
                          "labels": self.processor.post_process_emotions(result["text"]),
                          "utterances": [{"start": s, "end": e, "text": t} for s, e, t in result["utterance_spans"]],
                          **({"timeline": result["timeline"]} if per_utterance else {})})  # fmt: skip
        text = " ".join(f"[{part['start']:.1f}-{part['end']:.1f} s] {part['explanation']}" for part in parts)
        combined = {**whole, "text": text, "audio": audio, "segments": parts,
                    "face_found": torch.cat(whole["face_found"]), "frame_timestamps": torch.cat(whole["frame_timestamps"])}  # fmt: skip
        if not per_utterance:
            del combined["timeline"]
        return combined

    def postprocess(self, model_outputs: dict) -> dict:
        result = model_outputs["results"]
        if isinstance(result, list):  # batch_size 1: the iterator did not split the batch
            (result,) = result
        if "text" in result:  # the prepared-sample path decoded its own answers
            text = result["text"]
        else:
            text = self.processor.decode(result["generated"], skip_special_tokens=True).strip()
        extra = {key: result[key] for key in ("timeline", "segments") if key in result}
        return {
            "explanation": text,
            "labels": self.processor.post_process_emotions(text),
            "utterances": [{"start": s, "end": e, "text": t} for s, e, t in result["utterance_spans"]],
            "face_found": int(torch.as_tensor(result["face_found"]).sum()),
            "frames": int(torch.isfinite(torch.as_tensor(result["frame_timestamps"])).sum()),
            "audio": bool(result["audio"]),
            "notes": list(result["notes"]),
            **extra,
        }

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Save the model (naming this pipeline in its config), the processor and this file, so that
        ``pipeline(TASK, model=save_directory, trust_remote_code=True)`` gives this pipeline back."""
        custom = dict(getattr(self.model.config, "custom_pipelines", None) or {})
        custom[TASK] = dict(PIPELINE_INFO)
        self.model.config.custom_pipelines = custom
        super().save_pretrained(save_directory, **kwargs)
        # transformers' Pipeline saves a tokenizer, feature extractor or image processor, not a processor.
        self.processor.save_pretrained(save_directory)
        target = Path(save_directory) / Path(__file__).name
        if not target.exists() or not target.samefile(__file__):
            shutil.copyfile(__file__, target)


__all__ = ["PIPELINE_INFO", "TASK", "MicroEmoEmotionPipeline", "exit_with_parent"]
