"""`microemo predict`, its Python API and the pipeline that ships with the model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from microemo.cli import main
from microemo.predict import Predictor, load_predictor, read_done

ASSETS = Path(__file__).resolve().parents[1] / "assets"
VIDEOS = ["face_speech.mp4", "face_rotated_vfr_silent.mp4", "noface_speech.mp4"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """The sample clips with their subtitle, a corrupt video and a file that is not a video."""
    folder = tmp_path_factory.mktemp("clips")
    for name in [*VIDEOS, "face_speech.srt"]:
        shutil.copy(ASSETS / name, folder / name)
    (folder / "corrupt.mp4").write_bytes((ASSETS / "face_speech.mp4").read_bytes()[:3000])
    (folder / "notes.dat").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def predictor(model_dir) -> Predictor:
    return load_predictor(model_dir, max_new_tokens=6, batch_size=3, num_workers=1)


def test_a_folder_with_bad_files_gives_every_good_video_a_result_and_names_the_bad(model_dir, clips, tmp_path, capsys):
    output = tmp_path / "results.jsonl"
    code = main(["predict", str(clips), "--model", str(model_dir), "--subtitles", str(clips), "--output", str(output),
                 "--max-new-tokens", "4", "--no-progress"])  # fmt: skip
    assert code == 3  # some failed
    rows = {row["name"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert sorted(rows) == ["corrupt", "face_rotated_vfr_silent", "face_speech", "noface_speech", "notes"]
    for name in ("face_speech", "face_rotated_vfr_silent", "noface_speech"):
        assert rows[name]["error"] is None and rows[name]["english"] and isinstance(rows[name]["openset"], list)
    assert [u["text"] for u in rows["face_speech"]["utterances"]][0].startswith("I really did not expect")
    assert rows["face_speech"]["face_frames"] == 8 and rows["face_speech"]["audio"] is True
    assert rows["noface_speech"]["face_frames"] == 0 and rows["face_rotated_vfr_silent"]["audio"] is False
    for name in ("corrupt", "notes"):
        assert "MediaError" in rows[name]["error"]
    err = capsys.readouterr().err
    assert "failed: " in err and "corrupt.mp4" in err and "notes.dat" in err


def test_batched_and_one_by_one_greedy_predictions_are_identical(model_dir, clips, predictor):
    videos = [clips / name for name in VIDEOS]
    batched = predictor.run(videos, subtitles=None, progress=False)
    alone = load_predictor(model_dir, max_new_tokens=6, batch_size=1, num_workers=0).run(videos, progress=False)
    assert [r["english"] for r in batched] == [r["english"] for r in alone]
    assert len({r["english"] for r in batched}) > 1  # not one text for everything


def test_the_pipeline_returns_the_same_text_as_predict(model_dir, clips, predictor):
    from transformers import pipeline

    (row,) = predictor.run([clips / "face_speech.mp4"], subtitles=clips / "face_speech.srt", progress=False)
    pipe = pipeline("video-emotion-explanation", model=str(model_dir), trust_remote_code=True)
    result = pipe({"video": str(clips / "face_speech.mp4"), "utterances": str(clips / "face_speech.srt")}, max_new_tokens=6)
    assert result["explanation"] == row["english"]
    assert result["labels"] == row["openset"]
    assert [u["start"] for u in result["utterances"]] == [u["start"] for u in row["utterances"]]


def test_predict_resumes_after_a_kill_without_redoing_a_finished_video(model_dir, clips, tmp_path):
    output = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "microemo.cli", "predict", *[str(clips / v) for v in VIDEOS], "--model",
               str(model_dir), "--output", str(output), "--batch-size", "1", "--max-new-tokens", "4", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (output.exists() and output.read_text().count("\n") >= 1):
        time.sleep(0.05)
    helpers = psutil.Process(process.pid).children(recursive=True)  # the DataLoader worker, the face-mesh process
    assert helpers, "predict should run its preparation in a worker process"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Nothing of the killed run lives on (a worker stuck writing its sample to the dead parent's pipe did).
    _, alive = psutil.wait_procs(helpers, timeout=20)
    assert not alive, [helper.cmdline()[:3] for helper in alive]
    before = read_done(output)
    assert 1 <= len(before) < len(VIDEOS), "the kill should land between two videos"
    with open(output, "ab") as handle:
        handle.write(b'{"name": "half a ro')  # a write cut off by the kill
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    after = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(row["name"] for row in after) == sorted(Path(v).stem for v in VIDEOS)  # each once
    for name, row in before.items():
        assert next(r for r in after if r["name"] == name) == row  # finished rows untouched (timings included)


def test_predict_from_python_in_one_call(model_dir, clips):
    from microemo.predict import predict

    rows = predict(clips / "noface_speech.mp4", model=model_dir, max_new_tokens=3)
    assert len(rows) == 1 and rows[0]["name"] == "noface_speech" and rows[0]["error"] is None


def test_names_restrict_predict_to_a_split(model_dir, clips, tmp_path):
    names = tmp_path / "test_references.csv"
    names.write_text("name,openset\nnoface_speech,\"['neutral']\"\n")
    output = tmp_path / "out.jsonl"
    code = main(["predict", str(clips), "--model", str(model_dir), "--names", str(names), "--output", str(output),
                 "--max-new-tokens", "2", "--no-progress"])  # fmt: skip
    assert code == 0
    assert [json.loads(line)["name"] for line in output.read_text().splitlines()] == ["noface_speech"]
    names.write_text("name\nnot_there\n")
    with pytest.raises(FileNotFoundError, match=r"1 named sample\(s\) have no video among the inputs, e.g. \['not_there'\]"):
        main(["--debug", "predict", str(clips), "--model", str(model_dir), "--names", str(names), "--output", str(output)])
