"""The processor keeps transformers 5's processor contract: a video processor of its own, the standard video
keywords acting, unknown keywords refused, channels-first frames, token counts for serving engines, custom chat
templates and message objects (issue 18, items 10-13)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.processing.video_io import probe_video
from microemo.processing.video_processing_microemo import MicroEmoVideoProcessor

from .conftest import write_frames

NO_FACE = dict(landmarks=None, utterances=[])


def _stamps(processor, batch, row: int = 0) -> list[str]:
    """The timestamp text the Q-Former reads for each real frame of a row."""
    frames = int(batch["frame_mask"][row].sum())
    return [
        processor.qformer_tokenizer.decode(batch["qformer_input_ids"][row, t], skip_special_tokens=True).replace(" ", "")
        for t in range(frames)
    ]


@pytest.fixture(scope="module")
def counting_video(tmp_path_factory):
    """2 s at 10 frames per second, each frame a different grey level (frame i has level 10 * i)."""
    frames = [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(20)]
    return write_frames(tmp_path_factory.mktemp("video") / "count.mp4", frames, fps=10)


def test_the_processor_has_a_transformers_video_processor(processor):
    from transformers.video_processing_utils import BaseVideoProcessor

    assert isinstance(processor.video_processor, BaseVideoProcessor)
    assert "video_processor" in processor.get_attributes() and "image_processor" not in processor.get_attributes()


def test_num_frames_is_the_video_processors_setting_and_a_call_keyword(config, processor, face_video):
    """Item 10: `num_frames` no longer doubles as an __init__ argument of the processor."""
    with pytest.raises(TypeError, match="the video processor owns frame sampling"):
        MicroEmoProcessor(None, None, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), num_frames=4)
    fewer = MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), num_frames=3)
    assert fewer.video_processor.num_frames == 3 and fewer.num_frames == 3
    landmarks = np.full((5, 478, 3), np.nan, np.float32)
    out = processor(videos=face_video, num_frames=5, landmarks=landmarks, utterances=[])
    assert out["pixel_values"].shape[1] == 5


def test_fps_samples_one_frame_per_second_and_the_prompt_says_when(processor, face_video):
    duration = probe_video(face_video).duration
    count = int(round(duration))
    landmarks = np.full((count, 478, 3), np.nan, np.float32)
    out = processor(videos=face_video, fps=1, landmarks=landmarks, utterances=[], return_metadata=True)
    stamps = out["frame_timestamps"][0].numpy()
    assert out["pixel_values"].shape[1] == count
    assert np.allclose(np.diff(stamps), duration / count, atol=0.05)  # one frame per second of video
    assert abs(stamps[0] - 0.5 * duration / count) < 0.05  # at the centre of the first second
    assert _stamps(processor, out) == [f"thisframeissampledat{round(float(t), 1):.1f}second." for t in stamps]
    # The same keyword through the chat template, at another rate.
    conversation = processor.emer_conversation(face_video, utterances=[])
    two = processor.apply_chat_template(conversation, tokenize=True, return_dict=True, fps=2, landmarks=np.full(
        (2 * count, 478, 3), np.nan, np.float32))  # fmt: skip
    assert two["pixel_values"].shape[1] == 2 * count


def test_fps_beyond_the_models_frame_limit_is_refused_before_decoding(processor, config, face_video):
    limit = f"more than the model's max_frames={config.max_frames}"
    with pytest.raises(ValueError, match=rf"fps=10 on 8\.\d\d s gives 82 frames, {limit}"):
        processor(videos=face_video, fps=10)
    with pytest.raises(ValueError, match="exclusive"):
        processor(videos=face_video, fps=1, num_frames=4)


def test_do_sample_frames(processor, counting_video):
    """False keeps every frame of a file; given frames are kept unless sampling is asked for; True samples them."""
    few = MicroEmoVideoProcessor(size={"height": 64, "width": 64}, max_frames=32)
    every = few.fetch_video(counting_video, do_sample_frames=False)
    assert len(every.timestamps) == 20 and np.allclose(every.timestamps, np.arange(20) / 10)
    with pytest.raises(ValueError, match="do_sample_frames=False"):
        few.fetch_video(counting_video, do_sample_frames=False, num_frames=4)
    frames = every.frames
    assert few.fetch_video(frames).frames.shape[0] == 20  # kept as given
    sampled = few.fetch_video(frames, frame_timestamps=every.timestamps, num_frames=4)
    # Nearest frames to the centres of 4 equal segments of 2 s: 0.25, 0.75, 1.25, 1.75 s.
    assert np.allclose(sampled.timestamps, [0.2, 0.7, 1.2, 1.7]) or np.allclose(sampled.timestamps, [0.3, 0.8, 1.3, 1.8])
    assert [round(float(f.mean()) / 10) for f in sampled.frames] == [round(t * 10) for t in sampled.timestamps]
    default = MicroEmoVideoProcessor(num_frames=5, do_sample_frames=True, max_frames=32)
    assert default.fetch_video(frames).frames.shape[0] == 5
    out = processor(videos=frames, do_sample_frames=True, num_frames=2, **NO_FACE)
    assert out["pixel_values"].shape[1] == 2


def test_video_metadata_gives_frame_times(processor):
    from transformers.video_utils import VideoMetadata

    frames = np.zeros((4, 32, 32, 3), np.uint8)
    metadata = VideoMetadata(total_num_frames=4, fps=2.0)
    out = processor(videos=frames, video_metadata=metadata, return_metadata=True, **NO_FACE)
    assert out["frame_timestamps"][0].tolist() == [0.0, 0.5, 1.0, 1.5]


def test_channels_first_frames_are_the_same_video(processor):
    frames = np.random.default_rng(1).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    last = processor(videos=frames, **NO_FACE)
    first = processor(videos=np.transpose(frames, (0, 3, 1, 2)), **NO_FACE)
    as_tensor = processor(videos=torch.from_numpy(np.transpose(frames, (0, 3, 1, 2))), **NO_FACE)
    assert torch.equal(last["pixel_values"], first["pixel_values"])
    assert torch.equal(last["pixel_values"], as_tensor["pixel_values"])
    # A frame three pixels high reads as channels last unless the layout is named.
    tiny = np.zeros((2, 3, 5, 3), np.uint8)
    assert processor.video_processor.fetch_video(tiny).frames.shape == (2, 3, 5, 3)
    named = processor.video_processor.fetch_video(tiny, input_data_format="channels_first")
    assert named.frames.shape == (2, 5, 3, 3)


def test_unknown_keywords_are_refused_in_the_call_and_the_chat_template(processor, face_video):
    """Item 13: `fps` acts, a keyword nothing reads is an error, a variable the template reads is passed to it."""
    conversation = processor.emer_conversation(face_video, utterances=[])
    with pytest.raises(TypeError, match=r"\['colour'\], which is neither a processor argument .* nor a variable of the chat template"):
        processor.apply_chat_template(conversation, colour="red")
    with pytest.raises(TypeError, match=r"unexpected arguments \['colour'\]"):
        processor.apply_chat_template(conversation, tokenize=True, processor_kwargs={"colour": "red"})
    with pytest.raises(TypeError, match=r"unexpected arguments \['colour'\]"):
        processor.video_processor(np.zeros((1, 8, 8, 3), np.uint8), colour="red")
    template = "{% for m in messages %}{{ greeting }} {{ m['content'] }}{% endfor %}"
    messages = [{"role": "user", "content": "hi"}]
    assert processor.apply_chat_template(messages, chat_template=template, greeting="Hello") == "Hello hi"
    other = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert processor.apply_chat_template(messages, chat_template=other, template_kwargs={"unused": 1}) == "hi"


def test_the_standard_tools_and_documents_arguments_are_taken_not_swallowed(processor, face_video):
    """TRL calls apply_chat_template(..., tools=None): None renders as nothing; tools given to a template that
    has no tool use are refused, and a template that reads them gets them."""
    conversation = processor.emer_conversation(face_video, utterances=[])
    assert processor.apply_chat_template(conversation, tools=None, documents=None) == processor.apply_chat_template(
        conversation
    )
    with pytest.raises(TypeError, match=r"\['tools'\], which is neither a processor argument"):
        processor.apply_chat_template(conversation, tools=[{"name": "lookup"}])
    template = "{% for t in tools %}{{ t['name'] }}:{% endfor %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    messages = [{"role": "user", "content": "hi"}]
    assert processor.apply_chat_template(messages, chat_template=template, tools=[{"name": "lookup"}]) == "lookup:hi"


def test_num_multimodal_tokens_agree_with_the_expanded_prompt(processor, config, face_video, assets):
    counts = processor._get_num_multimodal_tokens(video_sizes=[(8, 64, 64), (8, 64, 64)], num_utterances=[2, 0],
                                                   audio_lengths=[16_000, 0])  # fmt: skip
    assert counts.num_video_tokens == [config.num_video_tokens(2), config.num_video_tokens(0)]
    assert counts.num_audio_tokens == [config.num_audio_query_tokens, 0]
    out = processor(videos=face_video, utterances=assets / "face_speech.srt")
    assert int((out["input_ids"] == config.video_token_id).sum()) == counts.num_video_tokens[0]
    assert int((out["input_ids"] == config.audio_token_id).sum()) == counts.num_audio_tokens[0]


def test_a_custom_template_without_generation_blocks_renders_but_gives_no_labels(processor, face_video):
    """Item 12: the {% generation %} block matters only when labels are built."""
    template = (
        "{% for m in messages %}{{ m['role'] }}: {% for p in m['content'] %}"
        "{% if p['type'] == 'video' %}<video>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{{ '\\n' }}{% endfor %}"
    )
    conversation = processor.emer_conversation(face_video, question="Why?", answer="Happy.", utterances=[])
    assert processor.apply_chat_template(conversation, chat_template=template) == "user: <video>Why?\nassistant: Happy.\n"
    with pytest.raises(ValueError, match=r"marks no answer.*\{% generation %\}"):
        processor.apply_chat_template(conversation, chat_template=template, tokenize=True)


@dataclass
class Part:
    type: str
    text: str | None = None
    path: str | None = None


@dataclass
class Message:
    role: str
    content: list


def test_message_objects_are_read_like_dicts(processor, face_video):
    as_dicts = processor.emer_conversation(face_video, question="Why?", answer="Calm.", utterances=[])
    as_objects = [
        Message("user", [Part("video", path=str(face_video)), Part("text", text="Why?")]),
        Message("assistant", [Part("text", text="Calm.")]),
    ]
    assert processor.apply_chat_template(as_objects) == processor.apply_chat_template(as_dicts)
    kwargs = dict(tokenize=True, return_dict=True, utterances=[])
    from_objects = processor.apply_chat_template(as_objects, **kwargs)
    del as_dicts[0]["content"][0]["utterances"]
    from_dicts = processor.apply_chat_template(as_dicts, **kwargs)
    for key in from_dicts:
        assert torch.equal(from_objects[key], from_dicts[key]), key


def test_auto_video_processor_loads_ours_without_the_project(processor, tmp_path, counting_video):
    processor.save_pretrained(tmp_path / "saved")
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["microemo"] = None
        from transformers import AutoVideoProcessor
        video_processor = AutoVideoProcessor.from_pretrained({str(tmp_path / "saved")!r}, trust_remote_code=True)
        out = video_processor({str(counting_video)!r}, fps=2, return_metadata=True)
        print(json.dumps({{"class": type(video_processor).__name__, "shape": list(out["pixel_values"].shape),
                          "times": out["video_metadata"][0].frame_timestamps}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"] == "MicroEmoVideoProcessor"
    assert report["shape"] == [1, 4, 3, 64, 64]
    assert np.allclose(report["times"], [0.2, 0.7, 1.2, 1.7], atol=0.11)


def test_pixel_keywords_act_and_a_keyword_given_twice_is_refused(processor):
    frames = np.full((2, 32, 32, 3), 200, np.uint8)
    raw = processor(videos=frames, do_rescale=False, do_normalize=False, **NO_FACE)
    assert torch.allclose(raw["pixel_values"], torch.tensor(200.0), atol=0.5)
    nested = processor(videos=frames, videos_kwargs={"do_normalize": False}, common_kwargs={"return_tensors": "pt"},
                       return_tensors="pt", **NO_FACE)  # fmt: skip
    assert float(nested["pixel_values"].max()) <= 1.0  # rescaled, not normalised
    with pytest.raises(ValueError, match="`do_normalize` is given twice, directly and in videos_kwargs"):
        processor(videos=frames, videos_kwargs={"do_normalize": False}, do_normalize=False, **NO_FACE)
    with pytest.raises(TypeError, match=r"unexpected arguments \['size'\]"):
        processor(videos=frames, size={"height": 32, "width": 32}, **NO_FACE)


def test_mm_token_type_ids_mark_video_and_audio_tokens(processor, config, face_video, assets):
    out = processor(videos=face_video, utterances=assets / "face_speech.srt", return_mm_token_type_ids=True)
    types = out["mm_token_type_ids"][0]
    assert torch.equal(types == 2, out["input_ids"][0] == config.video_token_id)
    assert torch.equal(types == 3, out["input_ids"][0] == config.audio_token_id)
    assert int((types == 2).sum()) == config.num_video_tokens(2) and int((types == 3).sum()) == config.num_audio_query_tokens


def test_the_tokenizers_saved_padding_is_the_default(config):
    tokenizer = build_tiny_llm_tokenizer()
    tokenizer.init_kwargs.update(padding="max_length", max_length=300)
    processor = MicroEmoProcessor.from_model_config(config, tokenizer, build_tiny_qformer_tokenizer())
    out = processor(videos=np.zeros((2, 32, 32, 3), np.uint8), **NO_FACE)
    assert out["input_ids"].shape[1] == 300
    assert processor(videos=np.zeros((2, 32, 32, 3), np.uint8), padding=True, **NO_FACE)["input_ids"].shape[1] < 300


def test_saving_leaves_the_processor_equal_to_its_reloaded_copy_and_loads_without_remote_code(processor, tmp_path):
    """With the project installed, the Auto classes know MicroEmo's processor like a library model's."""
    from transformers import AutoProcessor, AutoVideoProcessor

    before = processor.to_dict()
    processor.save_pretrained(tmp_path / "saved")
    assert processor.to_dict() == before
    reloaded = MicroEmoProcessor.from_pretrained(tmp_path / "saved")
    reloaded.save_pretrained(tmp_path / "again")
    again = MicroEmoProcessor.from_pretrained(tmp_path / "again")
    assert again.to_dict() == reloaded.to_dict()
    assert repr(again.video_processor) == repr(reloaded.video_processor)
    assert isinstance(AutoVideoProcessor.from_pretrained(tmp_path / "saved"), MicroEmoVideoProcessor)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path / "saved"), MicroEmoProcessor)
