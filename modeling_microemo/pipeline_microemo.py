"""The model's own pipeline: a video in, an explanation of the person's emotions and their labels out.

Shipped with a checkpoint (``config.custom_pipelines`` names it), so that

    pipe = pipeline("video-emotion-explanation", model="folder-or-repo", trust_remote_code=True)
    pipe("clip.mp4")  # {"explanation": ..., "labels": [...], "utterances": [...], "face_found": ..., ...}

works with only transformers installed (plus PyAV to read the file). It asks the paper's EMER question with
greedy decoding, through the processor's chat template, exactly as ``microemo predict`` does. Imports nothing
but transformers and torch.
"""

from __future__ import annotations

import collections.abc
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

TASK = "video-emotion-explanation"
# What `config.custom_pipelines` holds for this pipeline (`pipeline(folder)` reads it to find the class).
PIPELINE_INFO = {"impl": "pipeline_microemo.MicroEmoEmotionPipeline", "pt": ["AutoModel"], "type": "multimodal"}
# Per-input options: as call arguments (for every input) or as keys of a dict input (for that one).
INPUT_OPTIONS = ("utterances", "subtitle", "question", "landmarks", "clue_masks")
# MicroEmo's per-sample extras that ride on the conversation's video part (the processor reads them there).
VIDEO_PART_OPTIONS = ("landmarks", "clue_masks")


def _concatenate(items: list[dict]) -> dict:
    """DataLoader collate: the samples differ in frames, utterances and clips, so they travel as one list of
    conversations and the processor pads them together (transformers' `pad_collate_fn` pads tokenizer outputs
    only, and refuses a processor whose tokenizer and feature extractor pad on different sides)."""
    return {"conversations": [conversation for item in items for conversation in item["conversations"]]}


class MicroEmoEmotionPipeline(Pipeline):
    """Explain the emotions in videos.

    Inputs: a video path (or frames / a ``DecodedVideo``), or a dict ``{"video": ..., "utterances": ...,
    "subtitle": ..., "question": ..., "landmarks": ..., "clue_masks": ...}``; a list of them, batched with
    ``batch_size``. Call arguments ``utterances``, ``subtitle``, ``question``, ``landmarks``, ``clue_masks`` and
    ``max_new_tokens`` (default 256) apply to every input; other keywords go to ``generate``. ``landmarks``
    ([T, 478, 2 or 3] face-mesh points of the T sampled frames, NaN rows where no face) or ``clue_masks`` stand in
    for MediaPipe, which is then not needed.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, max_new_tokens=None, **kwargs):
        preprocess = {key: kwargs.pop(key) for key in INPUT_OPTIONS if kwargs.get(key) is not None}
        for key in INPUT_OPTIONS:
            kwargs.pop(key, None)
        forward = {"max_new_tokens": max_new_tokens or 256, **kwargs}
        return preprocess, forward, {}

    def preprocess(self, video, **options) -> dict:
        if isinstance(video, dict):
            given = dict(video)
            if "video" not in given:
                raise ValueError(f"a dict input needs a 'video' key, got keys {sorted(given)}")
            video = given.pop("video")
            unknown = sorted(set(given) - set(INPUT_OPTIONS))
            if unknown:
                raise ValueError(f"unknown input keys {unknown}; use video, {', '.join(INPUT_OPTIONS)}")
            options = {**options, **{key: value for key, value in given.items() if value is not None}}
        conversation = self.processor.emer_conversation(
            video, utterances=options.get("utterances"), subtitle=options.get("subtitle"), question=options.get("question")
        )
        video_part = next(part for part in conversation[0]["content"] if part.get("type") == "video")
        video_part.update({key: options[key] for key in VIDEO_PART_OPTIONS if key in options})
        return {"conversations": [conversation]}

    def get_iterator(self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params):
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = min(num_workers, 1)  # an iterable dataset split across workers would repeat inputs
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_concatenate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict, **generate_kwargs) -> dict:
        inputs = self.processor.apply_chat_template(
            model_inputs["conversations"], add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", return_metadata=True,
        )  # fmt: skip
        metadata = {key: inputs.pop(key) for key in ("face_found", "frame_timestamps", "utterance_spans", "notes")}
        inputs = {key: value.to(self.device) if isinstance(value, torch.Tensor) else value for key, value in inputs.items()}
        generate_kwargs.setdefault("do_sample", False)
        output = self.model.generate(**inputs, **generate_kwargs)
        generated = output[:, inputs["input_ids"].shape[1] :].cpu()  # prompts are left-padded: all end here
        audio = inputs["audio_clip_mask"].any(dim=1).tolist()
        # One entry per sample under one key: the pipeline's batch iterator hands postprocess one entry each.
        results = [
            {"generated": generated[i], "audio": audio[i], **{key: values[i] for key, values in metadata.items()}}
            for i in range(generated.shape[0])
        ]
        return {"results": results}

    def postprocess(self, model_outputs: dict) -> dict:
        result = model_outputs["results"]
        if isinstance(result, list):  # batch_size 1: the iterator did not split the batch
            (result,) = result
        text = self.processor.decode(result["generated"], skip_special_tokens=True).strip()
        return {
            "explanation": text,
            "labels": self.processor.post_process_emotions(text),
            "utterances": [{"start": s, "end": e, "text": t} for s, e, t in result["utterance_spans"]],
            "face_found": int(torch.as_tensor(result["face_found"]).sum()),
            "frames": int(torch.isfinite(torch.as_tensor(result["frame_timestamps"])).sum()),
            "audio": bool(result["audio"]),
            "notes": list(result["notes"]),
        }

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Save the model (naming this pipeline in its config), the processor and this file, so that
        ``pipeline(TASK, model=save_directory, trust_remote_code=True)`` gives this pipeline back."""
        custom = dict(getattr(self.model.config, "custom_pipelines", None) or {})
        custom[TASK] = dict(PIPELINE_INFO)
        self.model.config.custom_pipelines = custom
        super().save_pretrained(save_directory, **kwargs)
        # transformers' Pipeline saves a tokenizer, feature extractor or image processor, not a processor.
        self.processor.save_pretrained(save_directory)
        target = Path(save_directory) / Path(__file__).name
        if not target.exists() or not target.samefile(__file__):
            shutil.copyfile(__file__, target)


__all__ = ["PIPELINE_INFO", "TASK", "MicroEmoEmotionPipeline"]
