"""Helpers of MicroEmoProcessor: a prepared sample, its per-frame arrays, padded token rows, and the checks of the
call's keywords and of the processor's settings. This file ships to the Hub with the processor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .utterances import Span
from .vad import DEFAULT_DETECTOR, DETECTORS
from .video_io import DecodedVideo
from .video_processing_microemo import video_list

# Per-sample keyword arguments of `__call__`: one entry per video (a plain value for a single video).
PER_SAMPLE_KWARGS = ("utterances", "subtitles", "frame_timestamps", "landmarks", "clue_masks", "video_metadata")
# transformers' video keywords that act on sampling (see MicroEmoVideoProcessor).
VIDEO_KWARGS = ("num_frames", "fps", "do_sample_frames", "input_data_format")
# transformers' video keywords that act on the pixel values; resizing is not among them, since the clue masks'
# patch grid is the video processor's size (set it there: MicroEmoVideoProcessor(size=...)).
PIXEL_KWARGS = ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std", "do_convert_rgb")
# Other keyword arguments `__call__` takes, transformers' standard ones included.
CALL_KWARGS = (
    *VIDEO_KWARGS, *PIXEL_KWARGS, "sampling_rate", "use_audio_in_video", "return_metadata", "padding", "padding_side",
    "max_length", "pad_to_multiple_of", "truncation", "add_special_tokens", "return_tensors",
    "return_attention_mask", "return_mm_token_type_ids", "verbose",
)  # fmt: skip


TIMESTAMP_TEMPLATE = "This frame is sampled at {t} second."


@dataclass
class PreparedSample:
    """One sample after the stages ran (video, face clues, audio, utterances); what collation turns into tensors.

    ``face_found``, ``utterances`` and ``audio_clip_starts`` are kept so that callers (and
    :mod:`visualize`) can see what was found and what was missing. ``audio_is_given`` says the waveform
    came from the caller rather than from the video's own sound.
    """

    video: DecodedVideo
    landmarks: np.ndarray | None
    face_found: np.ndarray
    clue_masks: np.ndarray
    utterances: list[Span]
    utterance_frame_mask: np.ndarray
    waveform: np.ndarray | None
    audio_clip_starts: np.ndarray | None
    subtitle: str
    notes: list[str] = field(default_factory=list)
    audio_is_given: bool = False
    face_choice: object | None = None  # a face_tracking.FaceChoice when faces were tracked (the processor's `face`)


def frame_arrays(
    samples: Sequence[PreparedSample], t_max: int, num_patches: int, qformer_tokenizer, qformer_max_length: int
) -> dict[str, np.ndarray]:
    """Clue masks, utterance-to-frame masks and the Q-Former's timestamp text, padded to ``t_max`` frames."""
    regions = samples[0].clue_masks.shape[1]
    if any(s.clue_masks.shape[1] != regions for s in samples):
        raise ValueError("every sample of a batch needs the same number of clue regions")
    batch, u_max = len(samples), max(len(s.utterances) for s in samples)
    clue = np.zeros((batch, t_max, regions, num_patches), dtype=bool)
    utt = np.zeros((batch, u_max, t_max), dtype=bool)
    stamp_texts: list[str] = []
    for b, sample in enumerate(samples):
        t = sample.video.frames.shape[0]
        clue[b, :t] = sample.clue_masks
        utt[b, : len(sample.utterances), :t] = sample.utterance_frame_mask
        # TimeChat writes t = round(frame_index / fps, 1); we write the frame's presentation time,
        # which is the same on constant-rate video and right on variable-rate video.
        stamps = [TIMESTAMP_TEMPLATE.format(t=f"{round(float(x), 1):.1f}") for x in sample.video.timestamps]
        # Padded frames get the last real frame's text (their mask keeps them out of the model).
        stamp_texts += stamps + [stamps[-1]] * (t_max - t)
    qformer = qformer_tokenizer(
        stamp_texts, padding="longest", truncation=True, max_length=qformer_max_length, return_tensors="np"
    )
    length = qformer["input_ids"].shape[-1]
    return {
        "qformer_input_ids": qformer["input_ids"].reshape(batch, t_max, length).astype(np.int64),
        "qformer_attention_mask": qformer["attention_mask"].reshape(batch, t_max, length).astype(np.int64),
        "clue_masks": clue,
        "utterance_frame_mask": utt,
    }


def frame_metadata(samples: Sequence[PreparedSample], t_max: int) -> dict[str, np.ndarray]:
    """``face_found`` [B, T] and ``frame_timestamps`` [B, T] (NaN on padded frames), for inspection."""
    face_found = np.zeros((len(samples), t_max), dtype=bool)
    stamps = np.full((len(samples), t_max), np.nan)
    for b, sample in enumerate(samples):
        face_found[b, : len(sample.face_found)] = sample.face_found
        stamps[b, : len(sample.video.timestamps)] = sample.video.timestamps
    return {"face_found": face_found, "frame_timestamps": stamps}


def pad_token_rows(
    rows: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    *,
    padding: bool | str = True,
    padding_side: str = "left",
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    return_tensors: str | None = "pt",
) -> dict[str, np.ndarray]:
    """``input_ids``, ``attention_mask`` and ``labels`` of (ids, labels) rows, padded as a tokenizer pads (left
    by default, for generation); MicroEmo never truncates, so a row longer than ``max_length`` is refused."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(ids) for ids, _ in rows)
    if padding in (False, "do_not_pad"):
        if len({len(ids) for ids, _ in rows}) > 1 and return_tensors is not None:
            raise ValueError("padding=False, but the prompts have different lengths: use padding=True")
    elif padding == "max_length":
        if max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        if width > max_length:
            raise ValueError(f"a prompt has {width} tokens, more than max_length={max_length}; MicroEmo does not truncate")
        width = max_length
    elif padding not in (True, "longest"):
        raise ValueError(f"padding must be True / 'longest', 'max_length' or False, got {padding!r}")
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    labels = np.full((len(rows), width), -100, dtype=np.int64)
    for b, (ids, row_labels) in enumerate(rows):
        # Left padding (the default): generation continues from the right end of every row.
        row = slice(width - len(ids), width) if padding_side == "left" else slice(0, len(ids))
        input_ids[b, row], attention_mask[b, row], labels[b, row] = ids, 1, row_labels
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def batch_inputs(images, text, videos, audio, kwargs: dict, per_sample_names: Sequence[str]) -> tuple[list, list | None, dict]:
    """The call's inputs per sample: the videos, the prompts (or None) and each per-sample keyword (popped from
    ``kwargs``) and ``audio`` as a list with one entry per video. A single video takes plain values."""
    if images is not None:
        if isinstance(images, str) and text is None and videos is not None:
            text, images = images, None  # processor("prompt", videos=...): transformers swaps these too
        else:
            raise TypeError(
                "MicroEmoProcessor reads videos, and the first positional argument of a transformers processor "
                "is `images`. Pass the video as `videos=`: processor(videos='clip.mp4') for the EMER prompt, or "
                "processor.apply_chat_template(conversation, tokenize=True, return_dict=True)."
            )
    if videos is None:
        raise ValueError("MicroEmoProcessor needs `videos` (paths, DecodedVideo or frame arrays), one per sample")
    videos, single = video_list(videos)
    batch = len(videos)
    if batch == 0:
        raise ValueError("`videos` is empty: give at least one video")
    if text is not None:
        text = [text] if isinstance(text, str) else list(text)
        if len(text) != batch or not all(isinstance(t, str) for t in text):
            raise ValueError(f"`text` must be one prompt string per video: got {len(text)} for {batch} video(s)")
        if kwargs.get("subtitles") is not None:
            raise ValueError("`subtitles` fills the default EMER prompt; with `text`, write the subtitle into the text")

    def per_sample(value, name: str) -> list:
        if value is None:
            return [None] * batch
        if single:
            return [value]
        if not isinstance(value, (list, tuple)) or len(value) != batch:
            raise ValueError(f"`{name}` must be a list with one entry per video ({batch})")
        return list(value)

    inputs = {name: per_sample(kwargs.pop(name, None), name) for name in per_sample_names}
    inputs["audio"] = per_sample(audio, "audio")
    return videos, text, inputs


_REPLACED_KWARGS = {
    "messages": "`messages=` is replaced by processor.apply_chat_template(conversation, tokenize=True, return_dict=True), "
    "with the video in the conversation as {'type': 'video', 'path': ...}",
    "answers": "`answers=` is replaced by an assistant turn: processor.apply_chat_template("
    "processor.emer_conversation(video, answer=...), tokenize=True, return_dict=True) gives answer-only labels",
}


def check_call_kwargs(kwargs: dict, allowed: Sequence[str]) -> dict:
    """Flatten transformers' nested ``*_kwargs`` dicts and refuse any keyword not in ``allowed``.

    As in transformers, a keyword given both directly and in a modality dict (``videos_kwargs``, ...) is an error;
    ``common_kwargs`` may repeat a direct keyword, which wins.
    """
    flat = {key: value for key, value in kwargs.items() if not (key.endswith("_kwargs") and isinstance(value, dict))}
    nested: dict = {}
    for key, value in kwargs.items():
        if key in flat:
            continue
        for name, inner in value.items():
            if name in flat and key != "common_kwargs":
                raise ValueError(f"`{name}` is given twice, directly and in {key}; give it once")
            if name in nested and nested[name] is not inner and nested[name] != inner:
                raise ValueError(f"`{name}` is given twice with different values (in {key} and another *_kwargs)")
            nested[name] = inner
    flat = {**nested, **flat}
    for key in flat:
        if key in _REPLACED_KWARGS:
            raise TypeError(_REPLACED_KWARGS[key])
    unknown = sorted(set(flat) - set(allowed))
    if unknown:
        raise TypeError(
            f"MicroEmoProcessor got unexpected arguments {unknown}; it takes images, text, videos, audio and "
            f"{', '.join(allowed)}"
        )
    return flat


def check_settings(
    tokenizer, qformer_tokenizer, extra: dict, audio_feature_layout: str, utterance_source: str, asr_model, audio_stream
) -> str:
    """Refuse what ``MicroEmoProcessor.__init__`` cannot use; returns the utterance source (an old ``"vad"`` read as
    the default detector)."""
    if tokenizer is None or qformer_tokenizer is None:
        raise ValueError("MicroEmoProcessor needs a `tokenizer` and a `qformer_tokenizer`")
    for name in extra:
        if name in ("num_frames", "fps", "max_frames", "image_processor"):
            raise TypeError(
                f"MicroEmoProcessor takes no `{name}`: the video processor owns frame sampling and pixel values "
                f"(MicroEmoVideoProcessor({'size' if name == 'image_processor' else name}=...), or "
                "MicroEmoProcessor.from_model_config(config, tokenizer, qformer_tokenizer, num_frames=...))"
            )
        raise TypeError(f"MicroEmoProcessor got an unexpected argument `{name}`")
    for name in ("video_token", "audio_token"):
        token = getattr(tokenizer, name, None) or f"<{name.split('_')[0]}>"
        if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
            raise ValueError(f"the tokenizer has no {token} token: add it as a special token first")
    if audio_feature_layout not in ("imagebind", "native"):
        raise ValueError(f"audio_feature_layout must be 'imagebind' or 'native', got {audio_feature_layout!r}")
    if utterance_source == "vad":  # saved before silero-vad became the default: the default detector
        utterance_source = DEFAULT_DETECTOR
    if utterance_source not in (*DETECTORS, "asr", "none"):
        raise ValueError(f"utterance_source must be 'silero', 'energy', 'asr' or 'none', got {utterance_source!r}")
    if utterance_source == "asr" and not asr_model:
        raise ValueError("utterance_source='asr' needs asr_model (a transformers ASR model id or folder)")
    if audio_stream is not None and (isinstance(audio_stream, bool) or not isinstance(audio_stream, int) or audio_stream < 0):
        raise ValueError(f"audio_stream must be None or a stream index >= 0, got {audio_stream!r}")
    return utterance_source


def progress(items, description: str):
    """A progress bar over the samples of a large batch (4 or more), obeying transformers' progress switch."""
    from transformers.utils import logging as hf_logging

    return hf_logging.tqdm(items, desc=description, unit="video", disable=len(items) < 4, leave=False)


__all__ = [
    "CALL_KWARGS", "PER_SAMPLE_KWARGS", "PIXEL_KWARGS", "VIDEO_KWARGS", "PreparedSample", "batch_inputs", "check_call_kwargs", "check_settings", "frame_arrays", "frame_metadata", "pad_token_rows",
]  # fmt: skip
