"""Per-utterance emotions: one answer per utterance of a video, all generated as one batch that shares the
video's encoded frames and sound.

The question of each row names its utterance's span and words (the paper's utterance windows are already in
the video tokens; the question says which one to talk about). The video and audio tokens are computed once
per video with the model's ``get_video_features`` / ``get_audio_features`` and written into every row's
embedded prompt at its placeholders, so U utterances cost one pass of the frozen encoders and Q-Formers, not
U; only the language model runs per row. Greedy answers are identical to running every row with its own copy
of the inputs (``tests/time/test_timeline.py`` checks it), and ``benchmarks/bench_timeline.py`` measures the
saving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch

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


def timeline_questions(sample, question: str | None = None) -> list[str]:
    """The whole-video question (``question`` or the EMER one) followed by one question per utterance."""
    from microemo.processing.processing_microemo import DEFAULT_QUESTION

    count = len(sample.utterances)
    return [question or DEFAULT_QUESTION] + [
        utterance_question(span, number, count) for number, span in enumerate(sample.utterances, start=1)
    ]


def shared_inputs(processor, sample, questions: Sequence[str], device: torch.device | str = "cpu") -> dict[str, Any]:
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
def generate_shared(model, inputs: dict[str, Any], max_new_tokens: int = 256) -> torch.Tensor:
    """Greedy answers of all rows of ``inputs`` (from :func:`shared_inputs`); returns the new tokens [N, L]."""
    embeds = embed_shared(model, inputs)
    return model.generate(
        inputs_embeds=embeds, attention_mask=inputs["attention_mask"], max_new_tokens=max_new_tokens, do_sample=False
    )


def predict_timeline(
    model, processor, sample, *, question: str | None = None, max_new_tokens: int = 256, offset: float = 0.0,
    whole: bool = True,
) -> tuple[str | None, list[dict]]:
    """The whole video's answer and the timeline ``[{start, end, text, explanation, labels}]`` of ``sample``
    (a prepared sample), in one shared-encoding batch. ``offset`` (s) is added to the spans (a segment's start);
    ``whole=False`` asks the utterances' questions only (the answer is then None)."""
    questions = timeline_questions(sample, question)[(0 if whole else 1) :]
    if not questions:
        return None, []
    inputs = shared_inputs(processor, sample, questions, model.device)
    generated = generate_shared(model, inputs, max_new_tokens)
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


def prepare_video(processor, path, *, utterances=None, face: str | int | None = "speaker", num_frames: int | None = None):
    """``processor.prepare_sample(path)`` looking at the face chosen by ``face`` (the active speaker by default;
    None: the processor's own setting), with a note saying where the utterances and their words came from."""
    sample = processor.prepare_sample(str(path), utterances=utterances, num_frames=num_frames, face=face)
    sample.notes.append(utterance_origin(processor, utterances))
    return sample


def utterance_origin(processor, utterances) -> str:
    """The note that says where a sample's utterance spans and their words came from."""
    if utterances is not None:
        return f"utterances and text: {utterances if isinstance(utterances, (str, os.PathLike)) else 'given'}"
    if processor.utterance_source == "asr":
        return f"utterances and text: ASR {processor.asr_model}"
    if processor.utterance_source == "none":
        return "utterances: none (utterance_source='none')"
    return f"utterances: voice activity ({processor.utterance_source}), no text (give subtitles or --asr-model)"


def face_fields(sample) -> dict:
    """The row's description of who was looked at."""
    choice = getattr(sample, "face_choice", None)
    fields = {"face_frames": int(sample.face_found.sum()), "frames": int(sample.face_found.size)}
    if choice is not None:
        fields["face"] = {"faces": choice.num_faces, "chosen": choice.chosen, "method": choice.method,
                          "scores": None if choice.scores is None else [round(s, 3) for s in choice.scores]}  # fmt: skip
    return fields


def explain(predictor, sample, *, per_utterance: bool, offset: float = 0.0) -> dict:
    """One prepared sample's row fields: its explanation and labels, and with ``per_utterance`` its timeline."""
    start = time.perf_counter()
    if per_utterance:
        english, timeline = predict_timeline(predictor.model, predictor.processor, sample, question=predictor.question,
                                             max_new_tokens=predictor.max_new_tokens, offset=offset)  # fmt: skip
    else:
        english, timeline = predict_whole(predictor, sample), None
    labels, source, errors = predictor._labels([english])
    fields = {"english": english, "openset": labels[0], "labels_from": source,
              "utterances": [{"start": round(s.start + offset, 3), "end": round(s.end + offset, 3), "text": s.text}
                             for s in sample.utterances],
              **face_fields(sample), "audio": sample.waveform is not None,
              "notes": list(sample.notes) + ([errors[0]] if errors[0] else []),
              "seconds": {"generate": round(time.perf_counter() - start, 3)}}  # fmt: skip
    if timeline is not None:
        fields["timeline"] = timeline
    return fields


def predict_whole(predictor, sample) -> str:
    """The whole-video answer alone (no timeline), through the same shared-encoding path."""
    inputs = shared_inputs(predictor.processor, sample, [predictor.question or timeline_questions(sample)[0]],
                           predictor.model.device)  # fmt: skip
    generated = generate_shared(predictor.model, inputs, predictor.max_new_tokens)
    return predictor.processor.batch_decode(generated, skip_special_tokens=True)[0].strip()


def explain_segments(predictor, path, *, segment_seconds: float, utterances=None, face="speaker",
                     per_utterance: bool = False) -> dict:  # fmt: skip
    """Row fields of a long video predicted segment by segment (one segment in memory at a time): ``segments`` in
    order, each with its span, explanation, labels (and timeline); the row's utterances and timeline on the
    video's clock; its ``english`` the segments' explanations in order, each after its time span."""
    from microemo.processing.segments import iter_segments
    from microemo.processing.utterances import load_spans

    spans = load_spans(utterances) if utterances is not None else None
    segments, timeline, all_utterances, notes = [], [], [], []
    face_frames = frames = 0
    for segment in iter_segments(predictor.processor, path, segment_seconds, utterances=spans, face=face):
        fields = explain(predictor, segment.sample, per_utterance=per_utterance, offset=segment.start)
        segments.append({"start": segment.start, "end": segment.end, "cut": segment.cut, **fields})
        timeline += fields.get("timeline", [])
        all_utterances += fields["utterances"]
        notes += fields["notes"]
        face_frames, frames = face_frames + fields["face_frames"], frames + fields["frames"]
    english = " ".join(f"[{s['start']:.1f}-{s['end']:.1f} s] {s['english']}" for s in segments)
    row = {"english": english, "openset": sorted({label for s in segments for label in s["openset"]}),
           "labels_from": segments[0]["labels_from"] if segments else "", "utterances": all_utterances,
           "face_frames": face_frames, "frames": frames, "audio": any(s["audio"] for s in segments),
           "notes": notes, "segments": segments}  # fmt: skip
    if per_utterance:
        row["timeline"] = timeline
    return row
