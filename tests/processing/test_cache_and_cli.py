"""The landmark cache (content-keyed, atomic) and `microemo visualize`."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest
from PIL import Image

import microemo.processing.face_clues as face_clues_module
from microemo.presets import tiny_random_config
from microemo.processing.cli import register
from microemo.processing.landmark_cache import CachedFaces, LandmarkCache
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer


@pytest.fixture()
def counting(monkeypatch):
    """Counts the face-mesh runs the processor makes."""
    calls = []
    original = face_clues_module.detect_landmarks

    def wrapped(frames, backend=None, **kwargs):
        calls.append(len(frames))
        return original(frames, backend, **kwargs)

    monkeypatch.setattr(face_clues_module, "detect_landmarks", wrapped)
    return calls


def test_second_pass_reads_the_cache(tmp_path, face_video, counting):
    processor = MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), cache_dir=str(tmp_path / "cache")
    )
    first = processor(videos=face_video, utterances=[])
    second = processor(videos=face_video, utterances=[])
    assert counting == [8]
    assert all((first[k] == second[k]).all() for k in first)
    entries = list((tmp_path / "cache").rglob("*"))
    assert [p.suffix for p in entries if p.is_file()] == [".npz"]
    assert not [p for p in entries if p.name.startswith(".tmp-")]
    # The key is the file's content: a copy under another name hits the same entry ...
    copy = tmp_path / "renamed.mp4"
    shutil.copy(face_video, copy)
    processor(videos=copy, utterances=[])
    assert counting == [8]
    # ... and other sampling settings miss.
    processor(videos=face_video, utterances=[], num_frames=4)
    assert counting == [8, 4]


def test_cache_entries_round_trip_and_survive_corruption(tmp_path, face_video):
    cache = LandmarkCache(tmp_path)
    key = cache.key(face_video, {"num_frames": 2})
    assert key != cache.key(face_video, {"num_frames": 3})
    assert cache.get(key) is None
    entry = CachedFaces(np.array([0.5, 1.5]), np.random.rand(2, 478, 3).astype(np.float32), np.array([True, False]))
    path = cache.put(key, entry)
    got = cache.get(key)
    np.testing.assert_array_equal(got.landmarks, entry.landmarks)
    np.testing.assert_array_equal(got.face_found, entry.face_found)
    path.write_bytes(b"half a file")
    assert cache.get(key) is None  # unreadable entries are recomputed, not trusted


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="microemo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_visualize_writes_one_picture(tmp_path, face_video, assets, capsys):
    out = tmp_path / "face.png"
    code = run_cli(["visualize", str(face_video), "-o", str(out), "--utterances", str(assets / "face_speech.srt")])
    assert code == 0
    image = Image.open(out)
    assert image.width > 1500 and image.height > 400
    # Region colours are drawn over the face: the picture is not just the frames.
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    purple = (pixels[:, 0] > 150) & (pixels[:, 2] > 150) & (pixels[:, 1] < 120)
    assert purple.sum() > 50
    assert "8 frames (8 with a face), 2 utterances, 8 audio clips" in capsys.readouterr().out


def test_visualize_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert run_cli(["visualize", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "bad.mp4: not a readable media file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_visualize_is_a_microemo_command_and_reads_a_saved_processor(tmp_path, rotated_video, capsys):
    from microemo.cli import build_parser
    from microemo.processing.cli import run_visualize

    args = build_parser().parse_args(["visualize", "clip.mp4", "-o", "clip.png"])
    assert args.func is run_visualize
    processor = MicroEmoProcessor.from_model_config(
        tiny_random_config(), build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer(), num_frames=3
    )
    processor.save_pretrained(tmp_path / "processor")
    out = tmp_path / "rotated.png"
    assert run_cli(["visualize", str(rotated_video), "-o", str(out), "--processor", str(tmp_path / "processor")]) == 0
    assert "3 frames (3 with a face), 0 utterances, no audio" in capsys.readouterr().out
    assert Image.open(out).width > 600
