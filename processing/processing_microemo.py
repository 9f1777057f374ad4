"""MicroEmoProcessor: videos, face clues, utterances, audio and chat messages -> the model's inputs.

Calling conventions are those of transformers' multimodal processors:

- ``processor.apply_chat_template(conversation, tokenize=True, return_dict=True)`` is the front door:
  video parts by ``path`` or ``video`` (with MicroEmo's extras such as ``utterances`` on the part), an
  optional audio part, and an assistant turn that becomes answer-only ``labels``.
- ``processor(text=prompts, videos=videos, audio=None, **kwargs)``: ``text`` is the rendered prompt with
  one ``<video>`` (and optionally one ``<audio>``) placeholder per sample; the processor expands them to
  the exact numbers of tokens the model fills, video tokens first, then audio tokens (paper section 3.4).
  Without ``text`` each sample gets the EMER prompt.

The output keys and shapes are the contract in ``docs/model-inputs.md``. This file ships to the Hub
with a checkpoint: it and the files it imports are flat and import each other relatively; PyAV,
mediapipe and scipy are imported only when a video file has to be decoded, face-meshed or resampled.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .audio_io import SAMPLING_RATE, cut_clips, load_audio_stream
from .emotion_words import extract_emotions
from .face_mesh import detect_landmarks, shared_worker
from .face_regions import DEFAULT_CLUE_REGIONS, rasterize_clue_masks, resolve_regions
from .landmark_cache import CachedFaces, LandmarkCache
from .runtime import get_logger
from .utterances import (
    Span,
    as_spans,
    assign_frames,
    load_spans,
    merge_spans,
    transcribe,
    validate_spans,
)
from .vad import DEFAULT_DETECTOR, DETECTORS, check_options, voice_activity
from .video_io import DecodedVideo, MediaError, NoAudioStreamError, decode_video, frames_from_array

logger = get_logger("processing")

TIMESTAMP_TEMPLATE = "This frame is sampled at {t} second."
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

# Keys of a video content part that carry MicroEmo's per-sample inputs (see `__call__`).
VIDEO_PART_EXTRAS = ("utterances", "frame_timestamps", "landmarks", "clue_masks")
# Per-sample keyword arguments of `__call__`: one entry per video (a plain value for a single video).
PER_SAMPLE_KWARGS = ("utterances", "subtitles", "frame_timestamps", "landmarks", "clue_masks")
# Other keyword arguments `__call__` takes, transformers' standard ones included.
CALL_KWARGS = (
    "sampling_rate", "num_frames", "use_audio_in_video", "return_metadata", "padding", "padding_side",
    "max_length", "pad_to_multiple_of", "truncation", "add_special_tokens", "return_tensors",
    "return_attention_mask", "verbose",
)  # fmt: skip


@dataclass
class PreparedSample:
    """One sample after decoding and analysis; what the processor turns into tensors.

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


class MicroEmoProcessor(ProcessorMixin):
    r"""Turns videos (files or decoded frames) and text into MicroEmo's inputs.

    Args:
        image_processor: resizes frames to the vision encoder's square input and normalises them
            (a ``BlipImageProcessor``, as InstructBLIP's).
        feature_extractor: audio features per 2 s clip (an ``ASTFeatureExtractor`` configured to
            ImageBind's fbank recipe by default, or the chosen transformers audio encoder's own).
        tokenizer: the LLM tokenizer; must contain ``<video>`` and ``<audio>`` tokens.
        qformer_tokenizer: the image Q-Former's (BERT) tokenizer, for the frame timestamp text.
        num_frames: frames sampled per video (T).
        num_audio_clips: 2 s audio clips per video (C).
        num_video_query_tokens, num_audio_query_tokens, use_utterance_windows: must equal the model
            config's (use :meth:`from_model_config`); they fix the placeholder counts.
        max_utterances: more utterances than this are merged (smallest gap first).
        max_frames: the model's frame limit; ``num_frames`` above it is refused.
        patch_size: the vision encoder's patch size (the clue masks' grid is image_size / patch_size).
        clue_regions: region names of ``face_regions.CLUE_REGIONS`` (R = their number).
        min_patch_coverage: a patch is in a region when the region covers this fraction of it.
        audio_feature_layout: ``"imagebind"`` gives ``[C, 1, 128, 204]`` fbanks; ``"native"`` keeps
            the feature extractor's own per-clip output.
        utterance_source: ``"silero"`` (silero-vad, default; the energy VAD with a note where silero-vad is
            not installed), ``"energy"`` (the dependency-free energy VAD), ``"asr"`` (``asr_model``) or ``"none"``,
            used when a sample's utterances are not given.
        asr_model: a transformers ASR model id or folder (with timestamps), for ``utterance_source="asr"``.
        vad_options: overrides of the voice-activity post-processing (``threshold``, ``offset_threshold``,
            ``gate_db``, ``min_speech``, ``min_silence``, ``pad``; see ``vad.py``), saved with the processor.
        face_landmarker_path: a mediapipe ``face_landmarker.task``; without it the offline legacy
            face mesh of mediapipe 0.10.21 is used.
        cache_dir: a folder for the landmark cache (keyed by file content and sampling settings).
        audio_stream: which audio stream of a file to hear (0-based among its audio streams); default: the one
            the container marks default, else the first (what a player plays). The notes say which was used.
        max_prompt_length: the language model's context (``from_model_config`` takes the text config's
            ``max_position_embeddings``); a longer prompt is refused. None: no limit.
        qformer_max_length: longest timestamp text in Q-Former tokens.
        chat_template: Jinja template of the prompt (default: the EMER prompt above). Assistant turns must
            be inside ``{% generation %}`` blocks for ``apply_chat_template`` to build labels.
    """

    def __init__(
        self,
        image_processor=None,
        feature_extractor=None,
        tokenizer=None,
        qformer_tokenizer=None,
        num_frames: int = 8,
        num_audio_clips: int = 8,
        num_video_query_tokens: int = 32,
        num_audio_query_tokens: int = 8,
        use_utterance_windows: bool = True,
        max_utterances: int = 16,
        max_frames: int = 32,
        patch_size: int = 14,
        clue_regions: Sequence[str] | None = None,
        min_patch_coverage: float = 0.1,
        audio_feature_layout: str = "imagebind",
        utterance_source: str = DEFAULT_DETECTOR,
        vad_options: dict | None = None,
        asr_model: str | None = None,
        face_landmarker_path: str | None = None,
        cache_dir: str | None = None,
        audio_stream: int | None = None,
        max_prompt_length: int | None = None,
        qformer_max_length: int = 32,
        chat_template: str | None = None,
        **kwargs,
    ) -> None:
        if tokenizer is None or qformer_tokenizer is None:
            raise ValueError("MicroEmoProcessor needs a `tokenizer` and a `qformer_tokenizer`")
        if image_processor is None:
            image_processor = default_image_processor(224)
        if feature_extractor is None:
            feature_extractor = default_feature_extractor()
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
        if not 1 <= num_frames <= max_frames:
            raise ValueError(f"num_frames must be in [1, max_frames={max_frames}], got {num_frames}")
        self.num_frames = int(num_frames)
        self.num_audio_clips = int(num_audio_clips)
        self.num_video_query_tokens = int(num_video_query_tokens)
        self.num_audio_query_tokens = int(num_audio_query_tokens)
        self.use_utterance_windows = bool(use_utterance_windows)
        self.max_utterances = int(max_utterances)
        self.max_frames = int(max_frames)
        self.patch_size = int(patch_size)
        self.clue_regions = list(clue_regions) if clue_regions is not None else list(DEFAULT_CLUE_REGIONS)
        resolve_regions(self.clue_regions)  # fail now on an unknown name
        self.min_patch_coverage = float(min_patch_coverage)
        self.audio_feature_layout = audio_feature_layout
        self.utterance_source = utterance_source
        self.vad_options = check_options(vad_options)
        self.asr_model = asr_model
        self.face_landmarker_path = face_landmarker_path
        self.cache_dir = cache_dir
        if audio_stream is not None and (isinstance(audio_stream, bool) or not isinstance(audio_stream, int) or audio_stream < 0):
            raise ValueError(f"audio_stream must be None or a stream index >= 0, got {audio_stream!r}")
        self.audio_stream = audio_stream
        self.max_prompt_length = None if max_prompt_length is None else int(max_prompt_length)
        self.qformer_max_length = int(qformer_max_length)
        if chat_template is None:
            chat_template = CHAT_TEMPLATE
        super().__init__(image_processor, feature_extractor, tokenizer, qformer_tokenizer, chat_template=chat_template)
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    # ----------------------------------------------------------------------------------------------
    # Construction helpers

    @classmethod
    def from_model_config(cls, config, tokenizer, qformer_tokenizer, **kwargs) -> MicroEmoProcessor:
        """A processor whose image size, patch grid, token counts and placeholder ids agree with ``config``
        (a ``MicroEmoConfig``). Raises when the tokenizer's placeholder ids differ from the config's."""
        video_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "video_token", None) or "<video>")
        audio_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "audio_token", None) or "<audio>")
        if (video_id, audio_id) != (config.video_token_id, config.audio_token_id):
            raise ValueError(
                f"tokenizer places <video>/<audio> at ids {video_id}/{audio_id} but the model config expects "
                f"{config.video_token_id}/{config.audio_token_id}"
            )
        vision = config.vision_config
        settings = dict(
            num_video_query_tokens=config.num_video_query_tokens,
            num_audio_query_tokens=config.num_audio_query_tokens,
            use_utterance_windows=config.use_utterance_windows,
            max_utterances=config.max_utterances,
            max_frames=config.max_frames,
            num_audio_clips=min(kwargs.pop("num_audio_clips", 8), config.max_audio_clips),
            patch_size=vision.patch_size,
            num_frames=min(kwargs.pop("num_frames", 8), config.max_frames),
            max_prompt_length=getattr(config.text_config, "max_position_embeddings", None),
        )
        settings.update(kwargs)
        image_processor = settings.pop("image_processor", None) or default_image_processor(vision.image_size)
        feature_extractor = settings.pop("feature_extractor", None) or default_feature_extractor()
        return cls(image_processor, feature_extractor, tokenizer, qformer_tokenizer, **settings)

    @property
    def image_size(self) -> int:
        size = self.image_processor.size
        height = size["height"] if isinstance(size, dict) else size.height
        width = size["width"] if isinstance(size, dict) else size.width
        if height != width:
            raise ValueError(f"the image processor must resize to a square, got {height} x {width}")
        return int(height)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def video_token(self) -> str:
        return getattr(self.tokenizer, "video_token", None) or "<video>"

    @property
    def audio_token(self) -> str:
        return getattr(self.tokenizer, "audio_token", None) or "<audio>"

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids", "attention_mask", "pixel_values", "frame_mask", "qformer_input_ids",
            "qformer_attention_mask", "clue_masks", "utterance_frame_mask", "audio_values", "audio_clip_mask",
        ]  # fmt: skip

    def num_video_tokens(self, num_utterances: int) -> int:
        """Placeholder count of the video: one window, plus one per utterance with utterance windows."""
        return self.num_video_query_tokens * (1 + (num_utterances if self.use_utterance_windows else 0))

    # ----------------------------------------------------------------------------------------------
    # Per-sample analysis

    def _backend(self):
        # A worker process per process, started on first use and never pickled (see face_mesh.py).
        return shared_worker(self.face_landmarker_path)

    def _faces(self, video: DecodedVideo, path: str | None, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        if path is not None and self.cache_dir:
            cache = LandmarkCache(self.cache_dir)
            key = cache.key(path, {"num_frames": num_frames, "backend": self.face_landmarker_path or "legacy"})
            hit = cache.get(key)
            if hit is not None and hit.timestamps.shape == video.timestamps.shape and np.allclose(
                hit.timestamps, video.timestamps
            ):
                return hit.landmarks, hit.face_found
            landmarks, found = detect_landmarks(video.frames, self._backend())
            cache.put(key, CachedFaces(video.timestamps, landmarks, found))
            return landmarks, found
        return detect_landmarks(video.frames, self._backend())

    def prepare_sample(
        self,
        video: str | os.PathLike | DecodedVideo | np.ndarray,
        *,
        frame_timestamps: Sequence[float] | np.ndarray | None = None,
        landmarks: np.ndarray | None = None,
        clue_masks: np.ndarray | None = None,
        utterances: str | os.PathLike | Sequence | None = None,
        audio: str | os.PathLike | np.ndarray | None = None,
        sampling_rate: int = SAMPLING_RATE,
        subtitle: str | None = None,
        num_frames: int | None = None,
    ) -> PreparedSample:
        """Decode, face-mesh, find utterances and load audio for one sample: the heavy part of ``__call__``.

        The result is what :meth:`collate` turns into tensors; a training data pipeline can run this once per
        video and collate per batch. The video's own sound is loaded whenever it has one (the utterances are
        found on it); whether it also becomes audio tokens is decided at collation (``use_audio_in_video``).
        """
        num_frames = self.num_frames if num_frames is None else num_frames
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"num_frames must be a whole number >= 1 (or None for {self.num_frames}), got {num_frames!r}")
        num_frames = int(num_frames)
        if num_frames > self.max_frames:
            raise ValueError(f"num_frames={num_frames} is more than the model's max_frames={self.max_frames}")
        notes: list[str] = []
        path = None
        if video is None:
            raise ValueError("a video is None; expected a file path, a DecodedVideo or frames [T, H, W, 3]")
        if isinstance(video, (str, os.PathLike)):
            path = str(video)
            decoded = decode_video(path, num_frames)
        elif isinstance(video, DecodedVideo):
            decoded = video
        else:
            decoded = frames_from_array(np.asarray(video), frame_timestamps)
        if decoded.frames.shape[0] > self.max_frames:
            raise ValueError(
                f"{path or 'video'}: {decoded.frames.shape[0]} frames, more than max_frames={self.max_frames}"
            )
        source = path or "video"

        # Face clues.
        t = decoded.frames.shape[0]
        if clue_masks is not None:
            clue_masks = np.asarray(clue_masks)
            if clue_masks.dtype != bool and not np.isin(clue_masks, (0, 1)).all():
                raise ValueError(f"{source}: clue_masks must be boolean (or 0/1), got values other than 0 and 1")
            clue_masks = clue_masks.astype(bool)
            if clue_masks.shape[0] != t or clue_masks.shape[-1] != self.num_patches or clue_masks.ndim != 3:
                raise ValueError(
                    f"{source}: clue_masks must be [T={t}, R, P={self.num_patches}], got {tuple(clue_masks.shape)}"
                )
            face_found = clue_masks.any(axis=(1, 2))
            lm = None
        else:
            if landmarks is not None:
                lm = np.asarray(landmarks, dtype=np.float32)
                if lm.ndim != 3 or lm.shape[0] != t:
                    raise ValueError(f"{source}: landmarks must be [T={t}, 478, 2 or 3], got {tuple(lm.shape)}")
                face_found = np.isfinite(lm[..., :2]).all(axis=(1, 2))
            else:
                lm, face_found = self._faces(decoded, path, num_frames)
            clue_masks = rasterize_clue_masks(
                np.nan_to_num(lm), face_found, self.image_size, self.patch_size, self.clue_regions, self.min_patch_coverage
            )
        if not face_found.any():
            notes.append("no face found: the local clue path is off for every frame")
            logger.warning("%s: no face found on any sampled frame; using the global frame features only", source)

        # Audio.
        waveform = None
        audio_is_given = audio is not None
        if audio is not None:
            if isinstance(audio, (str, os.PathLike)):
                waveform, described = load_audio_stream(audio, SAMPLING_RATE, stream=self.audio_stream)
                if "of 1 " not in described:
                    notes.append(f"audio: {described} of {audio}")
            else:
                waveform = as_mono_waveform(audio, f"{source}: audio", notes)
                if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
                    raise ValueError(f"sampling_rate must be a whole number of Hz > 0, got {sampling_rate!r}")
                if sampling_rate != SAMPLING_RATE:
                    waveform = _resample(waveform, sampling_rate, SAMPLING_RATE)
        elif path is not None and decoded.has_audio:
            try:
                waveform, described = load_audio_stream(path, SAMPLING_RATE, stream=self.audio_stream)
                if "of 1 " not in described:  # several audio tracks: say which one was heard
                    notes.append(f"audio: {described}; choose another with the processor's audio_stream")
            except (NoAudioStreamError, MediaError) as error:
                notes.append(f"audio unusable: {error}")
                logger.warning("%s; continuing without audio tokens", error)
        if waveform is not None and waveform.size == 0:
            waveform = None
        if waveform is None:
            notes.append("no audio: no audio tokens")
        starts = None
        if waveform is not None:
            _, starts = cut_clips(waveform, self.num_audio_clips)

        # Utterances.
        if isinstance(utterances, (str, os.PathLike)):
            spans = load_spans(utterances)
            span_source = str(utterances)
            if not spans:
                notes.append(f"no utterances: {utterances} holds no subtitle cue")
        elif utterances is not None:
            spans = as_spans(utterances, f"{source} utterances")
            span_source = f"{source} utterances"
        elif waveform is not None and self.utterance_source in DETECTORS:
            activity = voice_activity(
                waveform, SAMPLING_RATE, self.utterance_source, duration=decoded.duration, **self.vad_options
            )
            spans, span_source = activity.spans, f"{source} (voice activity, {activity.detector})"
            notes.append(activity.note)
        elif waveform is not None and self.utterance_source == "asr":
            spans, span_source = transcribe(waveform, self.asr_model), f"{source} (ASR {self.asr_model})"
        else:
            spans, span_source = [], source
        if utterances is None:
            # Found on the audio, which may run a little past the last frame (encoder padding): fit
            # machine-made spans to the video quietly; user-given spans are checked and warned about.
            duration = decoded.duration
            spans = [Span(max(s.start, 0.0), min(s.end, duration), s.text) for s in spans if s.start < duration]
        spans = validate_spans(spans, decoded.duration, span_source)
        if len(spans) > self.max_utterances:
            message = f"{len(spans)} utterances merged down to max_utterances={self.max_utterances} (closest neighbours joined)"
            notes.append(message)
            logger.warning("%s: %s", span_source, message)
        spans = merge_spans(spans, self.max_utterances)
        utterance_frame_mask = assign_frames(spans, decoded.timestamps)
        if subtitle is None:
            subtitle = " ".join(s.text for s in spans if s.text)
        return PreparedSample(
            video=decoded,
            landmarks=lm,
            face_found=face_found,
            clue_masks=clue_masks,
            utterances=spans,
            utterance_frame_mask=utterance_frame_mask,
            waveform=waveform,
            audio_clip_starts=starts,
            subtitle=subtitle,
            notes=notes,
            audio_is_given=audio_is_given,
        )

    # ----------------------------------------------------------------------------------------------
    # Conversations and prompts

    def emer_conversation(
        self,
        video: str | os.PathLike | DecodedVideo | np.ndarray | None = None,
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
        part: dict = {"type": "video"}
        if isinstance(video, (str, os.PathLike)):
            part["path"] = str(video)
        elif video is not None:
            part["video"] = video
        if utterances is not None:
            part["utterances"] = utterances
            if subtitle is None:
                spans = load_spans(utterances) if isinstance(utterances, (str, os.PathLike)) else as_spans(utterances)
                subtitle = " ".join(s.text for s in spans if s.text)
        text = f"The subtitle of this video is <Subtitle>{subtitle}</Subtitle>. " if subtitle else ""
        conversation = [{"role": "user", "content": [part, {"type": "text", "text": text + (question or DEFAULT_QUESTION)}]}]
        if answer is not None:
            conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return conversation

    def render_conversations(
        self,
        conversations: Sequence[Sequence[dict]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        chat_template: str | None = None,
        **template_kwargs,
    ) -> tuple[list[str], list[list[tuple[int, int]]]]:
        """Render conversations with the chat template (no tokenisation, no expansion).

        Returns the prompts and, per prompt, the character spans of the assistant answers (the template's
        ``{% generation %}`` blocks). A conversation that ends with an assistant turn gets no generation
        prompt after it, whatever ``add_generation_prompt`` says: it is a training example.
        """
        from transformers.utils.chat_template_utils import render_jinja_template

        template = self._resolve_chat_template(chat_template)
        template_kwargs = {**self.tokenizer.special_tokens_map, **template_kwargs}
        prompts, answer_spans = [], []
        for index, conversation in enumerate(conversations):
            view = _template_view(conversation, f"conversation {index}")
            has_answers = any(message["role"] == "assistant" for message in view)
            ends_with_answer = bool(view) and view[-1]["role"] == "assistant" and not continue_final_message
            rendered, indices = render_jinja_template(
                conversations=[view],
                chat_template=template,
                return_assistant_tokens_mask=has_answers and not continue_final_message,
                continue_final_message=continue_final_message,
                add_generation_prompt=add_generation_prompt and not ends_with_answer,
                **template_kwargs,
            )
            spans = [tuple(span) for span in indices[0]] if has_answers and not continue_final_message else []
            if ends_with_answer and not spans:
                raise ValueError(
                    f"conversation {index} ends with an assistant turn, but the chat template marks no answer: "
                    "put assistant content inside {% generation %} ... {% endgeneration %} to get labels"
                )
            prompts.append(rendered[0])
            answer_spans.append(spans)
        return prompts, answer_spans

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
        **kwargs,
    ):
        """Render one conversation or a batch, and with ``tokenize=True`` build the model inputs.

        Each conversation holds one video part, ``{"type": "video", "path": "clip.mp4"}`` (or ``"video"``: a
        frame array [T, H, W, 3] or a :class:`DecodedVideo`), with optional MicroEmo extras on the same part:
        ``utterances`` (subtitle file or spans), ``frame_timestamps``, ``landmarks``, ``clue_masks``. The video's
        sound becomes audio tokens unless ``use_audio_in_video=False``; an ``{"type": "audio", "path": ...}``
        part brings a separate audio file or waveform (``"audio"``). A conversation that ends with an assistant
        turn yields ``labels`` on the answer and its end token only, and no generation prompt.

        Keyword arguments of :meth:`__call__` (``padding``, ``num_frames``, ``use_audio_in_video``,
        ``return_metadata``, per-sample ``utterances``, ...) may be given here directly or in
        ``processor_kwargs``; any other keyword is a chat-template variable.

        Returns the prompt text(s) with ``tokenize=False``; the ``input_ids`` with ``tokenize=True``; the whole
        :class:`BatchFeature` with ``return_dict=True`` as well.
        """
        # Not ProcessorMixin._normalize_conversations: it turns dataclasses (a DecodedVideo) into dicts.
        is_batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        conversations = [list(c) for c in conversation] if is_batched else [list(conversation)]
        options = dict(processor_kwargs or {})
        template_kwargs = {}
        for key, value in kwargs.items():
            known = key in PER_SAMPLE_KWARGS or key in CALL_KWARGS or key.endswith("_kwargs")
            (options if known else template_kwargs)[key] = value
        prompts, answer_spans = self.render_conversations(
            conversations,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            chat_template=chat_template,
            **template_kwargs,
        )
        if not tokenize:
            return prompts if is_batched else prompts[0]

        videos, audio, extras = _media_from_conversations(conversations)
        for key, values in extras.items():
            if key in options:
                raise ValueError(f"`{key}` is given both on the conversations' video parts and as an argument; give it once")
            options[key] = values if is_batched else values[0]
        if return_tensors != "auto":
            options["return_tensors"] = return_tensors
        if audio is not None and not is_batched:
            audio = audio[0]
        out = self._process(
            text=prompts if is_batched else prompts[0],
            videos=videos if is_batched else videos[0],
            audio=audio,
            answer_spans=answer_spans,
            **options,
        )
        if return_assistant_tokens_mask:
            labels = out.get("labels")
            out["assistant_masks"] = (labels != -100) if labels is not None else out["attention_mask"] * 0
        return out if return_dict else out["input_ids"]

    def expand_placeholders(self, prompt: str, num_utterances: int, has_audio: bool, source: str = "sample") -> str:
        """Replace the ``<video>`` placeholder by the video tokens and, when the sample has sound and the prompt
        has no ``<audio>`` placeholder of its own, the audio tokens right after them (the paper's order: video,
        audio, text); an ``<audio>`` placeholder becomes the audio tokens (none without sound)."""
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
        video_tokens = video * self.num_video_tokens(num_utterances)
        audio_tokens = audio * (self.num_audio_query_tokens if has_audio else 0)
        if found_audio:
            return prompt.replace(audio, audio_tokens).replace(video, video_tokens)
        return prompt.replace(video, video_tokens + audio_tokens)

    # ----------------------------------------------------------------------------------------------
    # The call

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        """Build one batch, with transformers' argument order ``(images, text, videos, audio)``.

        Args:
            images: not used by MicroEmo (it reads videos); accepted so that generic callers can pass None.
            text: the rendered prompt of each sample, with one ``<video>`` placeholder (and at most one
                ``<audio>``), as :meth:`apply_chat_template` writes it. None: the EMER prompt, with each
                sample's subtitle (``subtitles``, else the utterances' text).
            videos: per sample a file path, a :class:`DecodedVideo`, or frames [T, H, W, 3] (uint8 RGB).
            audio: per sample a waveform (at ``sampling_rate``) or an audio file, instead of the video's sound.

        Keyword args (per-sample ones take a list with one entry per video, or a plain value for one video):
            utterances: an .srt/.vtt/.json path or a list of (start, end[, text]) / Span / dicts; None: found
                by ``utterance_source``.
            subtitles: the subtitle text of the default EMER prompt (only without ``text``).
            frame_timestamps: seconds per frame, for frame arrays (default 1 frame per second).
            landmarks: [T, 478, 2|3] normalised face-mesh landmarks (NaN rows: no face), instead of mediapipe.
            clue_masks: [T, R, P] bool masks, instead of landmarks.
            use_audio_in_video: the video's own sound becomes audio tokens (default True).
            num_frames: T for decoded files (default ``self.num_frames``). sampling_rate: of ``audio`` arrays.
            padding (True / "longest", "max_length" with ``max_length``, False), padding_side ("left" by
                default, for generation), pad_to_multiple_of, add_special_tokens, return_tensors ("pt").
            return_metadata: also return ``face_found``, ``frame_timestamps``, ``utterance_spans`` and
                ``notes`` (not model inputs; for inspection and plots).
        """
        return self._process(images, text, videos, audio, **kwargs)

    def _process(self, images=None, text=None, videos=None, audio=None, *, answer_spans=None, **kwargs) -> BatchFeature:
        kwargs = _check_call_kwargs(kwargs)
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
        videos, single = _video_list(videos)
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

        inputs = {name: per_sample(kwargs.pop(name, None), name) for name in PER_SAMPLE_KWARGS}
        audio_l = per_sample(audio, "audio")
        sampling_rate = kwargs.pop("sampling_rate", SAMPLING_RATE)
        num_frames = kwargs.pop("num_frames", None)
        samples = []
        for i in _progress(range(batch), "preparing videos"):
            samples.append(
                self.prepare_sample(
                    videos[i],
                    frame_timestamps=inputs["frame_timestamps"][i],
                    landmarks=inputs["landmarks"][i],
                    clue_masks=inputs["clue_masks"][i],
                    utterances=inputs["utterances"][i],
                    audio=audio_l[i],
                    sampling_rate=sampling_rate,
                    subtitle=inputs["subtitles"][i],
                    num_frames=num_frames,
                )
            )
        return self.collate(samples, text, answer_spans, **kwargs)

    def collate(
        self,
        samples: list[PreparedSample],
        text: list[str] | None = None,
        answer_spans: list[list[tuple[int, int]]] | None = None,
        *,
        use_audio_in_video: bool = True,
        padding: bool | str = True,
        padding_side: str = "left",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        truncation: bool | str | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = "pt",
        return_attention_mask: bool = True,
        return_metadata: bool = False,
        verbose: bool = True,
    ) -> BatchFeature:
        """Tensors of prepared samples and their rendered prompts: pads T, U and the text across the batch,
        expands the placeholders, and supervises the characters in ``answer_spans`` (``labels``). Without
        ``text``, each sample gets the EMER prompt with its subtitle."""
        if text is None:
            text, _ = self.render_conversations([self.emer_conversation(subtitle=s.subtitle) for s in samples])
        if len(text) != len(samples):
            raise ValueError(f"collate: {len(text)} prompts for {len(samples)} samples")
        if truncation not in (None, False, "do_not_truncate"):
            raise ValueError(
                f"truncation={truncation!r}: MicroEmo does not truncate prompts, since a cut could fall inside the "
                "expanded video / audio tokens; shorten the text or lower max_utterances instead"
            )
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        batch = len(samples)
        t_max = max(s.video.frames.shape[0] for s in samples)
        u_max = max(len(s.utterances) for s in samples)
        regions = samples[0].clue_masks.shape[1]
        if any(s.clue_masks.shape[1] != regions for s in samples):
            raise ValueError("every sample of a batch needs the same number of clue regions")
        size = self.image_size

        pixel_values = np.zeros((batch, t_max, 3, size, size), dtype=np.float32)
        frame_mask = np.zeros((batch, t_max), dtype=bool)
        clue = np.zeros((batch, t_max, regions, self.num_patches), dtype=bool)
        utt = np.zeros((batch, u_max, t_max), dtype=bool)
        stamp_texts: list[list[str]] = []
        for b, sample in enumerate(samples):
            t = sample.video.frames.shape[0]
            images = self.image_processor(list(sample.video.frames), return_tensors="np")["pixel_values"]
            pixel_values[b, :t] = np.asarray(images, dtype=np.float32)
            frame_mask[b, :t] = True
            clue[b, :t] = sample.clue_masks
            utt[b, : len(sample.utterances), :t] = sample.utterance_frame_mask
            # TimeChat writes t = round(frame_index / fps, 1); we write the frame's presentation time,
            # which is the same on constant-rate video and right on variable-rate video.
            stamps = [TIMESTAMP_TEMPLATE.format(t=f"{round(float(x), 1):.1f}") for x in sample.video.timestamps]
            # Padded frames get the last real frame's text (their mask keeps them out of the model).
            stamp_texts.append(stamps + [stamps[-1]] * (t_max - t))
        flat = [stamp for row in stamp_texts for stamp in row]
        qformer = self.qformer_tokenizer(
            flat, padding="longest", truncation=True, max_length=self.qformer_max_length, return_tensors="np"
        )
        length = qformer["input_ids"].shape[-1]
        qformer_ids = qformer["input_ids"].reshape(batch, t_max, length)
        qformer_mask = qformer["attention_mask"].reshape(batch, t_max, length)

        # Audio: the caller's waveform, or the video's sound unless use_audio_in_video=False.
        notes = [list(sample.notes) for sample in samples]
        uses_audio = []
        for b, sample in enumerate(samples):
            uses = sample.waveform is not None and (sample.audio_is_given or use_audio_in_video)
            if sample.waveform is not None and not uses:
                notes[b].append("the video's sound is not used as audio tokens (use_audio_in_video=False)")
            uses_audio.append(uses)
        rows = [self._audio_features(cut_clips(s.waveform, self.num_audio_clips)[0]) if uses else None
                for s, uses in zip(samples, uses_audio, strict=True)]  # fmt: skip
        clip_shape = next((row.shape[1:] for row in rows if row is not None), None)
        if clip_shape is None:
            clip_shape = self._audio_features([np.zeros(int(2 * SAMPLING_RATE), np.float32)]).shape[1:]
        audio_values = np.zeros((batch, self.num_audio_clips, *clip_shape), dtype=np.float32)
        audio_clip_mask = np.zeros((batch, self.num_audio_clips), dtype=bool)
        for b, row in enumerate(rows):
            if row is not None:
                audio_values[b] = row
                audio_clip_mask[b] = True

        # Text.
        answer_spans = answer_spans or [[] for _ in samples]
        sequences, label_rows = [], []
        for b, sample in enumerate(samples):
            ids, labels = self._tokenize(text[b], answer_spans[b], len(sample.utterances), uses_audio[b], add_special_tokens, b)
            self._check_counts(ids, sample, uses_audio[b], b)
            if self.max_prompt_length is not None and len(ids) > self.max_prompt_length:
                raise ValueError(
                    f"sample {b}: the prompt has {len(ids)} tokens ({self.num_video_tokens(len(sample.utterances))} of "
                    f"them video tokens for {len(sample.utterances)} utterance(s)), more than the language model's "
                    f"context of {self.max_prompt_length}; shorten the text or lower max_utterances"
                )
            sequences.append(ids)
            label_rows.append(labels)
        width = max(len(s) for s in sequences)
        if padding in (False, "do_not_pad"):
            if len({len(s) for s in sequences}) > 1 and return_tensors is not None:
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
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = np.full((batch, width), pad, dtype=np.int64)
        attention_mask = np.zeros((batch, width), dtype=np.int64)
        labels_arr = np.full((batch, width), -100, dtype=np.int64)
        for b, (ids, labels) in enumerate(zip(sequences, label_rows, strict=True)):
            # Left padding (the default): generation continues from the right end of every row.
            row = slice(width - len(ids), width) if padding_side == "left" else slice(0, len(ids))
            input_ids[b, row] = ids
            attention_mask[b, row] = 1
            labels_arr[b, row] = labels

        data = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": pixel_values,
            "frame_mask": frame_mask,
            "qformer_input_ids": qformer_ids.astype(np.int64),
            "qformer_attention_mask": qformer_mask.astype(np.int64),
            "clue_masks": clue,
            "utterance_frame_mask": utt,
            "audio_values": audio_values,
            "audio_clip_mask": audio_clip_mask,
        }
        if not return_attention_mask:
            del data["attention_mask"]
        if any(answer_spans):
            data["labels"] = labels_arr
        if return_metadata:
            face_found = np.zeros((batch, t_max), dtype=bool)
            stamps = np.full((batch, t_max), np.nan)
            for b, sample in enumerate(samples):
                face_found[b, : len(sample.face_found)] = sample.face_found
                stamps[b, : len(sample.video.timestamps)] = sample.video.timestamps
            data["face_found"] = face_found
            data["frame_timestamps"] = stamps
        features = BatchFeature(data, tensor_type=return_tensors)
        if return_metadata:
            features["utterance_spans"] = [[(s.start, s.end, s.text) for s in sample.utterances] for sample in samples]
            features["notes"] = notes
        return features

    def _tokenize(
        self, prompt: str, answer_spans: Sequence[tuple[int, int]], num_utterances: int, has_audio: bool,
        add_special_tokens: bool, index: int,
    ) -> tuple[list[int], list[int]]:  # fmt: skip
        """Token ids and labels of one rendered prompt.

        The text between answers and each answer are tokenised separately, so that the ids before an answer are
        exactly the ids ``generate`` starts from, and the labels are exactly the answer's tokens.
        """
        source = f"sample {index}"
        pieces, position = [], 0
        for start, end in sorted(answer_spans):
            pieces += [(prompt[position:start], False), (prompt[start:end], True)]
            position = end
        pieces.append((prompt[position:], False))
        for piece, is_answer in pieces:
            if is_answer and (self.video_token in piece or self.audio_token in piece):
                raise ValueError(f"{source}: an assistant answer holds a {self.video_token} / {self.audio_token} placeholder")
        # Validate the placeholders on the whole prompt, then expand them where they are.
        self.expand_placeholders("".join(p for p, answer in pieces if not answer), num_utterances, has_audio, source)
        ids, labels = [], []
        for number, (piece, is_answer) in enumerate(pieces):
            if not piece:
                continue
            if not is_answer and (self.video_token in piece or self.audio_token in piece):
                piece = self._expand_piece(piece, num_utterances, has_audio, prompt)
            piece_ids = self.tokenizer(piece, add_special_tokens=add_special_tokens and number == 0)["input_ids"]
            ids += piece_ids
            labels += piece_ids if is_answer else [-100] * len(piece_ids)
        return ids, labels

    def _expand_piece(self, piece: str, num_utterances: int, has_audio: bool, prompt: str) -> str:
        # The audio tokens follow the video tokens unless the whole prompt places <audio> itself.
        video_tokens = self.video_token * self.num_video_tokens(num_utterances)
        audio_tokens = self.audio_token * (self.num_audio_query_tokens if has_audio else 0)
        if self.audio_token in prompt:
            return piece.replace(self.audio_token, audio_tokens).replace(self.video_token, video_tokens)
        return piece.replace(self.video_token, video_tokens + audio_tokens)

    def _audio_features(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        extracted = self.feature_extractor(list(clips), sampling_rate=SAMPLING_RATE, return_tensors="np")
        name = "input_values" if "input_values" in extracted else "input_features"
        values = np.asarray(extracted[name], dtype=np.float32)
        if self.audio_feature_layout == "imagebind":
            # AST layout [C, frames, mel] -> ImageBind's [C, 1, mel, frames].
            values = np.transpose(values, (0, 2, 1))[:, None]
        return values

    def _check_counts(self, ids: list[int], sample: PreparedSample, has_audio: bool, index: int) -> None:
        video_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        audio_id = self.tokenizer.convert_tokens_to_ids(self.audio_token)
        expected_video = self.num_video_tokens(len(sample.utterances))
        expected_audio = self.num_audio_query_tokens if has_audio else 0
        found_video, found_audio = ids.count(video_id), ids.count(audio_id)
        if (found_video, found_audio) != (expected_video, expected_audio):
            raise ValueError(
                f"sample {index}: the tokenized prompt holds {found_video} video / {found_audio} audio placeholder "
                f"tokens, expected {expected_video} / {expected_audio} (does the tokenizer split the placeholders?)"
            )

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``ProcessorMixin.from_pretrained``, without transformers' warning about the empty lowest mel filters
        of Kaldi's 128-bin fbank (they are empty in ImageBind's own features too)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Save as ``ProcessorMixin`` does, registered for ``AutoProcessor`` so that the flat processing files
        are copied and ``AutoProcessor.from_pretrained(..., trust_remote_code=True)`` finds the class."""
        if type(self)._auto_class is None:
            type(self).register_for_auto_class()
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)

    def post_process_emotions(self, texts: str | Sequence[str]) -> list[str] | list[list[str]]:
        """The emotion labels each generated explanation names (judge-free; see ``emotion_words.py``)."""
        if isinstance(texts, str):
            return extract_emotions(texts)
        return [extract_emotions(text) for text in texts]

    def batch_decode(self, *args, **kwargs) -> list[str]:
        """The LLM tokenizer's ``batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs) -> str:
        """The LLM tokenizer's ``decode``."""
        return self.tokenizer.decode(*args, **kwargs)


_REPLACED_KWARGS = {
    "messages": "`messages=` is replaced by processor.apply_chat_template(conversation, tokenize=True, return_dict=True), "
    "with the video in the conversation as {'type': 'video', 'path': ...}",
    "answers": "`answers=` is replaced by an assistant turn: processor.apply_chat_template("
    "processor.emer_conversation(video, answer=...), tokenize=True, return_dict=True) gives answer-only labels",
}


def _check_call_kwargs(kwargs: dict) -> dict:
    """Flatten transformers' nested ``*_kwargs`` dicts and refuse what ``__call__`` does not take."""
    flat = {}
    for key, value in kwargs.items():
        if key.endswith("_kwargs") and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    for key in flat:
        if key in _REPLACED_KWARGS:
            raise TypeError(_REPLACED_KWARGS[key])
    unknown = sorted(set(flat) - set(PER_SAMPLE_KWARGS) - set(CALL_KWARGS))
    if unknown:
        raise TypeError(
            f"MicroEmoProcessor got unexpected arguments {unknown}; it takes images, text, videos, audio and "
            f"{', '.join(PER_SAMPLE_KWARGS + CALL_KWARGS)}"
        )
    return flat


def _is_frame(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 3
    return type(value).__module__.startswith("PIL.")


def _video_list(videos) -> tuple[list, bool]:
    """Videos as a list of one entry per sample, and whether a single video was given.

    Accepts one video or a list; transformers' nested form (a list of videos per sample) is accepted with one
    video per sample, and a list of frames (arrays [H, W, 3] or PIL images) is one video.
    """
    if isinstance(videos, np.ndarray) and videos.ndim == 5:
        return list(videos), False
    if not isinstance(videos, (list, tuple)):
        return [videos], True
    if videos and all(_is_frame(v) for v in videos):
        return [np.stack([np.asarray(v) for v in videos])], True
    out = []
    for index, video in enumerate(videos):
        if isinstance(video, (list, tuple)):
            if video and all(_is_frame(v) for v in video):
                video = np.stack([np.asarray(v) for v in video])
            elif len(video) == 1:
                video = video[0]
            else:
                raise ValueError(f"sample {index}: MicroEmo takes one video per sample, got {len(video)}")
        out.append(video)
    return out, False


def _template_view(conversation: Sequence[dict], source: str) -> list[dict]:
    """What the chat template sees: roles, texts and part types (no media, which the template never prints)."""
    view = []
    for number, message in enumerate(conversation):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"{source}, message {number}: expected a dict with 'role' and 'content', got {message!r:.80}")
        content = message["content"]
        if not isinstance(content, str):
            parts = []
            for part in content:
                if not isinstance(part, dict) or "type" not in part:
                    raise ValueError(f"{source}, message {number}: a content part needs a 'type', got {part!r:.80}")
                parts.append({key: part[key] for key in ("type", "text") if key in part})
            content = parts
        view.append({"role": message["role"], "content": content})
    return view


def _media_from_conversations(conversations: Sequence[Sequence[dict]]) -> tuple[list, list | None, dict]:
    """The video, the optional separate audio and the video part's extras of each conversation."""
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
        sources = [part[key] for key in ("path", "video", "url") if key in part]
        if len(sources) != 1:
            raise ValueError(
                f"conversation {index}: the video part needs its video under one key, 'path' (a file) or 'video' "
                f"(frames [T, H, W, 3] or a DecodedVideo); found keys {sorted(part)}"
            )
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


def _progress(items, description: str):
    """A progress bar over the samples of a large batch (4 or more), obeying transformers' progress switch."""
    from transformers.utils import logging as hf_logging

    return hf_logging.tqdm(items, desc=description, unit="video", disable=len(items) < 4, leave=False)


def as_mono_waveform(audio, source: str, notes: list[str] | None = None) -> np.ndarray:
    """A waveform array as mono float32: [N], or [channels, N] / [N, channels] mixed down (with a note).

    The channel axis is the short one (at most 8 channels); an array whose layout cannot be told apart, a
    non-finite sample or an empty array is refused.
    """
    waveform = np.asarray(audio)
    if not np.issubdtype(waveform.dtype, np.number) or np.issubdtype(waveform.dtype, np.complexfloating):
        raise ValueError(f"{source}: a waveform must hold real numbers, got dtype {waveform.dtype}")
    if np.issubdtype(waveform.dtype, np.integer):
        # PCM samples as read from a WAV file: full scale is the integer type's range, not 1.0.
        if notes is not None:
            notes.append(f"audio: {waveform.dtype.name} samples scaled to [-1, 1]")
        waveform = waveform.astype(np.float32) / (float(np.iinfo(waveform.dtype).max) + 1.0)
    waveform = waveform.astype(np.float32)
    if waveform.ndim == 2 and 1 in waveform.shape:
        waveform = waveform.reshape(-1)
    if waveform.ndim == 2:
        channels_first = waveform.shape[0] <= 8 < waveform.shape[1]
        channels_last = waveform.shape[1] <= 8 < waveform.shape[0]
        if not (channels_first or channels_last):
            raise ValueError(
                f"{source}: a waveform of shape {waveform.shape} has no clear channel axis; give [N] mono samples, "
                "or [channels, N] / [N, channels] with at most 8 channels"
            )
        channels = waveform.shape[0] if channels_first else waveform.shape[1]
        waveform = waveform.mean(axis=0 if channels_first else 1)
        if notes is not None:
            notes.append(f"audio: {channels} channels mixed down to mono")
    if waveform.ndim != 1:
        raise ValueError(f"{source}: a waveform must be [N] or [channels, N], got shape {waveform.shape}")
    if waveform.size == 0:
        raise ValueError(f"{source}: the waveform is empty; pass None for a sample without audio")
    if not np.isfinite(waveform).all():
        raise ValueError(f"{source}: the waveform holds NaN or infinite samples")
    return waveform


def _resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    try:
        from scipy.signal import resample_poly
    except ImportError as error:  # inside try: transformers' remote-code import check skips it
        raise ImportError(
            f"a waveform at {source_rate} Hz must be resampled to {target_rate} Hz, which needs scipy: pip install "
            f"scipy (or pass audio at {target_rate} Hz)"
        ) from error

    divisor = np.gcd(int(source_rate), int(target_rate))
    return resample_poly(waveform, target_rate // divisor, source_rate // divisor).astype(np.float32)


def default_image_processor(image_size: int):
    """InstructBLIP's frame preprocessing at ``image_size``: square bicubic resize, CLIP mean / std."""
    from transformers import BlipImageProcessor

    return BlipImageProcessor(size={"height": image_size, "width": image_size})


def default_feature_extractor():
    """ImageBind's audio features: 128-bin Kaldi fbank, 204 frames, normalised (x + 4.268) / 9.138.

    ``ASTFeatureExtractor`` computes the same Kaldi fbank and normalises with ``(x - mean) / (2 * std)``,
    hence std = 9.138 / 2.
    """
    from transformers import ASTFeatureExtractor

    with warnings.catch_warnings():
        # Kaldi's 128 mel bins on a 512-point FFT leave the lowest filters empty, as ImageBind's own do.
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return ASTFeatureExtractor(num_mel_bins=128, max_length=204, mean=-4.268, std=4.569, do_normalize=True)


__all__ = ["MicroEmoProcessor", "PreparedSample", "default_feature_extractor", "default_image_processor"]
