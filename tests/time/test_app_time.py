"""The web page with per-utterance emotions: the band of labels over time on the picture."""

from __future__ import annotations

from microemo.app import EmotionPage
from microemo.predict import Predictor

from .test_transcript import _model_folder


def test_the_page_adds_the_band_of_per_utterance_emotions(tmp_path, dialogue_clip, monkeypatch):
    from microemo.predict import load_predictor

    video, _ = dialogue_clip
    predictor = load_predictor(_model_folder(tmp_path), max_new_tokens=3, num_workers=0, per_utterance=True)
    assert isinstance(predictor, Predictor) and predictor.face == "speaker"
    page = EmotionPage(predictor, max_seconds=30)
    drawn = []
    original = page.draw
    monkeypatch.setattr(page, "draw", lambda sample, name, timeline=None: drawn.append(timeline) or original(
        sample, name, timeline=timeline))
    outputs = list(page.explain(str(video)))
    status, explanation, labels, picture, found = outputs[-1]
    assert status.startswith("Done") and picture is not None
    assert drawn[0] is None and len(drawn) == 2  # first the picture, then again with the band
    sample = page.prepare(str(video))
    assert len(drawn[1]) == len(sample.utterances) >= 2
    assert any("2 faces tracked; face 0 chosen (speaker)" in note for note in sample.notes)
