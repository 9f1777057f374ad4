"""Placeholder expansion and labels: a rendered prompt -> token ids with ``<video>`` / ``<audio>`` expanded to the
model's token counts, and labels on the answers only. Used by ``MicroEmoProcessor``; ships to the Hub with it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PromptTokenizer:
    """The processor's LLM tokenizer with its placeholder counts (``MicroEmoProcessor.prompt_tokenizer()``).

    ``<video>`` expands to ``num_video_query_tokens * (1 + U)`` tokens (``num_video_query_tokens`` without utterance
    windows) followed directly by ``num_audio_query_tokens`` audio tokens when the sample has sound, unless the
    prompt places ``<audio>`` itself: the paper's order (section 3.4) is video, audio, text.
    """

    def __init__(
        self, tokenizer, num_video_query_tokens: int, num_audio_query_tokens: int, use_utterance_windows: bool,
        max_prompt_length: int | None = None,
    ) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.num_video_query_tokens = num_video_query_tokens
        self.num_audio_query_tokens = num_audio_query_tokens
        self.use_utterance_windows = use_utterance_windows
        self.max_prompt_length = max_prompt_length
        self.video_token = getattr(tokenizer, "video_token", None) or "<video>"
        self.audio_token = getattr(tokenizer, "audio_token", None) or "<audio>"

    def token_types(self, input_ids: np.ndarray) -> np.ndarray:
        """transformers' ``mm_token_type_ids`` of padded ids: 0 text, 2 video, 3 audio."""
        video_id, audio_id = (self.tokenizer.convert_tokens_to_ids(t) for t in (self.video_token, self.audio_token))
        return np.where(input_ids == video_id, 2, np.where(input_ids == audio_id, 3, 0))

    def num_video_tokens(self, num_utterances: int) -> int:
        """Placeholder count of the video: one window, plus one per utterance with utterance windows."""
        return self.num_video_query_tokens * (1 + (num_utterances if self.use_utterance_windows else 0))

    def check_placeholders(self, prompt: str, source: str) -> bool:
        """Refuse a prompt without exactly one ``<video>`` or with several ``<audio>``; say whether it places
        ``<audio>`` itself."""
        video, audio = self.video_token, self.audio_token
        found_video, found_audio = prompt.count(video), prompt.count(audio)
        if found_video != 1:
            raise ValueError(
                f"{source}: `text` is the rendered prompt and must hold exactly one {video} placeholder (one video "
                f"per sample), found {found_video}. Render it with processor.apply_chat_template(conversation) "
                f"(processor.emer_conversation(video, question=...) builds the EMER one), or write {video} where "
                "the video goes."
            )
        if found_audio > 1:
            raise ValueError(f"{source}: the prompt holds {found_audio} {audio} placeholders; put at most one")
        return found_audio == 1

    def expand(self, text: str, num_utterances: int, has_audio: bool, audio_placed: bool) -> str:
        # The audio tokens follow the video tokens unless the prompt places <audio> itself.
        video_tokens = self.video_token * self.num_video_tokens(num_utterances)
        audio_tokens = self.audio_token * (self.num_audio_query_tokens if has_audio else 0)
        if audio_placed:
            return text.replace(self.audio_token, audio_tokens).replace(self.video_token, video_tokens)
        return text.replace(self.video_token, video_tokens + audio_tokens)

    def expand_placeholders(self, prompt: str, num_utterances: int, has_audio: bool, source: str = "sample") -> str:
        """The prompt with its placeholders checked and expanded (see the class docstring)."""
        return self.expand(prompt, num_utterances, has_audio, self.check_placeholders(prompt, source))

    def tokenize(
        self, prompt: str, answer_spans: Sequence[tuple[int, int]], num_utterances: int, has_audio: bool,
        add_special_tokens: bool, index: int,
    ) -> tuple[list[int], list[int]]:  # fmt: skip
        """Token ids and labels of one rendered prompt, its placeholders expanded once, its counts checked.

        The text between answers and each answer are tokenised separately, so that the ids before an answer are
        exactly the ids ``generate`` starts from, and the labels are exactly the answer's tokens.
        """
        source = f"sample {index}"
        pieces, position = [], 0
        for start, end in sorted(answer_spans):
            pieces += [(prompt[position:start], False), (prompt[start:end], True)]
            position = end
        pieces.append((prompt[position:], False))
        if any(answer and (self.video_token in piece or self.audio_token in piece) for piece, answer in pieces):
            raise ValueError(f"{source}: an assistant answer holds a {self.video_token} / {self.audio_token} placeholder")
        audio_placed = self.check_placeholders("".join(piece for piece, answer in pieces if not answer), source)
        ids, labels = [], []
        for number, (piece, is_answer) in enumerate(pieces):
            if not piece:
                continue
            if not is_answer:
                piece = self.expand(piece, num_utterances, has_audio, audio_placed)
            piece_ids = self.tokenizer(piece, add_special_tokens=add_special_tokens and number == 0)["input_ids"]
            ids += piece_ids
            labels += piece_ids if is_answer else [-100] * len(piece_ids)
        self.check_counts(ids, num_utterances, has_audio, index)
        return ids, labels

    def check_counts(self, ids: list[int], num_utterances: int, has_audio: bool, index: int) -> None:
        video_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        audio_id = self.tokenizer.convert_tokens_to_ids(self.audio_token)
        expected = (self.num_video_tokens(num_utterances), self.num_audio_query_tokens if has_audio else 0)
        found = (ids.count(video_id), ids.count(audio_id))
        if found != expected:
            raise ValueError(
                f"sample {index}: the tokenized prompt holds {found[0]} video / {found[1]} audio placeholder "
                f"tokens, expected {expected[0]} / {expected[1]} (does the tokenizer split the placeholders?)"
            )
        if self.max_prompt_length is not None and len(ids) > self.max_prompt_length:
            raise ValueError(
                f"sample {index}: the prompt has {len(ids)} tokens ({expected[0]} of them video tokens for "
                f"{num_utterances} utterance(s)), more than the language model's context of {self.max_prompt_length}; "
                "shorten the text or lower max_utterances"
            )


__all__ = ["PromptTokenizer"]
