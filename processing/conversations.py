"""Chat conversations for MicroEmo: the EMER conversation, what the chat template sees, and the media they carry.

A conversation is a list of messages ``{"role": ..., "content": str | [parts]}``; a message or a part may also be
an object with those attributes (a dataclass, a pydantic model, an OpenAI-style message). One ``video`` part per
conversation carries the video (``path`` or ``video``) and MicroEmo's per-sample extras; an optional ``audio``
part brings separate sound. This file ships to the Hub with the processor.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from .input_checks import check_video_frames, check_video_source
from .runtime import get_logger
from .text_safety import (
    check_role,
    describe_removed,
    neutralize_message_text,
    neutralize_text,
    reserved_pattern,
)
from .utterance_spans import subtitle_of

logger = get_logger("processing.conversations")

DEFAULT_QUESTION = "From what clues can we infer the person's emotional state? Describe the clues, then the emotions."

# LLaMA-2-chat's prompt format, the format Video-LLaMA-2's branches were fine-tuned in (Video-LLaMA
# `video_llama/conversation/conversation_video.py`, SeparatorStyle.LLAMA_2, used by `preprocess_for_llama_v2`;
# docs/model.md "Prompt format"): `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...`.
# The tokenizer adds the first <s>; the system block appears only when a system message is given. The answer
# follows `[/INST]` without a space in the text: prompt and answer are tokenised separately and LLaMA's
# SentencePiece writes the space as the answer's first "▁" (a space in the prompt would become a lone "▁"
# token that generation never sees; tests/fidelity/test_llama_tokenization.py). One user turn holds the video
# (its sound joins it), the subtitle and the question, as in AffectGPT's EMER prompt; the answer and its end
# token are a generation block, so that they become the labels. Wording is our own.
CHAT_TEMPLATE = (
    "{%- set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else none -%}"
    "{%- if system is not none and system is not string -%}{%- set system = system[0]['text'] -%}{%- endif -%}"
    "{%- set ns = namespace(turn=0) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if ns.turn > 0 -%}{{ bos_token }}{%- endif -%}"
    "{{ '[INST] ' }}"
    "{%- if ns.turn == 0 and system is not none -%}{{ '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{ 'Here is the video: <Video><video></Video>. ' }}"
    "{%- elif part['type'] == 'audio' -%}{{ 'Here is the audio: <Audio><audio></Audio>. ' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ ' [/INST]' }}"
    "{%- set ns.turn = ns.turn + 1 -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- generation -%}"
    "{{ message['content'] if message['content'] is string else message['content'][0]['text'] }}{{ ' ' + eos_token }}"
    "{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# Keys of a video content part that carry MicroEmo's per-sample inputs (see `MicroEmoProcessor.__call__`).
VIDEO_PART_EXTRAS = ("utterances", "frame_timestamps", "landmarks", "clue_masks")


def make_emer_conversation(
    video=None,
    *,
    subtitle: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    utterances: str | os.PathLike | Sequence | None = None,
    reserved_tokens: Sequence[str] = (),
) -> list[dict]:
    """The EMER prompt as a conversation: the video, the subtitle and the question in one user turn; with
    ``answer``, an assistant turn (see ``MicroEmoProcessor.emer_conversation``).

    The subtitle and the question are neutralised before they are put around the ``<Subtitle>`` wrapper (a
    question holding ``</Subtitle>`` could otherwise not be told from the subtitle's end); what was removed rides
    on the text part (``removed_markup``) so that the template view notes it with everything else."""
    part: dict = {"type": "video"}
    if isinstance(video, (str, os.PathLike)):
        part["path"] = str(video)
    elif video is not None:
        part["video"] = video
    if utterances is not None:
        part["utterances"] = utterances
        if subtitle is None:
            subtitle = subtitle_of(utterances)
    pattern = reserved_pattern(reserved_tokens)
    removed: list[str] = []
    if subtitle:
        subtitle, found = neutralize_text(subtitle, pattern=pattern)
        removed += found
    if question:
        question, found = neutralize_text(question, pattern=pattern)
        removed += found
    text = f"The subtitle of this video is <Subtitle>{subtitle}</Subtitle>. " if subtitle else ""
    text_part = {"type": "text", "text": text + (question or DEFAULT_QUESTION)}
    if removed:
        text_part["removed_markup"] = removed
    conversation = [{"role": "user", "content": [part, text_part]}]
    if answer is not None:
        conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return conversation


def as_mapping(item, source: str) -> Mapping:
    """A message or content part as a mapping, without copying what it holds (a video stays the same object).

    Dicts pass through; dataclasses, pydantic models and plain objects with attributes are read shallowly.
    """
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if hasattr(item, "model_dump"):  # pydantic: its fields, not a deep dump
        return {name: getattr(item, name) for name in type(item).model_fields}
    if hasattr(item, "__dict__") and not isinstance(item, (str, bytes)):
        return {key: value for key, value in vars(item).items() if not key.startswith("_")}
    raise ValueError(f"{source}: expected a dict (or an object with attributes), got {item!r:.80}")


def normalize_conversation(conversation: Sequence, source: str) -> list[dict]:
    """Messages and parts as dicts (objects read shallowly), each message checked for ``role`` and ``content``."""
    messages = []
    for number, message in enumerate(conversation):
        message = dict(as_mapping(message, f"{source}, message {number}"))
        if "role" not in message or "content" not in message:
            raise ValueError(f"{source}, message {number}: expected 'role' and 'content', got {message!r:.80}")
        content = message["content"]
        if not isinstance(content, str):
            if content is None or isinstance(content, Mapping) or not isinstance(content, Sequence):
                raise ValueError(f"{source}, message {number}: content must be a string or a list of parts")
            message["content"] = [dict(as_mapping(part, f"{source}, message {number}")) for part in content]
        messages.append(message)
    return messages


class RenderedPrompt(str):
    """A rendered prompt that also carries the notes of its rendering (markup removed from data text), so that
    they reach the sample's ``notes`` through any caller that passes the prompt on to ``collate``."""

    notes: tuple[str, ...] = ()

    def __new__(cls, text: str, notes: Sequence[str] = ()) -> RenderedPrompt:
        prompt = super().__new__(cls, text)
        prompt.notes = tuple(notes)
        return prompt


def _plain(value) -> bool:
    """Whether a value is plain data a template can print (not frames, waveforms or a DecodedVideo)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _part_view(part: Mapping) -> dict:
    # OpenAI-style URL blocks read as transformers reads them: {"type": "image", "url": ...}.
    for kind in ("image", "video"):
        if part.get("type") == f"{kind}_url" and isinstance(part.get(f"{kind}_url"), Mapping):
            part = {**{k: v for k, v in part.items() if k != f"{kind}_url"}, "type": kind, "url": part[f"{kind}_url"].get("url")}
    return {key: value for key, value in part.items()
            if value is not None and key != "removed_markup" and _plain(value)}  # fmt: skip


def template_view(
    conversation: Sequence[dict], source: str, pattern=None, notes: list[str] | None = None
) -> list[dict]:
    """What the chat template sees: the messages with their plain fields (roles, texts, paths, tool calls, ...),
    without media arrays (a template prints no frames) and without fields that are None (undefined to Jinja).

    This is where every text from data meets the template (subtitles, transcripts, questions, answers, system
    text), so it is neutralised here, once (``text_safety.py``: ``pattern`` is what is removed); what was removed
    goes to ``notes``. A role the template does not know is refused.
    """
    pattern = pattern if pattern is not None else reserved_pattern()
    view, removed = [], []

    def clean(text, where: str) -> str:
        if not isinstance(text, str):
            raise ValueError(f"{where}: text must be a string, got {type(text).__name__} {text!r:.60}")
        text, found = neutralize_message_text(text, pattern=pattern)
        removed.extend(found)
        return text

    for number, message in enumerate(conversation):
        where = f"{source}, message {number}"
        role = check_role(message["role"], where)
        content = message["content"]
        if isinstance(content, str):
            content = clean(content, where)
        else:
            parts = []
            for part in content:
                if "type" not in part:
                    raise ValueError(f"{where}: a content part needs a 'type', got {part!r:.80}")
                kept = _part_view(part)
                removed.extend(part.get("removed_markup") or ())  # neutralised where the EMER text was composed
                if part["type"] == "text":
                    kept["text"] = clean(part.get("text"), f"{where}, text part")
                parts.append(kept)
            content = parts
        fields = {key: value for key, value in message.items() if key != "content" and value is not None and _plain(value)}
        view.append({**fields, "role": role, "content": content})
    if removed:
        note = describe_removed(source, removed)
        logger.warning("%s", note)
        if notes is not None:
            notes.append(note)
    return view


def media_from_conversations(conversations: Sequence[Sequence[dict]]) -> tuple[list, list | None, dict]:
    """The video, the optional separate audio and the video part's extras of each (normalised) conversation."""
    videos, audio = [], []
    extras: dict[str, list] = {key: [] for key in VIDEO_PART_EXTRAS}
    for index, conversation in enumerate(conversations):
        parts = [
            part for message in conversation if not isinstance(message["content"], str) for part in message["content"]
        ]
        video_parts = [part for part in parts if part["type"] == "video"]
        if len(video_parts) != 1:
            raise ValueError(f"conversation {index}: MicroEmo takes exactly one video part per conversation, found {len(video_parts)}")
        part = video_parts[0]
        sources = [part[key] for key in ("path", "video", "url") if part.get(key) is not None]
        if len(sources) != 1:
            raise ValueError(
                f"conversation {index}: {'no video given' if not sources else 'several videos given'}: the video part "
                "needs its video under one key, 'path' (a file) or 'video' (frames [T, H, W, 3] or a DecodedVideo); "
                f"found keys {sorted(part)}"
            )
        check_video_source(sources[0], f"conversation {index}")
        if not isinstance(sources[0], (str, os.PathLike)) and hasattr(sources[0], "shape"):
            check_video_frames(sources[0], f"conversation {index}")
        if isinstance(sources[0], str) and sources[0].startswith(("http://", "https://")):
            raise ValueError(f"conversation {index}: {sources[0]} is a URL; download the video and give its path")
        videos.append(sources[0])
        for key in VIDEO_PART_EXTRAS:
            extras[key].append(part.get(key))
        audio_sources = [part[key] for part in parts if part["type"] == "audio" for key in ("path", "audio") if key in part]
        if len(audio_sources) > 1:
            raise ValueError(f"conversation {index}: at most one audio part with a 'path' or 'audio', found {len(audio_sources)}")
        audio.append(audio_sources[0] if audio_sources else None)
    extras = {key: values for key, values in extras.items() if any(v is not None for v in values)}
    return videos, (audio if any(a is not None for a in audio) else None), extras


def render_with_template(
    conversations: Sequence[Sequence[dict]],
    template: str,
    *,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    need_labels: bool = True,
    reserved_tokens: Sequence[str] = (),
    **template_kwargs,
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Prompts rendered with ``template`` and, per prompt, the character spans of its assistant answers (the
    template's ``{% generation %}`` blocks). A conversation that ends with an assistant turn gets no generation
    prompt; with ``need_labels``, a template that marks no answer in it is refused (labels would be empty).

    Text of the messages is neutralised first (:func:`template_view`; ``reserved_tokens`` are the tokenizer's
    special tokens and placeholders); each prompt is a :class:`RenderedPrompt` carrying the notes of that."""
    from jinja2.exceptions import TemplateError
    from transformers.utils.chat_template_utils import render_jinja_template

    pattern = reserved_pattern(reserved_tokens)
    prompts, answer_spans = [], []
    for index, conversation in enumerate(conversations):
        notes: list[str] = []
        source = f"conversation {index}"
        view = template_view(normalize_conversation(conversation, source), source, pattern, notes)
        has_answers = any(message["role"] == "assistant" for message in view) and not continue_final_message
        ends_with_answer = bool(view) and view[-1]["role"] == "assistant" and not continue_final_message
        try:
            rendered, indices = render_jinja_template(
                conversations=[view],
                chat_template=template,
                return_assistant_tokens_mask=has_answers,
                continue_final_message=continue_final_message,
                add_generation_prompt=add_generation_prompt and not ends_with_answer,
                **template_kwargs,
            )
        except TemplateError as error:  # e.g. a system turn whose content has no text part
            raise ValueError(f"{source}: the chat template cannot render it ({error}); check its messages' content") from None
        spans = [tuple(span) for span in indices[0]] if has_answers else []
        if need_labels and ends_with_answer and not spans:
            raise ValueError(
                f"conversation {index} ends with an assistant turn, but the chat template marks no answer: "
                "put assistant content inside {% generation %} ... {% endgeneration %} to get labels"
            )
        prompts.append(RenderedPrompt(rendered[0], notes))
        answer_spans.append(spans)
    return prompts, answer_spans


def split_chat_kwargs(kwargs: dict, template: str, processor_names: Sequence[str]) -> tuple[dict, dict]:
    """``apply_chat_template``'s keywords as processor keywords (``processor_names`` and ``*_kwargs``: they act)
    and template variables (names ``template`` reads, plus an explicit ``template_kwargs`` dict). Anything else
    is refused, so that ``fps=2`` or a misspelt option never becomes a template variable that nothing reads."""
    from jinja2 import meta
    from transformers.utils.chat_template_utils import _compile_jinja_template

    kwargs = dict(kwargs)
    options, template_kwargs = {}, dict(kwargs.pop("template_kwargs", None) or {})
    declared = meta.find_undeclared_variables(_compile_jinja_template(template).environment.parse(template))
    unknown = []
    for key, value in kwargs.items():
        if key in processor_names or key.endswith("_kwargs"):
            options[key] = value
        elif key in declared:
            template_kwargs[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise TypeError(
            f"apply_chat_template got {sorted(unknown)}, which is neither a processor argument "
            f"({', '.join(processor_names)}) nor a variable of the chat template; pass a template variable "
            "the template does not read in template_kwargs={...}"
        )
    return options, template_kwargs



def reserved_tokens_of(tokenizer) -> list[str]:
    """Strings data text may not hold: the tokenizer's special and added tokens, and the placeholders."""
    tokens = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    tokens.update(str(token) for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values())
    tokens.update(getattr(tokenizer, name, None) or default for name, default in
                  (("video_token", "<video>"), ("audio_token", "<audio>")))  # fmt: skip
    return sorted(tokens)


def _call_inputs(conversations: Sequence[Sequence[dict]], prompts: list[str], options: dict, is_batched: bool) -> dict:
    """The processor call's inputs for rendered conversations: prompts, videos, audio and the video parts' extras
    (per sample, or plain values for one conversation), with the caller's ``options``."""
    videos, audio, extras = media_from_conversations(conversations)
    for key, values in extras.items():
        if key in options:
            raise ValueError(f"`{key}` is given both on the conversations' video parts and as an argument; give it once")
        options[key] = values if is_batched else values[0]
    if audio is not None and not is_batched:
        audio = audio[0]
    text, videos = (prompts, videos) if is_batched else (prompts[0], videos[0])
    return {"text": text, "videos": videos, "audio": audio, **options}


class ChatTemplateMixin:
    """The chat side of ``MicroEmoProcessor``: the EMER conversation, rendering, and ``apply_chat_template``.

    The processor provides ``tokenizer``, ``_resolve_chat_template`` (``ProcessorMixin``'s), ``call_keywords``
    (the keywords its ``__call__`` takes) and ``_process`` (its ``__call__`` with the answers' character spans).
    """

    def emer_conversation(
        self,
        video=None,
        *,
        subtitle: str | None = None,
        question: str | None = None,
        answer: str | None = None,
        utterances: str | os.PathLike | Sequence | None = None,
    ) -> list[dict]:
        """The EMER prompt as a conversation: the video (its sound comes with it), the subtitle and the question
        in one user turn; with ``answer``, an assistant turn that :meth:`apply_chat_template` turns into labels.

        ``utterances`` (a subtitle file or spans) travel on the video part; their text is the default subtitle.
        """
        return make_emer_conversation(video, subtitle=subtitle, question=question, answer=answer, utterances=utterances,
                                      reserved_tokens=reserved_tokens_of(self.tokenizer))  # fmt: skip

    def render_conversations(
        self,
        conversations: Sequence[Sequence[dict]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        chat_template: str | None = None,
        need_labels: bool = True,
        **template_kwargs,
    ) -> tuple[list[str], list[list[tuple[int, int]]]]:
        """Render conversations with the chat template (no tokenisation, no expansion).

        Returns the prompts and, per prompt, the character spans of the assistant answers (the template's
        ``{% generation %}`` blocks). A conversation that ends with an assistant turn gets no generation
        prompt after it, whatever ``add_generation_prompt`` says: it is a training example, and with
        ``need_labels`` a template that marks no answer is refused.
        """
        return render_with_template(
            conversations,
            self._resolve_chat_template(chat_template),
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            need_labels=need_labels,
            reserved_tokens=reserved_tokens_of(self.tokenizer),
            **{**self.tokenizer.special_tokens_map, **template_kwargs},
        )

    def apply_chat_template(
        self,
        conversation: list[dict] | list[list[dict]],
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        return_dict: bool = False,
        return_tensors: str | None = "auto",
        continue_final_message: bool = False,
        return_assistant_tokens_mask: bool = False,
        processor_kwargs: dict | None = None,
        tools: list | None = None,
        documents: list | None = None,
        **kwargs,
    ):
        """Render one conversation or a batch, and with ``tokenize=True`` build the model inputs.

        Each conversation holds one video part, ``{"type": "video", "path": "clip.mp4"}`` (or ``"video"``: a
        frame array [T, H, W, 3] or a :class:`DecodedVideo`), with optional MicroEmo extras on the same part:
        ``utterances`` (subtitle file or spans), ``frame_timestamps``, ``landmarks``, ``clue_masks``. The video's
        sound becomes audio tokens unless ``use_audio_in_video=False``; an ``{"type": "audio", "path": ...}``
        part brings a separate audio file or waveform (``"audio"``). A conversation that ends with an assistant
        turn yields ``labels`` on the answer and its end token only, and no generation prompt. Messages and parts
        may be dicts or objects with the same attributes.

        Keyword arguments of :meth:`__call__` (``padding``, ``num_frames``, ``fps``, ``use_audio_in_video``,
        ``return_metadata``, per-sample ``utterances``, ...) may be given here directly or in
        ``processor_kwargs``; a variable the chat template reads may be given directly too, others in
        ``template_kwargs``; any other keyword is refused.

        Returns the prompt text(s) with ``tokenize=False``; the ``input_ids`` with ``tokenize=True``; the whole
        :class:`BatchFeature` with ``return_dict=True`` as well.
        """
        # Not ProcessorMixin._normalize_conversations: it turns dataclasses (a DecodedVideo) into dicts.
        is_batched = bool(conversation) and not isinstance(conversation[0], dict) and isinstance(
            conversation[0], (list, tuple)
        )
        conversations = conversation if is_batched else [conversation]
        conversations = [normalize_conversation(c, f"conversation {i}") for i, c in enumerate(conversations)]
        # transformers' standard `tools` / `documents` (TRL always passes tools=None): None or empty renders nothing;
        # given ones reach a template that reads them and are refused by one that does not, never dropped.
        kwargs.update({name: value for name, value in (("tools", tools), ("documents", documents)) if value})
        options, template_kwargs = split_chat_kwargs(
            kwargs, self._resolve_chat_template(chat_template), self.call_keywords
        )
        options.update(processor_kwargs or {})
        prompts, answer_spans = self.render_conversations(
            conversations,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            chat_template=chat_template,
            need_labels=tokenize,
            **template_kwargs,
        )
        if not tokenize:
            return prompts if is_batched else prompts[0]

        if return_tensors != "auto":
            options["return_tensors"] = return_tensors
        out = self._process(**_call_inputs(conversations, prompts, options, is_batched), answer_spans=answer_spans)
        if return_assistant_tokens_mask:
            labels = out.get("labels")
            out["assistant_masks"] = (labels != -100) if labels is not None else out["attention_mask"] * 0
        return out if return_dict else out["input_ids"]


__all__ = [
    "CHAT_TEMPLATE", "DEFAULT_QUESTION", "VIDEO_PART_EXTRAS", "ChatTemplateMixin", "RenderedPrompt", "make_emer_conversation", "media_from_conversations",
    "normalize_conversation", "render_with_template", "split_chat_kwargs",
]  # fmt: skip
