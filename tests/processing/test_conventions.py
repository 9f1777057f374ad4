"""The processor as transformers, TRL, datasets and DataLoader users call it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from microemo.hub import CardInfo, save_model_folder
from microemo.modeling_microemo import MicroEmoForConditionalGeneration
from microemo.presets import tiny_random_config


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return MicroEmoForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model, processor):
    return save_model_folder(model, processor, tmp_path_factory.mktemp("tiny"), CardInfo(weights="random"))


def run_python(script: str, cwd, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_chat_template_then_generate_through_remote_code(folder, face_video, assets, tmp_path):
    """apply_chat_template(tokenize=True, return_dict=True) -> generate, with the project's packages blocked; a video
    with sound brings 2 utterance windows + the global one of video tokens and the audio tokens."""
    script = f"""
        import json, sys
        sys.modules["microemo"] = None
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        conversation = [{{"role": "user", "content": [
            {{"type": "video", "path": {str(face_video)!r}, "utterances": {str(assets / "face_speech.srt")!r}}},
            {{"type": "text", "text": "How does she feel?"}},
        ]}}]
        inputs = processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        ids = inputs["input_ids"][0].tolist()
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        print(json.dumps({{"video": ids.count(model.config.video_token_id), "audio": ids.count(model.config.audio_token_id),
                          "new": out.shape[1] - len(ids)}}))
    """
    counts = json.loads(run_python(script, tmp_path).stdout.strip().splitlines()[-1])
    config = tiny_random_config()
    assert counts == {"video": config.num_video_tokens(2), "audio": config.num_audio_query_tokens, "new": 5}


def test_a_batch_of_two_conversations_gives_each_its_own_greedy_text(processor, model, face_video, noface_video):
    conversations = [
        processor.emer_conversation(face_video, question="What does her face show, and what does her voice say?"),
        processor.emer_conversation(noface_video, question="Mood?", utterances=[]),
    ]
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True)
    batch = processor.apply_chat_template(conversations, **kwargs)
    assert batch["attention_mask"].sum(1).tolist()[0] != batch["attention_mask"].sum(1).tolist()[1]
    with torch.no_grad():
        together = model.generate(**batch, max_new_tokens=6, do_sample=False)[:, batch["input_ids"].shape[1] :]
        for row, conversation in enumerate(conversations):
            alone = processor.apply_chat_template(conversation, **kwargs)
            own = model.generate(**alone, max_new_tokens=6, do_sample=False)[:, alone["input_ids"].shape[1] :]
            assert processor.decode(together[row]) == processor.decode(own[0])


def test_an_assistant_turn_becomes_answer_only_labels_and_no_generation_prompt(processor, rotated_video):
    question = processor.emer_conversation(rotated_video, utterances=[])
    example = processor.emer_conversation(rotated_video, utterances=[], answer="She looks calm.")
    rendered = processor.apply_chat_template(example, add_generation_prompt=True)
    assert rendered.endswith("###Assistant: She looks calm.</s>")  # no second generation prompt
    train = processor.apply_chat_template(example, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    prompt = processor.apply_chat_template(question, add_generation_prompt=True, tokenize=True, return_dict=True)
    labels = train["labels"][0]
    supervised = labels[labels != -100]
    assert processor.decode(supervised) == "She looks calm.</s>"
    assert torch.equal(train["assistant_masks"][0], labels != -100)
    # The ids before the answer are exactly the ids generation starts from.
    n = prompt["input_ids"].shape[1]
    assert torch.equal(train["input_ids"][0, :n], prompt["input_ids"][0])
    assert (labels[:n] == -100).all()


def test_the_processor_takes_a_rendered_prompt_with_standard_kwargs(processor, face_video, noface_video):
    conversations = [processor.emer_conversation(face_video, utterances=[]), processor.emer_conversation(noface_video, utterances=[])]
    prompts = processor.apply_chat_template(conversations, add_generation_prompt=True)
    assert all(p.count("<video>") == 1 for p in prompts)
    direct = processor(
        text=prompts, videos=[face_video, noface_video], utterances=[[], []], padding=True, return_tensors="pt",
        padding_side="right", pad_to_multiple_of=8,
    )  # fmt: skip
    chat = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True, return_dict=True, padding_side="right", pad_to_multiple_of=8)
    assert direct["input_ids"].shape[1] % 8 == 0
    assert direct["attention_mask"][:, 0].all()  # right padding
    for key in chat:
        assert torch.equal(direct[key], chat[key]), key
    # transformers' nested form (a list of videos per sample) and `images=None` are accepted.
    nested = processor(images=None, text=prompts, videos=[[face_video], [noface_video]], utterances=[[], []], padding_side="right", pad_to_multiple_of=8)
    assert torch.equal(nested["input_ids"], direct["input_ids"])


def test_the_old_call_forms_say_what_to_write_instead(processor, face_video):
    with pytest.raises(TypeError, match=r"videos="):
        processor(face_video)
    with pytest.raises(TypeError, match=r"apply_chat_template.*emer_conversation\(video, answer=\.\.\.\)"):
        processor(videos=face_video, answers="Happy.")
    with pytest.raises(TypeError, match=r"apply_chat_template"):
        processor(videos=face_video, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match=r"exactly one <video> placeholder.*apply_chat_template"):
        processor("What does she feel?", videos=face_video, utterances=[])
    with pytest.raises(TypeError, match=r"unexpected arguments \['colour'\]"):
        processor(videos=face_video, colour="red")
    with pytest.raises(ValueError, match="does not truncate"):
        processor(videos=face_video, utterances=[], truncation=True)


def test_conversation_errors_name_the_conversation(processor, face_video):
    no_video = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    with pytest.raises(ValueError, match=r"conversation 1: MicroEmo takes exactly one video part per conversation, found 0"):
        processor.apply_chat_template([processor.emer_conversation(face_video), no_video], tokenize=True)
    remote = [{"role": "user", "content": [{"type": "video", "url": "https://example.org/a.mp4"}]}]
    with pytest.raises(ValueError, match="is a URL; download the video"):
        processor.apply_chat_template(remote, tokenize=True)


def _prepare(processor, path: str) -> int:
    return int(processor.prepare_sample(path, utterances=[]).face_found.sum())


def test_datasets_map_with_two_processes_after_a_call_here_and_its_cache(processor, face_video, noface_video, tmp_path):
    """The face mesh runs in a worker process per process: forked map workers work after the parent used it,
    and the processor hashes the same every time, so the map's cache is reused."""
    import datasets

    processor(videos=face_video, utterances=[])  # the parent has now run the face mesh
    datasets.Dataset.from_dict({"video": [str(face_video), str(noface_video)] * 2}).save_to_disk(tmp_path / "data")
    data = datasets.load_from_disk(str(tmp_path / "data"))

    def faces(row):
        return {"faces": _prepare(processor, row["video"])}

    first = data.map(faces, num_proc=2)
    assert first["faces"] == [8, 0, 8, 0]
    second = data.map(faces, num_proc=2)
    assert [f["filename"] for f in second.cache_files] == [f["filename"] for f in first.cache_files]


class _Videos(torch.utils.data.Dataset):
    def __init__(self, processor, paths):
        self.processor, self.paths = processor, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.processor.prepare_sample(self.paths[index], utterances=[])


def test_dataloader_workers_after_a_call_here(processor, face_video, noface_video):
    processor(videos=noface_video, utterances=[])
    loader = torch.utils.data.DataLoader(
        _Videos(processor, [str(face_video), str(noface_video)] * 2), batch_size=2, num_workers=2, collate_fn=processor.collate
    )
    batches = list(loader)
    assert [b["pixel_values"].shape[0] for b in batches] == [2, 2]
    assert [bool(b["clue_masks"][0].any()) for b in batches] == [True, True]


def test_the_fingerprint_is_the_same_in_two_processes(folder, tmp_path):
    script = f"""
        import sys
        sys.modules["microemo"] = None
        from datasets.fingerprint import Hasher
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        import numpy as np
        processor(videos=np.zeros((2, 32, 32, 3), np.uint8), landmarks=np.full((2, 478, 3), np.nan, np.float32), utterances=[])
        print(Hasher.hash(processor))
    """
    hashes = {run_python(script, tmp_path).stdout.strip().splitlines()[-1] for _ in range(2)}
    assert len(hashes) == 1


def test_the_hub_path_needs_only_torch_transformers_and_av(folder, face_video, tmp_path):
    """No scipy, mediapipe, silero-vad or project: the processor loads and works on a video file with given landmarks;
    face-meshing then says exactly what to install."""
    script = f"""
        import sys
        for name in ("microemo", "scipy", "mediapipe", "silero_vad", "matplotlib"):
            sys.modules[name] = None
        import numpy as np
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        out = processor(videos={str(face_video)!r}, landmarks=np.full((8, 478, 3), np.nan, np.float32))
        print("ok", tuple(out["audio_values"].shape))
        try:
            processor(videos={str(face_video)!r})
        except ImportError as error:
            print("ERROR:", error)
    """
    out = run_python(script, tmp_path).stdout
    assert "ok (1, 8, 1, 128, 204)" in out
    assert "ERROR: Face landmarks need mediapipe: pip install mediapipe==0.10.21 'numpy<2' 'protobuf<5'" in out


def test_warnings_use_the_microemo_logger_and_follow_transformers_verbosity(processor, caplog):
    from transformers.utils import logging as hf_logging

    frames = np.zeros((2, 32, 32, 3), np.uint8)
    no_face = np.full((2, 478, 3), np.nan, np.float32)
    with caplog.at_level(logging.WARNING, logger="microemo"):
        processor(videos=frames, landmarks=no_face, utterances=[])
    assert [r.name for r in caplog.records if "no face found" in r.getMessage()] == ["microemo.processing"]
    caplog.clear()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with caplog.at_level(logging.WARNING, logger="microemo"):
            processor(videos=frames, landmarks=no_face, utterances=[])
    finally:
        hf_logging.set_verbosity(verbosity)
    assert not [r for r in caplog.records if "no face found" in r.getMessage()]


def test_mediapipe_stays_quiet_unless_asked(face_video, tmp_path):
    script = f"""
        from microemo.processing.face_mesh import shared_worker
        from microemo.processing.video_io import decode_video
        print(shared_worker().landmarks(decode_video({str(face_video)!r}, 2).frames)[1].tolist())
    """
    quiet = run_python(script, tmp_path)
    assert quiet.stdout.strip() == "[True, True]"
    assert "TensorFlow Lite" not in quiet.stderr and "W0000" not in quiet.stderr
    import os

    loud = run_python(script, tmp_path, env={**os.environ, "MICROEMO_MEDIAPIPE_LOGS": "1"})
    assert "TensorFlow Lite" in loud.stderr


def test_a_progress_bar_over_many_videos(processor, capsys):
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    landmarks = np.full((2, 478, 3), np.nan, np.float32)
    processor(videos=[frames] * 4, landmarks=[landmarks] * 4, utterances=[[]] * 4)
    assert "preparing videos" in capsys.readouterr().err


def test_video_parts_take_frames_or_a_decoded_video_and_an_audio_part_its_waveform(processor, face_video, config):
    from microemo.processing.video_io import decode_video

    frames = np.zeros((3, 32, 32, 3), np.uint8)
    conversation = [{"role": "user", "content": [
        {"type": "video", "video": frames, "landmarks": np.full((3, 478, 3), np.nan, np.float32), "utterances": []},
        {"type": "audio", "audio": np.zeros(16_000, np.float32)},
        {"type": "text", "text": "Hi"},
    ]}]  # fmt: skip
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert prompt.index("<video>") < prompt.index("<audio>") < prompt.index("Hi")
    out = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert out["pixel_values"].shape[:2] == (1, 3) and out["audio_clip_mask"].all()
    assert int((out["input_ids"] == config.audio_token_id).sum()) == config.num_audio_query_tokens
    decoded = decode_video(face_video, 4)
    conversation = [{"role": "user", "content": [{"type": "video", "video": decoded, "utterances": []}]}]
    out = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert out["pixel_values"].shape[:2] == (1, 4)


def test_torch_work_in_forked_workers_after_the_parent_used_torchs_threads(face_video, tmp_path):
    """silero-vad and the frame resize run torch: in a datasets.map worker forked from a process that had used torch's
    thread pool they hung or crashed (OpenMP does not survive a fork); forked children now run torch on one thread."""
    script = f"""
        import datasets
        import numpy as np
        from microemo.processing.audio_io import load_audio
        from microemo.processing.video_processing_microemo import MicroEmoVideoProcessor
        from microemo.processing.vad import voice_activity
        waveform = load_audio({str(face_video)!r})
        resize = MicroEmoVideoProcessor()
        frames = np.full((8, 360, 480, 3), 100, np.uint8)
        first = len(voice_activity(waveform, 16000, "silero").spans), resize(frames)["pixel_values"].shape[1]
        def work(row):
            return {{"spans": len(voice_activity(waveform, 16000, "silero").spans),
                     "frames": resize(frames)["pixel_values"].shape[1]}}
        out = datasets.Dataset.from_dict({{"i": [0, 1, 2, 3]}}).map(work, num_proc=2)
        print(first, list(out["spans"]), list(out["frames"]))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(2, 8) [2, 2, 2, 2] [8, 8, 8, 8]"
