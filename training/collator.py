"""The data collator: prepared rows (see :mod:`microemo.training.data`) -> a MicroEmo training batch.

The heavy work (decoding, face mesh, utterances, audio loading) was done once when the dataset was prepared;
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


__all__ = ["MicroEmoDataCollator"]
