"""The picture: the chosen face marked on every frame, and the band of per-utterance emotions over time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from microemo.cli import main
from microemo.processing.face_tracking import choose_face
from microemo.processing.visualize import _draw_band, _draw_faces

from .conftest import synthetic_face

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure()
    return figure, figure.add_subplot()


def test_every_tracked_face_gets_a_box_and_the_chosen_one_is_green():
    faces = [[synthetic_face(0.05, 0.3, 0.1), synthetic_face(0.55, 0.4, 0.1, seed=1)] for _ in range(3)]
    choice = choose_face(faces, np.arange(3.0), None, face="largest")
    figure, axis = _axis()
    _draw_faces(axis, choice, 1, 224)
    edges = [patch.get_edgecolor()[:3] for patch in axis.patches]
    assert len(edges) == 2 and edges.count((0.1, 0.85, 0.2)) == 1
    assert [text.get_text() for text in axis.texts] == ["0", "1: largest"]


def test_the_band_has_one_box_per_utterance_coloured_by_its_first_label():
    timeline = [{"start": 0.5, "end": 2.0, "labels": ["happy", "surprised"]},
                {"start": 3.0, "end": 4.5, "labels": ["sad"]},
                {"start": 5.0, "end": 6.0, "labels": ["happy"]},
                {"start": 7.0, "end": 7.5, "labels": []}]  # fmt: skip
    figure, axis = _axis()
    _draw_band(axis, timeline)
    boxes = axis.patches
    assert [(b.get_x(), b.get_width()) for b in boxes] == [(0.5, 1.5), (3.0, 1.5), (5.0, 1.0), (7.0, 0.5)]
    colours = [b.get_facecolor()[:3] for b in boxes]
    assert colours[0] == colours[2] != colours[1] and colours[3] == (0.8, 0.8, 0.8)
    assert [t.get_text().strip() for t in axis.texts] == ["happy, surprised", "sad", "happy", "-"]


def test_visualize_draws_a_prediction_row_and_refuses_a_file_without_that_video(dialogue_clip, tmp_path, capsys):
    video, spans = dialogue_clip
    rows = tmp_path / "rows.jsonl"
    timeline = [{**span, "explanation": "", "labels": ["happy"]} for span in spans]
    rows.write_text(json.dumps({"name": video.stem, "timeline": timeline}) + "\n")
    picture = tmp_path / "dialogue.png"
    assert main(["visualize", str(video), "-o", str(picture), "--predictions", str(rows), "--frames", "4"]) == 0
    assert picture.stat().st_size > 10_000
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"name": "another", "timeline": []}) + "\n")
    assert main(["visualize", str(video), "-o", str(picture), "--predictions", str(other)]) == 2
    assert "has no row named 'dialogue'" in capsys.readouterr().err


@pytest.mark.parametrize("face", ["9", "loudest"])
def test_visualize_refuses_a_bad_face(dialogue_clip, tmp_path, capsys, face):
    video, _ = dialogue_clip
    assert main(["visualize", str(video), "-o", str(tmp_path / "x.png"), "--face", face, "--frames", "4"]) == 2
    assert "face" in capsys.readouterr().err


def test_a_picture_that_fails_to_draw_leaves_no_open_figure(tiny_processor, monkeypatch):
    import matplotlib.pyplot as plt

    from microemo.processing import visualize

    sample = tiny_processor.prepare_sample(str(ASSETS / "face_speech.mp4"), utterances=str(ASSETS / "face_speech.srt"))
    options = {"image_size": tiny_processor.image_size, "patch_size": tiny_processor.patch_size,
               "num_audio_clips": tiny_processor.num_audio_clips}  # fmt: skip
    open_before = len(plt.get_fignums())
    with pytest.raises(ValueError, match="bogus"):
        visualize.draw_sample(sample, "unused.png", region_names=["bogus"], **options)

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(visualize, "_draw_timeline", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        visualize.draw_sample(sample, "unused.png", region_names=list(tiny_processor.clue_regions), **options)
    assert len(plt.get_fignums()) == open_before
