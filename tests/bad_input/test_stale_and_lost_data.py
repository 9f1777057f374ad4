"""Class B: stale or lost data. Prepared data is keyed on its inputs; predict modifies only its own file, one run
at a time, retries failures, and a judge that never answers fails the row; judge groupings are validated.

The predictor tests use a stand-in model and processor (the row and file logic is what they check, not the
model), so they run in milliseconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from microemo.cli import main
from microemo.evaluation.labels import GroupingParseError, parse_groupings
from microemo.outputs import OutputLock, OutputLockedError, plan_resume, read_rows
from microemo.predict import Predictor

ASSETS = Path(__file__).resolve().parents[1] / "assets"


class StandInProcessor:
    """Prepares a sample unless the video's bytes say BROKEN; generation answers 'happy' to everything."""

    model_input_names = ["input_ids"]

    utterance_source = "none"

    def prepare_sample(self, path: str, utterances=None, num_frames=None, face=None):
        if Path(path).read_bytes().startswith(b"BROKEN"):
            raise ValueError(f"{path}: cannot decode")
        return SimpleNamespace(subtitle="", utterances=[], face_found=np.ones(2, bool), notes=[])

    def emer_conversation(self, subtitle=None, question=None):
        return [{"role": "user", "content": subtitle or ""}]

    def render_conversations(self, conversations):
        return ["prompt"] * len(conversations), None

    def collate(self, samples, texts, **kwargs):
        count = len(samples)
        return {"input_ids": torch.ones(count, 2, dtype=torch.long), "audio_clip_mask": torch.ones(count, 1, dtype=torch.bool),
                "notes": [[] for _ in range(count)]}  # fmt: skip

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["She looks happy."] * len(ids)

    def post_process_emotions(self, texts):
        return [["happy"] for _ in texts]


class StandInModel:
    device = torch.device("cpu")

    def eval(self):
        return self

    def generate(self, input_ids, **kwargs):
        return torch.cat([input_ids, torch.ones(input_ids.shape[0], 3, dtype=torch.long)], dim=1)


def predictor(**options) -> Predictor:
    return Predictor(StandInModel(), StandInProcessor(), num_workers=0, batch_size=2, **options)


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.mp4").write_bytes(b"a video")
    return folder


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------------
# Never modify a file before it is known to be ours


@pytest.mark.parametrize(
    "content",
    [
        b"name,openset\nsample_1,\"['happy']\"\nsample_2,\"['sad']\"",  # a CSV without a final newline
        b'{"name": "a", "english": "x"}\n{"no_name": 1}\n{"name": "b"',  # a row without a name
        b'{"name": "a"}\n["a", "list"]\n',  # a JSON-array row
        b'{"name": "a", "english": "caf\xe9"}\n',  # not UTF-8
        b"just some words, no newline",
    ],
)
def test_a_file_that_is_not_a_predictions_file_is_refused_and_left_unchanged(clips, tmp_path, content):
    """Before: the CSV lost its last line before being refused; a row without a name gave KeyError, a JSON array
    TypeError, and Latin-1 a UnicodeDecodeError without the file's name."""
    output = tmp_path / "r.csv"
    output.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{output.name}.*(predictions|Nothing was changed)"):
        predictor().run([clips], output=output, progress=False)
    assert output.read_bytes() == content


def test_the_cut_off_last_row_of_a_killed_run_is_dropped_and_redone(clips, tmp_path):
    output = tmp_path / "out.jsonl"
    predictor().run([clips / "a.mp4"], output=output, progress=False)
    with open(output, "ab") as handle:
        handle.write(b'{"name": "b", "engl')
    rows = predictor().run([clips], output=output, progress=False)
    assert [row["name"] for row in rows] == ["a", "b", "c"]
    assert sorted(row["name"] for row in lines(output)) == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------------------------
# One writer at a time


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(clips, tmp_path):
    """Before: two runs on one --output both exited 0 and wrote every video twice."""
    output = tmp_path / "out.jsonl"
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from microemo.outputs import OutputLock
        with OutputLock(Path({str(output)!r})):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=rf"being written by another `microemo predict` \(process {process.pid} "):
            predictor().run([clips], output=output, progress=False)
        assert not output.exists() or output.read_text() == ""
    finally:
        process.communicate("done\n", timeout=30)
    predictor().run([clips], output=output, progress=False)  # released: the next run goes ahead
    assert len(lines(output)) == 3


def test_the_lock_is_released_when_the_run_fails(clips, tmp_path):
    output = tmp_path / "out.jsonl"
    output.write_text("not ours\n")
    with pytest.raises(ValueError):
        predictor().run([clips], output=output, progress=False)
    with OutputLock(output):  # not still held
        pass


def test_lock_files_beside_the_output_are_not_taken_for_videos(clips):
    output = clips / "out.jsonl"
    rows = predictor().run([clips], output=output, progress=False)
    rows = predictor().run([clips], output=output, progress=False)
    assert [row["name"] for row in rows] == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------------------------
# Failed rows are retried on resume


def test_a_failed_video_that_was_fixed_is_retried_and_counts_its_attempts(clips, tmp_path):
    """Before: the re-run still reported the old failure."""
    output = tmp_path / "out.jsonl"
    (clips / "b.mp4").write_bytes(b"BROKEN")
    first = {row["name"]: row for row in predictor().run([clips], output=output, progress=False)}
    assert "cannot decode" in first["b"]["error"] and first["b"]["attempts"] == 1
    predictor().run([clips], output=output, progress=False)
    assert {row["name"]: row["attempts"] for row in lines(output)} == {"a": 1, "b": 2, "c": 1}
    (clips / "b.mp4").write_bytes(b"a video")
    rows = {row["name"]: row for row in predictor().run([clips], output=output, progress=False)}
    assert rows["b"]["error"] is None and rows["b"]["attempts"] == 3 and rows["b"]["english"]
    assert sorted(row["name"] for row in lines(output)) == ["a", "b", "c"]  # one row per video, never two
    assert rows["a"] == first["a"]  # finished rows untouched


def test_no_retry_failed_keeps_failed_rows(clips, tmp_path):
    output = tmp_path / "out.jsonl"
    (clips / "b.mp4").write_bytes(b"BROKEN")
    predictor().run([clips], output=output, progress=False)
    (clips / "b.mp4").write_bytes(b"a video")
    rows = {row["name"]: row for row in predictor(retry_failed=False).run([clips], output=output, progress=False)}
    assert rows["b"]["error"] and rows["b"]["attempts"] == 1


def test_plan_resume_leaves_an_all_good_file_byte_for_byte(tmp_path):
    output = tmp_path / "out.jsonl"
    content = b'{"name": "a", "error": null}\n{"name": "b", "error": null}\n'
    output.write_bytes(content)
    rows, retry = plan_resume(output)
    assert sorted(rows) == ["a", "b"] and retry == {} and output.read_bytes() == content
    assert read_rows(output)[1] == len(content)


# ---------------------------------------------------------------------------------------------------------------
# Links in a folder


def test_a_dangling_link_and_a_link_loop_in_a_folder_each_get_a_row(clips):
    """Before: no row, though every unreadable file gets one."""
    os.symlink(clips / "gone.mp4", clips / "dangling.mp4")
    os.symlink(clips / "loop.mp4", clips / "loop.mp4")
    rows = {row["name"]: row for row in predictor().run([clips], progress=False)}
    assert "a dangling symbolic link" in rows["dangling"]["error"]
    assert "a symbolic link loop" in rows["loop"]["error"]
    assert rows["a"]["error"] is None


# ---------------------------------------------------------------------------------------------------------------
# A judge whose replies never parse


class NeverParsingJudge:
    config = SimpleNamespace(model="junk-judge")

    def complete_many(self, prompts, parse, **kwargs):
        from microemo.evaluation.judge import JudgeReplyError

        return [JudgeReplyError("extraction reply holds no [...] list", ["I cannot help"]) for _ in prompts]


def test_labels_a_judge_never_gives_fail_the_row_exit_3_and_are_retried(clips, tmp_path, monkeypatch, capsys):
    """Before: `openset: []`, `error: null`, '2 explained, 0 failed', exit 0, never retried."""
    output = tmp_path / "out.jsonl"
    made = []

    def load(model, **options):
        made.append(predictor(judge=NeverParsingJudge(), retry_failed=options.get("retry_failed", True)))
        return made[-1]

    monkeypatch.setattr("microemo.predict.load_predictor", load)
    arguments = ["predict", str(clips / "a.mp4"), "--model", "m", "--output", str(output), "--judge-model", "j",
                 "--no-progress"]  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    assert main(arguments) == 3
    (row,) = lines(output)
    assert "label extraction failed" in row["error"] and row["english"] == "She looks happy."
    assert "1 video(s): 0 explained, 1 failed" in capsys.readouterr().out
    assert main(arguments) == 3
    assert lines(output)[0]["attempts"] == 2


# ---------------------------------------------------------------------------------------------------------------
# Judge groupings: shape and size


@pytest.mark.parametrize(
    "reply",
    [
        "[1, null, {'a': 1}, ['nested']]",
        '[1, null, {"a": 1}, ["nested"]]',
        "[[happy, [sad]], calm]",
        "[[happy], 3, [sad]]",
    ],
)
def test_junk_grouping_replies_are_refused(reply):
    with pytest.raises(GroupingParseError, match="grouping"):
        parse_groupings(reply)


def test_a_grouping_of_200k_labels_is_refused_by_size():
    """Before: accepted; the report was 171 MB."""
    with pytest.raises(GroupingParseError, match=r"over 100,000|words, over"):
        parse_groupings(str([[f"w{i}"] for i in range(200_000)]))
    with pytest.raises(GroupingParseError, match=r"5,000 words, over 2,000"):
        parse_groupings([[f"w{i}" for i in range(5_000)]])


def test_ordinary_groupings_still_parse():
    assert parse_groupings("Output: [[happy, joyful], [sad]]") == [["happy", "joyful"], ["sad"]]
    assert parse_groupings("[['happy', 'glad'], ['sad']]") == [["happy", "glad"], ["sad"]]


# ---------------------------------------------------------------------------------------------------------------
# Prepared data keyed on its inputs


@pytest.fixture(scope="module")
def processor():
    from microemo.presets import tiny_random_config
    from microemo.processing.processing_microemo import MicroEmoProcessor
    from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer

    config = tiny_random_config()
    return MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())


def write_jsonl(path: Path, answers: list[str]) -> Path:
    path.write_text("".join(json.dumps({"video": "v.mp4", "name": f"s{i}", "answer": a}) + "\n" for i, a in enumerate(answers)))
    return path


def test_the_preparation_key_changes_with_rows_answers_videos_and_processor_settings(tmp_path, processor):
    """Before: sft.py trained on the old prepared rows after the JSONL went from 2 to 4 rows."""
    from microemo.training.data import jsonl_rows, preparation_key

    shutil.copy(ASSETS / "noface_speech.mp4", tmp_path / "v.mp4")
    data = tmp_path / "train.jsonl"
    key = preparation_key(jsonl_rows(write_jsonl(data, ["calm", "sad"])), processor)
    assert preparation_key(jsonl_rows(data), processor) == key  # the same inputs: the same key
    assert preparation_key(jsonl_rows(write_jsonl(data, ["calm", "sad", "x", "y"])), processor) != key
    assert preparation_key(jsonl_rows(write_jsonl(data, ["calm", "happy"])), processor) != key
    write_jsonl(data, ["calm", "sad"])
    assert preparation_key(jsonl_rows(data), processor, num_frames=4) != key
    (tmp_path / "v.mp4").write_bytes((ASSETS / "face_speech.mp4").read_bytes())
    assert preparation_key(jsonl_rows(data), processor) != key


def test_prepared_data_from_other_inputs_is_not_current(tmp_path, processor):
    from microemo.training.data import jsonl_rows, preparation_key, prepare_dataset, prepared_is_current

    shutil.copy(ASSETS / "noface_speech.mp4", tmp_path / "v.mp4")
    data = write_jsonl(tmp_path / "train.jsonl", ["calm", "sad"])
    rows = jsonl_rows(data)
    prepare_dataset(rows, processor, tmp_path / "prepared", test_fraction=0.5, num_frames=2)
    assert prepared_is_current(tmp_path / "prepared", preparation_key(rows, processor, 2))
    edited = jsonl_rows(write_jsonl(data, ["calm", "sad", "happy", "angry"]))
    assert not prepared_is_current(tmp_path / "prepared", preparation_key(edited, processor, 2))
    assert not prepared_is_current(tmp_path / "prepared", preparation_key(rows, processor, 3))


def test_a_malformed_split_file_is_named(tmp_path):
    from microemo.training.data import DataError, read_split_file

    for content, expected in [("{not json", "not JSON at line 1"), ("[1, 2]", "got list"),
                              ('{"train": "a", "test": []}', "'train' is not a list"), ('{"train": []}', "got \\['train'\\]")]:  # fmt: skip
        path = tmp_path / "split.json"
        path.write_text(content)
        with pytest.raises(DataError, match=rf"--split-file .*split\.json: {expected}"):
            read_split_file(path)
