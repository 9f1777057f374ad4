"""MicroEmoProcessor: videos, face clues, utterances, audio and chat messages -> the model's inputs.

The output keys and shapes are the contract in ``docs/model-inputs.md``. This file ships to the Hub
with a checkpoint: it and the files it imports are flat and import each other relatively; PyAV and
mediapipe are imported only when a video file has to be decoded or face-meshed.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .audio_io import SAMPLING_RATE, cut_clips, load_audio
from .face_mesh import detect_landmarks, make_backend
from .face_regions import DEFAULT_CLUE_REGIONS, rasterize_clue_masks, resolve_regions
from .landmark_cache import CachedFaces, LandmarkCache
from .utterances import (
    Span,
    as_spans,
    assign_frames,
    detect_speech,
    load_spans,
    merge_spans,
    transcribe,
    validate_spans,
)
from .video_io import DecodedVideo, MediaError, NoAudioStreamError, decode_video, frames_from_array

logger = logging.getLogger(__name__)

_FACE_BACKENDS: dict[str, object] = {}

TIMESTAMP_TEMPLATE = "This frame is sampled at {t} second."
DEFAULT_QUESTION = "From what clues can we infer the person's emotional state? Describe the clues, then the emotions."

# The EMER prompt in the style of AffectGPT / Video-LLaMA: audio, then video, then the subtitle and
# the question, in one user turn; the answer is the assistant turn. Wording is our own.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ message['content'] if message['content'] is string else message['content'][0]['text'] }}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '###Human: ' if message['role'] == 'user' else '###Assistant: ' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'audio' -%}{{ 'Listen to the voice in <Audio><audio></Audio>. ' }}"
    "{%- elif part['type'] == 'video' -%}{{ 'Watch the face and gestures in <Video><video></Video>. ' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ eos_token if message['role'] == 'assistant' else '' }}{{ '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '###Assistant: ' }}{%- endif -%}"
)


@dataclass
class PreparedSample:
    """One sample after decoding and analysis; what the processor turns into tensors.

    ``face_found``, ``utterances`` and ``audio_clip_starts`` are kept so that callers (and
    :mod:`visualize`) can see what was found and what was missing.
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
        utterance_source: ``"vad"`` (offline energy VAD, default), ``"asr"`` (``asr_model``) or ``"none"``,
            used when a sample's utterances are not given.
        asr_model: a transformers ASR model id or folder (with timestamps), for ``utterance_source="asr"``.
        face_landmarker_path: a mediapipe ``face_landmarker.task``; without it the offline legacy
            face mesh of mediapipe 0.10.21 is used.
        cache_dir: a folder for the landmark cache (keyed by file content and sampling settings).
        qformer_max_length: longest timestamp text in Q-Former tokens.
        chat_template: Jinja template of the prompt (default: the EMER prompt above).
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
        utterance_source: str = "vad",
        asr_model: str | None = None,
        face_landmarker_path: str | None = None,
        cache_dir: str | None = None,
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
        if utterance_source not in ("vad", "asr", "none"):
            raise ValueError(f"utterance_source must be 'vad', 'asr' or 'none', got {utterance_source!r}")
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
        self.asr_model = asr_model
        self.face_landmarker_path = face_landmarker_path
        self.cache_dir = cache_dir
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
        # Kept outside the instance: ProcessorMixin deep-copies instance attributes when saving, and
        # a mediapipe graph cannot be copied. One backend per model file serves every processor.
        key = str(self.face_landmarker_path or "legacy")
        if key not in _FACE_BACKENDS:
            _FACE_BACKENDS[key] = make_backend(self.face_landmarker_path)
        return _FACE_BACKENDS[key]

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
        """Decode, face-mesh, find utterances and load audio for one sample (see ``__call__``)."""
        num_frames = int(num_frames or self.num_frames)
        if num_frames > self.max_frames:
            raise ValueError(f"num_frames={num_frames} is more than the model's max_frames={self.max_frames}")
        notes: list[str] = []
        path = None
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
            clue_masks = np.asarray(clue_masks, dtype=bool)
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
        if audio is not None:
            if isinstance(audio, (str, os.PathLike)):
                waveform = load_audio(audio, SAMPLING_RATE)
            else:
                waveform = np.asarray(audio, dtype=np.float32).reshape(-1)
                if sampling_rate != SAMPLING_RATE:
                    waveform = _resample(waveform, sampling_rate, SAMPLING_RATE)
        elif path is not None and decoded.has_audio:
            try:
                waveform = load_audio(path, SAMPLING_RATE)
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
        elif utterances is not None:
            spans = as_spans(utterances, f"{source} utterances")
            span_source = f"{source} utterances"
        elif waveform is not None and self.utterance_source == "vad":
            spans, span_source = detect_speech(waveform), f"{source} (voice activity)"
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
        )

    # ----------------------------------------------------------------------------------------------
    # Text

    def default_messages(self, subtitle: str, question: str | None, has_audio: bool) -> list[dict]:
        """The EMER prompt as chat messages: [audio], video, subtitle and question in the user turn."""
        parts: list[dict] = [{"type": "audio"}] if has_audio else []
        parts.append({"type": "video"})
        text = f"The subtitle of this video is <Subtitle>{subtitle}</Subtitle>. " if subtitle else ""
        parts.append({"type": "text", "text": text + (question or DEFAULT_QUESTION)})
        return [{"role": "user", "content": parts}]

    def render_prompt(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render chat messages with the processor's chat template (no tokenisation, no expansion)."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        template = self.chat_template if isinstance(self.chat_template, str) else self.chat_template["default"]
        return environment.from_string(template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            eos_token=self.tokenizer.eos_token or "",
            bos_token=self.tokenizer.bos_token or "",
        )

    def expand_placeholders(self, prompt: str, num_utterances: int, has_audio: bool, source: str = "sample") -> str:
        """Replace the single ``<video>`` / ``<audio>`` placeholder by the exact number of tokens the model fills."""
        for token, count, present in (
            (self.video_token, self.num_video_tokens(num_utterances), True),
            (self.audio_token, self.num_audio_query_tokens if has_audio else 0, has_audio),
        ):
            found = prompt.count(token)
            if found > 1:
                raise ValueError(f"{source}: the prompt holds {found} {token} placeholders; put exactly one")
            if found == 0 and present and count:
                raise ValueError(f"{source}: the prompt has no {token} placeholder but the sample has that modality")
            prompt = prompt.replace(token, token * count)
        return prompt

    # ----------------------------------------------------------------------------------------------
    # The call

    def __call__(
        self,
        videos=None,
        text: str | list[str] | None = None,
        *,
        messages: list[list[dict]] | None = None,
        answers: str | list[str] | None = None,
        subtitles: str | list[str | None] | None = None,
        frame_timestamps: list | None = None,
        landmarks: list | None = None,
        clue_masks: list | None = None,
        utterances: list | None = None,
        audio: list | None = None,
        sampling_rate: int = SAMPLING_RATE,
        num_frames: int | None = None,
        return_tensors: str | None = "pt",
        return_metadata: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """Build one batch.

        Every per-sample argument is a list with one entry per video (a single video may be given
        without the list).

        Args:
            videos: file paths, :class:`DecodedVideo`, or frame arrays [T, H, W, 3] (uint8 RGB).
            text: the question of each sample (default: the EMER question); ignored where ``messages``
                are given.
            messages: chat messages per sample (``{"role", "content"}``; content a string or parts
                ``{"type": "video" | "audio" | "text"}``), instead of the default EMER prompt.
            answers: training targets; adds ``labels`` with only the answer (and its end token) supervised.
            subtitles: the subtitle / transcript text (default: the utterances' text, if any).
            frame_timestamps: seconds per frame for frame arrays (default 1 frame per second).
            landmarks: [T, 478, 2|3] normalised face-mesh landmarks (NaN rows: no face), instead of
                running mediapipe.
            clue_masks: [T, R, P] bool masks, instead of landmarks.
            utterances: an .srt/.vtt/.json path or a list of (start, end[, text]) / Span / dicts per
                sample; None: found by ``utterance_source``.
            audio: a waveform (at ``sampling_rate``) or an audio file per sample; None takes the
                video file's audio stream; a sample without any audio gets no audio tokens.
            num_frames: T for decoded files (default ``self.num_frames``).
            return_metadata: also return ``face_found``, ``frame_timestamps`` and
                ``utterance_spans`` (not model inputs; for inspection and plots).
        """
        if videos is None:
            raise ValueError("MicroEmoProcessor needs `videos` (paths, DecodedVideo or frame arrays)")
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        single = not isinstance(videos, (list, tuple))
        videos = [videos] if single else list(videos)
        batch = len(videos)

        def per_sample(value, name: str) -> list:
            # A single video takes its arguments as they are; a batch takes one list entry per video.
            if value is None:
                return [None] * batch
            if single:
                return [value]
            if not isinstance(value, (list, tuple)) or len(value) != batch:
                raise ValueError(f"`{name}` must be a list with one entry per video ({batch})")
            return list(value)

        text_l = per_sample(text, "text")
        messages_l = per_sample(messages, "messages")
        answers_l = per_sample(answers, "answers")
        subtitles_l = per_sample(subtitles, "subtitles")
        timestamps_l = per_sample(frame_timestamps, "frame_timestamps")
        landmarks_l = per_sample(landmarks, "landmarks")
        masks_l = per_sample(clue_masks, "clue_masks")
        utterances_l = per_sample(utterances, "utterances")
        audio_l = per_sample(audio, "audio")
        if answers is not None and any(a is None for a in answers_l):
            raise ValueError("`answers` needs one answer per video")

        samples = [
            self.prepare_sample(
                video,
                frame_timestamps=timestamps_l[i],
                landmarks=landmarks_l[i],
                clue_masks=masks_l[i],
                utterances=utterances_l[i],
                audio=audio_l[i],
                sampling_rate=sampling_rate,
                subtitle=subtitles_l[i],
                num_frames=num_frames,
            )
            for i, video in enumerate(videos)
        ]
        return self.collate(samples, text_l, messages_l, answers_l, return_tensors, return_metadata)

    def collate(
        self,
        samples: list[PreparedSample],
        questions: list[str | None],
        messages: list[list[dict] | None],
        answers: list[str | None],
        return_tensors: str | None = "pt",
        return_metadata: bool = False,
    ) -> BatchFeature:
        """Tensors of prepared samples: pads T and U across the batch and expands the placeholders."""
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
        flat = [text for row in stamp_texts for text in row]
        qformer = self.qformer_tokenizer(
            flat, padding="longest", truncation=True, max_length=self.qformer_max_length, return_tensors="np"
        )
        length = qformer["input_ids"].shape[-1]
        qformer_ids = qformer["input_ids"].reshape(batch, t_max, length)
        qformer_mask = qformer["attention_mask"].reshape(batch, t_max, length)

        # Audio.
        clip_shape = None
        audio_rows: list[np.ndarray | None] = []
        for sample in samples:
            if sample.waveform is None:
                audio_rows.append(None)
                continue
            clips, _ = cut_clips(sample.waveform, self.num_audio_clips)
            features = self._audio_features(clips)
            clip_shape = features.shape[1:]
            audio_rows.append(features)
        if clip_shape is None:
            clip_shape = self._audio_features(np.zeros((1, int(2 * SAMPLING_RATE)), np.float32)).shape[1:]
        audio_values = np.zeros((batch, self.num_audio_clips, *clip_shape), dtype=np.float32)
        audio_clip_mask = np.zeros((batch, self.num_audio_clips), dtype=bool)
        for b, row in enumerate(audio_rows):
            if row is not None:
                audio_values[b] = row
                audio_clip_mask[b] = True

        # Text.
        sequences, label_rows = [], []
        for b, sample in enumerate(samples):
            has_audio = bool(audio_clip_mask[b].any())
            chat = messages[b] or self.default_messages(sample.subtitle, questions[b], has_audio)
            if answers[b] is not None and chat and chat[-1]["role"] == "assistant":
                raise ValueError(f"sample {b}: give the answer either in `answers` or as the last message, not both")
            prompt = self.render_prompt(chat, add_generation_prompt=True)
            prompt = self.expand_placeholders(prompt, len(sample.utterances), has_audio, f"sample {b}")
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            labels = [-100] * len(ids)
            if answers[b] is not None:
                answer_ids = self.tokenizer(answers[b], add_special_tokens=False)["input_ids"]
                answer_ids = answer_ids + [self.tokenizer.eos_token_id]
                ids = ids + answer_ids
                labels = labels + answer_ids
            self._check_counts(ids, sample, has_audio, b)
            sequences.append(ids)
            label_rows.append(labels)
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = np.full((batch, width), pad, dtype=np.int64)
        attention_mask = np.zeros((batch, width), dtype=np.int64)
        labels_arr = np.full((batch, width), -100, dtype=np.int64)
        for b, (ids, labels) in enumerate(zip(sequences, label_rows, strict=True)):
            # Left padding: generation continues from the right end of every row.
            input_ids[b, width - len(ids) :] = ids
            attention_mask[b, width - len(ids) :] = 1
            labels_arr[b, width - len(ids) :] = labels

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
        if any(a is not None for a in answers):
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
            features["notes"] = [list(sample.notes) for sample in samples]
        return features

    def _audio_features(self, clips: np.ndarray) -> np.ndarray:
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

    def batch_decode(self, *args, **kwargs) -> list[str]:
        """The LLM tokenizer's ``batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs) -> str:
        """The LLM tokenizer's ``decode``."""
        return self.tokenizer.decode(*args, **kwargs)


def _resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

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
