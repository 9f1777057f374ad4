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

from microemo.modeling_microemo import pipeline_microemo as shared
from microemo.modeling_microemo.pipeline_microemo import (  # noqa: F401 (this module's API: tests, benchmarks, app)
    UTTERANCE_QUESTION,
    embed_shared,
    generate_shared,
    predict_timeline,
    shared_inputs,
    utterance_question,
)


def timeline_questions(sample, question: str | None = None) -> list[str]:
    """The whole-video question (``question`` or the EMER one) followed by one question per utterance."""
    from microemo.processing.processing_microemo import DEFAULT_QUESTION

    return shared.timeline_questions(sample, question or DEFAULT_QUESTION)


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
    segments, timeline, all_utterances, notes = [], [], [], []
    face_frames = frames = 0
    for segment in predictor.processor.prepare_segments(path, segment_seconds, utterances=utterances, face=face):
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
