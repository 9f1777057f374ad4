"""The model's own pipeline: a video in, an explanation of the person's emotions and their labels out.

Shipped with a checkpoint (``config.custom_pipelines`` names it), so that

    pipe = pipeline("video-emotion-explanation", model="folder-or-repo", trust_remote_code=True)
    pipe("clip.mp4")  # {"explanation": ..., "labels": [...], "utterances": [...], "face_found": ..., ...}

works with only transformers installed (plus PyAV to read the file). It asks the paper's EMER question with
greedy decoding, through the processor's chat template, exactly as ``microemo predict`` does. Imports nothing
but transformers and torch.
"""

from __future__ import annotations

import torch
from transformers import Pipeline

TASK = "video-emotion-explanation"


class MicroEmoEmotionPipeline(Pipeline):
    """Explain the emotions in one video per call (a list of videos runs one after the other).

    Inputs: a video path (or frames / a ``DecodedVideo``), or a dict ``{"video": ..., "utterances": ...,
    "subtitle": ..., "question": ...}``. Call arguments ``utterances``, ``subtitle``, ``question`` and
    ``max_new_tokens`` (default 256) apply to every input; other keywords go to ``generate``.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, utterances=None, subtitle=None, question=None, max_new_tokens=None, **generate_kwargs):
        preprocess = {key: value for key, value in
                      (("utterances", utterances), ("subtitle", subtitle), ("question", question)) if value is not None}  # fmt: skip
        forward = {"max_new_tokens": max_new_tokens or 256, **generate_kwargs}
        return preprocess, forward, {}

    def preprocess(self, video, utterances=None, subtitle=None, question=None) -> dict:
        if isinstance(video, dict):
            options = dict(video)
            if "video" not in options:
                raise ValueError(f"a dict input needs a 'video' key, got keys {sorted(options)}")
            video = options.pop("video")
            utterances = options.pop("utterances", utterances)
            subtitle = options.pop("subtitle", subtitle)
            question = options.pop("question", question)
            if options:
                raise ValueError(f"unknown input keys {sorted(options)}; use video, utterances, subtitle, question")
        conversation = self.processor.emer_conversation(video, utterances=utterances, subtitle=subtitle, question=question)
        inputs = self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            return_metadata=True,
        )  # fmt: skip
        metadata = {key: inputs.pop(key) for key in ("face_found", "frame_timestamps", "utterance_spans", "notes")}
        return {"inputs": dict(inputs), "metadata": metadata}

    def _forward(self, model_inputs: dict, **generate_kwargs) -> dict:
        inputs = model_inputs["inputs"]
        generate_kwargs.setdefault("do_sample", False)
        output = self.model.generate(**inputs, **generate_kwargs)
        return {"generated": output[:, inputs["input_ids"].shape[1] :], "metadata": model_inputs["metadata"],
                "audio": bool(inputs["audio_clip_mask"].any())}  # fmt: skip

    def postprocess(self, model_outputs: dict) -> dict:
        text = self.processor.decode(model_outputs["generated"][0], skip_special_tokens=True).strip()
        metadata = model_outputs["metadata"]
        face_found = metadata["face_found"][0]
        return {
            "explanation": text,
            "labels": self.processor.post_process_emotions(text),
            "utterances": [{"start": s, "end": e, "text": t} for s, e, t in metadata["utterance_spans"][0]],
            "face_found": int(torch.as_tensor(face_found).sum()),
            "frames": int(torch.isfinite(torch.as_tensor(metadata["frame_timestamps"][0])).sum()),
            "audio": model_outputs["audio"],
            "notes": list(metadata["notes"][0]),
        }


__all__ = ["TASK", "MicroEmoEmotionPipeline"]
