"""The data collators: rows of a dataset -> a MicroEmo training batch.

:class:`MicroEmoChatCollator` takes TRL's standard conversational rows, ``{"messages": [...]}`` with a video part,
and lets the processor's chat template do everything (the one-line route for ``SFTTrainer``).

:class:`MicroEmoDataCollator` takes prepared rows (see :mod:`microemo.training.data`). The heavy work (decoding, face mesh, utterances, audio loading) was done once when the dataset was prepared;
per batch the collator rebuilds each :class:`PreparedSample`, writes the EMER conversation with the answer as
the assistant turn, and lets the processor do the rest (:meth:`MicroEmoProcessor.collate`: frame
normalisation, timestamp text, audio features, placeholder expansion, padding, answer-only ``labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import BatchFeature

from microemo.processing.processing_microemo import MicroEmoProcessor

from .data import decode_sample


@dataclass
class MicroEmoChatCollator:
    """Batches TRL's conversational rows, ``{"messages": [user turn with a video part, assistant answer]}``, for
    ``SFTTrainer(data_collator=MicroEmoChatCollator(processor))``.

    TRL 1.16 treats a dataset without an ``image`` / ``images`` column as text: it tokenizes the messages ahead of
    time and keeps only ``input_ids``, so the video never reaches the model. Give this collator with
    ``SFTConfig(remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})``: the rows then arrive
    as they are, and :meth:`MicroEmoProcessor.apply_chat_template` decodes the video (and its sound), renders the
    prompt, expands the placeholders and sets ``labels`` on the answer only.

    Args:
        processor: the model's processor.
        padding_side: ``"right"`` for training (the default), ``"left"`` for generation.
    """

    processor: MicroEmoProcessor
    padding_side: str = "right"

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature:
        if not rows:
            raise ValueError("MicroEmoChatCollator got an empty batch")
        missing = [index for index, row in enumerate(rows) if not row.get("messages")]
        if missing:
            raise ValueError(
                f"MicroEmoChatCollator: rows {missing} have no 'messages' (row keys: {sorted(rows[missing[0]])}); "
                "keep the column with SFTConfig(remove_unused_columns=False, "
                "dataset_kwargs={'skip_prepare_dataset': True})"
            )
        conversations = [[_without_empty_fields(message) for message in row["messages"]] for row in rows]
        return self.processor.apply_chat_template(
            conversations, tokenize=True, return_dict=True, return_tensors="pt", padding_side=self.padding_side
        )


def _without_empty_fields(message: dict[str, Any]) -> dict[str, Any]:
    """A message as written, without the None fields Arrow adds: a `datasets` column of messages stores every
    content part with the union of all parts' keys (a text part gets ``path: None``, a video part ``text: None``)."""
    content = message.get("content")
    if isinstance(content, list):
        content = [{key: value for key, value in part.items() if value is not None} for part in content]
    return {**{key: value for key, value in message.items() if value is not None}, "content": content}


@dataclass
class MicroEmoDataCollator:
    """Batches prepared rows for ``SFTTrainer`` (``data_collator=``).

    Args:
        processor: the model's processor (its settings must match those the data was prepared with).
        padding_side: ``"right"`` for training (the default), ``"left"`` for generation.
        use_audio_in_video: the video's sound becomes audio tokens (the paper's setting).
        with_answers: put each row's ``answer`` in an assistant turn and return ``labels`` (training and
            evaluation loss); ``False`` gives prompts ending with the generation prompt, for ``generate``.
    """

    processor: MicroEmoProcessor
    padding_side: str = "right"
    use_audio_in_video: bool = True
    with_answers: bool = True

    def conversation(self, row: dict[str, Any]) -> list[dict]:
        """The EMER conversation of one row: subtitle and question in the user turn, the answer after it."""
        subtitle = row.get("subtitle")
        if subtitle is None:
            subtitle = row.get("prepared_subtitle") or None  # the utterances' text, when the data had none
        return self.processor.emer_conversation(
            subtitle=subtitle,
            question=row.get("question"),
            answer=row["answer"] if self.with_answers else None,
        )

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature:
        if not rows:
            raise ValueError("MicroEmoDataCollator got an empty batch")
        missing = [key for key in ("frames", "clue_masks", "timestamps") if key not in rows[0]]
        if missing:
            raise ValueError(
                f"MicroEmoDataCollator: rows lack the prepared columns {missing} (got {sorted(rows[0])}); prepare the "
                "data with `microemo prepare-data` and train with remove_unused_columns=False"
            )
        samples = [decode_sample(row) for row in rows]
        texts, answer_spans = self.processor.render_conversations(
            [self.conversation(row) for row in rows], add_generation_prompt=not self.with_answers
        )
        return self.processor.collate(
            samples,
            texts,
            answer_spans,
            padding_side=self.padding_side,
            use_audio_in_video=self.use_audio_in_video,
            return_tensors="pt",
        )


__all__ = ["MicroEmoChatCollator", "MicroEmoDataCollator"]
