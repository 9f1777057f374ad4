"""Training data: EMER-style tables and JSONL -> a compact prepared DatasetDict, a seeded split, a bad-row report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from microemo.presets import tiny_random_config
from microemo.processing.processing_microemo import MicroEmoProcessor
from microemo.processing.tiny_tokenizers import build_tiny_llm_tokenizer, build_tiny_qformer_tokenizer
from microemo.training.collator import MicroEmoDataCollator
from microemo.training.data import (
    DataError,
    decode_sample,
    emer_rows,
    encode_sample,
    jsonl_rows,
    load_prepared,
    prepare_dataset,
    seeded_split,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def processor() -> MicroEmoProcessor:
    config = tiny_random_config()
    return MicroEmoProcessor.from_model_config(config, build_tiny_llm_tokenizer(), build_tiny_qformer_tokenizer())


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def emer_folder(tmp_path_factory) -> Path:
    """EMER-style tables over four good videos and four bad rows (missing video, corrupt video, empty
    description, malformed label list)."""
    root = tmp_path_factory.mktemp("emer")
    videos = root / "videos"
    videos.mkdir()
    shutil.copy(ASSETS / "face_speech.mp4", videos / "sample_00000001.mp4")
    shutil.copy(ASSETS / "noface_speech.mp4", videos / "sample_00000002.mp4")
    shutil.copy(ASSETS / "face_rotated_vfr_silent.mp4", videos / "sample_00000003.mov")
    shutil.copy(ASSETS / "face_speech.mp4", videos / "sample_00000004.mp4")
    (videos / "sample_00000005.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    shutil.copy(ASSETS / "face_speech.mp4", videos / "sample_00000006.mp4")
    shutil.copy(ASSETS / "face_speech.mp4", videos / "sample_00000007.mp4")
    # sample_00000008 has no video.
    write_csv(root / "descriptions.csv", ["name", "chinese", "english"], [
        ["sample_00000001", "惊讶", "She raises her brows and speaks fast: surprised."],
        ["sample_00000002", "平静", "No face; the voice is calm: neutral."],
        ["sample_00000003", "放松", "A relaxed face in silence: calm."],
        ["sample_00000004", "开心", "She smiles while she talks: happy."],
        ["sample_00000005", "坏", "The file is broken."],
        ["sample_00000006", "空", ""],
        ["sample_00000007", "标签", "The label list of this one is malformed."],
        ["sample_00000008", "缺", "This video is missing."],
    ])  # fmt: skip
    write_csv(root / "subtitles.csv", ["name", "chinese", "english"], [
        ["sample_00000001", "我没想到", "I really did not expect to see you here today."],
        ["sample_00000004", "好消息", "Well, maybe this is good news after all."],
    ])  # fmt: skip
    write_csv(root / "openset.csv", ["name", "openset"], [
        ["sample_00000001", "['surprised', 'hopeful']"],
        ["sample_00000002", "['neutral']"],
        ["sample_00000003", "['calm']"],
        ["sample_00000004", "['happy', 'relaxed']"],
        ["sample_00000005", "['broken']"],
        ["sample_00000006", "['empty']"],
        ["sample_00000007", "['happy', ['nested']]"],
        ["sample_00000008", "['missing']"],
    ])  # fmt: skip
    return root


@pytest.fixture(scope="module")
def prepared(emer_folder, processor, tmp_path_factory):
    rows = emer_rows(
        emer_folder / "videos",
        descriptions=emer_folder / "descriptions.csv",
        subtitles=emer_folder / "subtitles.csv",
        openset=emer_folder / "openset.csv",
    )
    output = tmp_path_factory.mktemp("prepared")
    result = prepare_dataset(rows, processor, output, test_fraction=0.25, seed=4, num_proc=2)
    return result, load_prepared(output)


def test_bad_rows_are_left_out_and_reported_with_their_reasons(prepared):
    result, dataset = prepared
    report = [json.loads(line) for line in (result.output_dir / "bad_rows.jsonl").read_text().splitlines()]
    reasons = {row["name"]: row["reason"] for row in report}
    assert set(reasons) == {"sample_00000005", "sample_00000006", "sample_00000007", "sample_00000008"}
    assert reasons["sample_00000008"].startswith("missing video")
    assert reasons["sample_00000005"].startswith("unusable video")
    assert reasons["sample_00000006"].startswith("empty answer")
    assert reasons["sample_00000007"].startswith("malformed label list")
    names = set(dataset["train"]["name"]) | set(dataset["test"]["name"])
    assert names == {"sample_00000001", "sample_00000002", "sample_00000003", "sample_00000004"}
    assert result.counts["rows"] == 8 and result.counts["bad"] == 4
    assert result.counts["train"] + result.counts["test"] == 4


def test_the_seeded_split_is_written_and_is_what_the_dataset_holds(prepared):
    result, dataset = prepared
    split = json.loads((result.output_dir / "split.json").read_text())
    assert split["seed"] == 4
    unusable = {"sample_00000005"}  # passed the table checks, failed to decode: in the split, not in the data
    assert [name for name in split["test"] if name not in unusable] == dataset["test"]["name"] == ["sample_00000004"]
    assert sorted(set(split["train"]) - unusable) == sorted(dataset["train"]["name"])
    # The split is made before preparation, over the rows whose sources were readable: the corrupt video
    # is in it, so a later failure never moves other samples between splits.
    assert seeded_split([*split["train"], *split["test"]], 0.25, 4) == {k: split[k] for k in ("train", "test")}
    with (result.output_dir / "test_references.csv").open() as handle:
        references = list(csv.DictReader(handle))
    assert [row["name"] for row in references] == dataset["test"]["name"]
    assert all(row["openset"].startswith("[") for row in references)


def test_an_unusable_test_video_leaves_an_empty_but_loadable_test_split(emer_folder, processor, tmp_path):
    rows = emer_rows(emer_folder / "videos", descriptions=emer_folder / "descriptions.csv")
    rows.rows = [row for row in rows.rows if row["name"] in ("sample_00000003", "sample_00000005")]
    split = {"train": ["sample_00000003"], "test": ["sample_00000005"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    result = prepare_dataset(rows, processor, tmp_path / "out", split_file=tmp_path / "split.json")
    dataset = load_prepared(result.output_dir)
    assert (len(dataset["train"]), len(dataset["test"])) == (1, 0)


def test_a_seeded_split_depends_on_the_seed_only():
    names = [f"sample_{i:08d}" for i in range(40)]
    first = seeded_split(names, 0.2, seed=1)
    assert first == seeded_split(list(reversed(names)), 0.2, seed=1)
    assert first != seeded_split(names, 0.2, seed=2)
    assert len(first["test"]) == 8 and not set(first["test"]) & set(first["train"])


def test_prepared_rows_are_compact_and_collate_like_the_processor_on_the_file(prepared, processor):
    _, dataset = prepared
    row = next(r for part in ("train", "test") for r in dataset[part] if r["name"] == "sample_00000001")
    size = processor.image_size
    frames = row["frames"]
    assert frames["dtype"] == "uint8" and frames["shape"] == [8, size, size, 3]
    assert len(frames["data"]) == 8 * size * size * 3  # uint8 at the model's size, not float pixels
    assert row["waveform"]["dtype"] == "float16"

    direct = processor.prepare_sample(row["video"], subtitle=row["subtitle"])
    texts, spans = processor.render_conversations([processor.emer_conversation(subtitle=direct.subtitle, answer="x")])
    expected = processor.collate([direct], texts, spans, padding_side="right")
    got = processor.collate([decode_sample(row)], texts, spans, padding_side="right")
    for key in expected:
        if key == "audio_values":
            # float16 storage of the waveform: the fbank moves by a few thousandths of its unit scale
            assert torch.allclose(got[key], expected[key], atol=0.05)
            assert (got[key] - expected[key]).abs().mean() < 1e-3
        else:
            assert torch.equal(got[key], expected[key]), key


def test_encode_then_decode_keeps_every_field_the_collator_reads(processor):
    sample = processor.prepare_sample(ASSETS / "face_speech.mp4", utterances=ASSETS / "face_speech.srt")
    back = decode_sample(encode_sample(sample, processor))
    assert np.array_equal(back.clue_masks, sample.clue_masks)
    assert np.array_equal(back.utterance_frame_mask, sample.utterance_frame_mask)
    assert np.array_equal(back.face_found, sample.face_found)
    assert back.utterances == sample.utterances
    assert np.array_equal(back.video.timestamps, sample.video.timestamps)
    assert back.subtitle == sample.subtitle and back.notes == sample.notes
    assert np.abs(back.waveform - sample.waveform).max() < 1e-3


def test_the_collator_supervises_only_the_answer(prepared, processor):
    _, dataset = prepared
    rows = list(dataset["train"])[:2]
    batch = MicroEmoDataCollator(processor)(rows)
    assert batch["input_ids"].shape == batch["labels"].shape
    for b, row in enumerate(rows):
        supervised = batch["labels"][b][batch["labels"][b] != -100]
        text = processor.decode(supervised)
        assert text.startswith(row["answer"]) and text.endswith(processor.tokenizer.eos_token)
        # Right padding: the row's tokens start at position 0.
        assert batch["attention_mask"][b, 0] == 1
    assert batch["pixel_values"].shape[:2] == (2, 8)


def test_the_subtitle_table_reaches_the_prompt(prepared, processor):
    _, dataset = prepared
    row = next(r for part in ("train", "test") for r in dataset[part] if r["name"] == "sample_00000004")
    conversation = MicroEmoDataCollator(processor).conversation(row)
    prompt, _ = processor.render_conversations([conversation])
    assert "Well, maybe this is good news after all." in prompt[0]


def test_jsonl_rows_resolve_paths_and_report_bad_lines(tmp_path):
    shutil.copy(ASSETS / "face_speech.mp4", tmp_path / "clip.mp4")
    lines = [
        {"video": "clip.mp4", "answer": "happy", "utterances": [[0.7, 2.5, "hello"]], "question": "Which emotion?"},
        {"name": "gone", "video": "nowhere.mp4", "answer": "sad"},
        {"name": "blank", "video": "clip.mp4", "answer": "  "},
        {"name": "labels", "video": "clip.mp4", "answer": "ok", "openset": 3},
        {"name": "spans", "video": "clip.mp4", "answer": "ok", "utterances": "missing.srt"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    rows = jsonl_rows(path)
    assert [row["name"] for row in rows.rows] == ["clip"]
    assert rows.rows[0]["video"] == str((tmp_path / "clip.mp4").resolve())
    assert json.loads(rows.rows[0]["utterances"]) == [[0.7, 2.5, "hello"]]
    reasons = {bad["name"]: bad["reason"] for bad in rows.bad}
    assert reasons["gone"].startswith("missing video")
    assert reasons["blank"].startswith("empty answer")
    assert reasons["labels"].startswith("malformed label list")
    assert reasons["spans"].startswith("unreadable utterances")


def test_a_jsonl_line_that_is_not_an_object_names_the_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"video": "a.mp4", "answer": "x"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"data.jsonl, line 2: a JSON list; expected an object"):
        jsonl_rows(path)


def test_discrete_labels_outside_mer2023_classes_are_reported(emer_folder, tmp_path):
    table = write_csv(tmp_path / "discrete.csv", ["name", "discrete", "valence"], [
        ["sample_00000001", "surprise", "0.5"], ["sample_00000002", "bored", "0"],
    ])  # fmt: skip
    rows = emer_rows(emer_folder / "videos", discrete=table, target="discrete")
    assert [(row["name"], row["answer"]) for row in rows.rows] == [("sample_00000001", "surprise")]
    assert rows.bad[0]["name"] == "sample_00000002" and "not one of" in rows.bad[0]["reason"]


def test_a_table_without_its_columns_is_refused(emer_folder, tmp_path):
    table = write_csv(tmp_path / "wrong.csv", ["id", "text"], [["a", "b"]])
    with pytest.raises(DataError, match=r"wrong.csv: missing column\(s\) \['name', 'english'\]"):
        emer_rows(emer_folder / "videos", descriptions=table)


def test_a_second_preparation_reads_the_datasets_cache(emer_folder, processor, tmp_path):
    """The same rows and processor: the second run reuses the map results instead of preparing every video again."""
    rows = emer_rows(emer_folder / "videos", descriptions=emer_folder / "descriptions.csv")
    output = tmp_path / "prepared"
    prepare_dataset(rows, processor, output, test_fraction=0.25, seed=4, num_proc=1)
    caches = sorted(p.name for p in (output / "cache").rglob("cache-*.arrow"))
    assert caches
    prepare_dataset(rows, processor, output, test_fraction=0.25, seed=4, num_proc=1)
    assert sorted(p.name for p in (output / "cache").rglob("cache-*.arrow")) == caches
