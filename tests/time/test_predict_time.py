"""`microemo predict` on multi-person dialogue videos: the speaking face, the timeline, segments."""

from __future__ import annotations

import json
import shutil

import pytest

from microemo.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, save_tiny_model):
    return save_tiny_model(tmp_path_factory.mktemp("model"), utterance_source="energy")


def _predict(model_dir, video, output, *options) -> dict:
    code = main(["predict", str(video), "--model", str(model_dir), "--max-new-tokens", "3", "--num-workers", "0",
                 "--output", str(output), "--no-progress", *options])  # fmt: skip
    assert code == 0
    return json.loads(output.read_text().splitlines()[0])


def test_a_dialogue_gets_one_timeline_entry_per_utterance_and_the_speaking_face(model_dir, dialogue_clip, tmp_path):
    video, _ = dialogue_clip
    row = _predict(model_dir, video, tmp_path / "rows.jsonl", "--per-utterance")
    assert row["error"] is None and "segments" not in row
    assert len(row["utterances"]) >= 2  # found by voice activity: no subtitles, no ASR
    assert [(e["start"], e["end"]) for e in row["timeline"]] == [(u["start"], u["end"]) for u in row["utterances"]]
    assert all(set(e) == {"start", "end", "text", "explanation", "labels"} for e in row["timeline"])
    assert row["face"]["faces"] == 2 and row["face"]["method"] == "speaker" and row["face"]["chosen"] == 0
    assert row["face_frames"] == row["frames"]


def test_a_long_dialogue_is_predicted_in_segments_in_order(model_dir, long_dialogue, tmp_path):
    video, _ = long_dialogue
    row = _predict(model_dir, video, tmp_path / "rows.jsonl", "--per-utterance", "--segment-seconds", "15")
    segments = row["segments"]
    assert len(segments) >= 3 and segments[0]["start"] == 0.0
    assert all(a["end"] == b["start"] for a, b in zip(segments[:-1], segments[1:], strict=True))
    assert all(s["face"]["method"] == "speaker" and s["face"]["chosen"] == 0 for s in segments)
    # The row's timeline is every segment's, on the video's clock, in order.
    starts = [entry["start"] for entry in row["timeline"]]
    assert starts == sorted(starts) and len(starts) == sum(len(s["timeline"]) for s in segments)
    assert all(s["start"] <= e["start"] and e["end"] <= s["end"] + 1e-6 for s in segments for e in s["timeline"])
    assert row["english"].startswith("[0.0-")


def test_largest_face_is_taken_when_asked(model_dir, dialogue_clip, tmp_path):
    video, _ = dialogue_clip
    row = _predict(model_dir, video, tmp_path / "rows.jsonl", "--face", "largest")
    assert row["face"] == {"faces": 2, "chosen": 1, "method": "largest", "scores": None}


def test_bad_time_options_are_refused_before_the_model_loads(model_dir, dialogue_clip, tmp_path, capsys):
    video, _ = dialogue_clip
    assert main(["predict", str(video), "--model", str(tmp_path / "absent"), "--segment-seconds", "1.5"]) == 1
    assert "--segment-seconds=1.5 s is too short" in capsys.readouterr().err
    assert main(["predict", str(video), "--model", str(tmp_path / "absent"), "--face", "loudest"]) == 1
    assert "--face must be 'speaker', 'largest' or a face index" in capsys.readouterr().err


def test_a_face_index_beyond_the_faces_found_fails_that_video_with_the_count(model_dir, dialogue_clip, tmp_path):
    video, _ = dialogue_clip
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(video, folder / "dialogue.mp4")
    code = main(["predict", str(folder), "--model", str(model_dir), "--face", "3", "--num-workers", "0",
                 "--output", str(tmp_path / "rows.jsonl"), "--no-progress"])  # fmt: skip
    row = json.loads((tmp_path / "rows.jsonl").read_text())
    assert code == 3 and "face=3 is out of range: 2 face(s)" in row["error"]


def test_the_pipeline_explains_a_long_video_in_the_segments_predict_writes(model_dir, long_dialogue, dialogue_clip,
                                                                           tmp_path):  # fmt: skip
    from transformers import pipeline

    from microemo.modeling_microemo.pipeline_microemo import TASK

    video, _ = long_dialogue
    row = _predict(model_dir, video, tmp_path / "rows.jsonl", "--per-utterance", "--segment-seconds", "15")
    pipe = pipeline(TASK, model=str(model_dir), trust_remote_code=True)
    out = pipe(str(video), segment_seconds=15, per_utterance=True, face="speaker", max_new_tokens=3)
    assert [(s["start"], s["end"], s["cut"], s["explanation"]) for s in out["segments"]] == [
        (s["start"], s["end"], s["cut"], s["english"]) for s in row["segments"]]  # fmt: skip
    assert out["explanation"] == row["english"] and out["labels"] == pipe.processor.post_process_emotions(row["english"])
    assert [(e["start"], e["end"], e["explanation"]) for e in out["timeline"]] == [
        (e["start"], e["end"], e["explanation"]) for e in row["timeline"]]  # fmt: skip
    assert [(u["start"], u["end"]) for u in out["utterances"]] == [(u["start"], u["end"]) for u in row["utterances"]]
    assert (out["frames"], out["face_found"]) == (row["frames"], row["face_frames"])
    # A video no longer than segment_seconds is explained whole.
    short, _ = dialogue_clip
    whole = pipe(str(short), segment_seconds=15, per_utterance=True, face="speaker", max_new_tokens=3)
    assert "segments" not in whole
    assert whole == pipe(str(short), per_utterance=True, face="speaker", max_new_tokens=3)


def test_the_pipeline_refuses_segments_it_cannot_cut(model_dir, long_dialogue):
    import numpy as np
    from transformers import pipeline

    from microemo.modeling_microemo.pipeline_microemo import TASK

    pipe = pipeline(TASK, model=str(model_dir), trust_remote_code=True)
    with pytest.raises(ValueError, match="segment_seconds=1.5 s is too short"):
        pipe(str(long_dialogue[0]), segment_seconds=1.5, max_new_tokens=2)
    with pytest.raises(ValueError, match="segment_seconds: segments are cut from a video file"):
        pipe(np.zeros((4, 32, 32, 3), np.uint8), segment_seconds=15, max_new_tokens=2)


def test_the_pipeline_keeps_a_given_subtitle_and_landmarks_when_it_explains_a_short_video_whole(
    model_dir, dialogue_clip, long_dialogue, monkeypatch
):
    import numpy as np
    from transformers import pipeline

    from microemo.modeling_microemo.pipeline_microemo import TASK

    pipe = pipeline(TASK, model=str(model_dir), trust_remote_code=True)
    subtitles, render = [], pipe.processor.emer_conversation
    monkeypatch.setattr(pipe.processor, "emer_conversation",
                        lambda *args, **kwargs: subtitles.append(kwargs.get("subtitle")) or render(*args, **kwargs))  # fmt: skip
    short, _ = dialogue_clip
    landmarks = np.full((pipe.processor.num_frames, 478, 3), np.nan, dtype=np.float32)  # no face on any frame
    out = pipe(str(short), segment_seconds=15, subtitle="I am thrilled", landmarks=landmarks, max_new_tokens=2)
    assert "segments" not in out and out["face_found"] == 0
    assert subtitles and set(subtitles) == {"I am thrilled"}
    # A long video cannot split them: the landmarks are refused by name, the subtitle is noted and not used.
    with pytest.raises(ValueError, match="the given landmarks hold the whole video's sampled frames"):
        pipe(str(long_dialogue[0]), segment_seconds=15, landmarks=landmarks, max_new_tokens=2)
    out = pipe(str(long_dialogue[0]), segment_seconds=15, subtitle="I am thrilled", max_new_tokens=2)
    assert len(out["segments"]) >= 3
    assert sum("subtitle given for the whole video is not used" in note for note in out["notes"]) == len(out["segments"])
