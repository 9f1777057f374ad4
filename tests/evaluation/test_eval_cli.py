"""`microemo evaluate` end to end: EMER CSV/JSONL files in, a Table-1 table and an audit report out."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from microemo.evaluation.cli import EXIT_INCOMPLETE, register
from microemo.evaluation.prompts import PROMPTS_SHA256
from microemo.evaluation.testing import Reply, ScriptedJudge, correct_reply

LEXICON = Path(__file__).parent / "lexicon"

REFERENCES_CSV = """name,openset
sample_00000001,"['happy', 'excited']"
sample_00000002,"['angry']"
sample_00000003,"['sad', 'worried']"
"""
# EMER's description layout: name, chinese, english.
DESCRIPTIONS_CSV = """name,chinese,english
sample_00000001,他很高兴。,"In the video he smiles; his tone is light. He seems joyful."
sample_00000002,她很生气。,"She frowns and raises her voice; she is furious and a bit confused."
sample_00000003,他很难过。,"His voice trembles. He looks upset and nervous."
"""
# The judge extracts [joyful], [furious] ("confused" is not in its vocabulary) and [nervous, upset].
# joyful ~ happy: 1, 1/2.  furious ~ angry: 1, 1.  {upset ~ sad, nervous ~ worried}: 1, 1.
ACCURACY, RECALL = 1.0, (0.5 + 1 + 1) / 3


def evaluate_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="microemo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv, "--no-progress"])
    return args.func(args)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"references": tmp_path / "check-openset.csv", "descriptions": tmp_path / "microemo.csv"}
    paths["references"].write_text(REFERENCES_CSV, encoding="utf-8")
    paths["descriptions"].write_text(DESCRIPTIONS_CSV, encoding="utf-8")
    paths["report"] = tmp_path / "report.json"
    return paths


def judge_args(server: ScriptedJudge, cache: Path) -> list[str]:
    return ["--judge-model", "judge-test", "--judge-base-url", server.base_url, "--judge-cache", str(cache)]


def test_explanations_are_extracted_judged_tabulated_and_reported(files, judge_env, capsys):
    with ScriptedJudge() as server:
        code = evaluate_cli("--predictions", str(files["descriptions"]), "--references", str(files["references"]),
                            "--output", str(files["report"]), "--model-name", "MicroEmo", *judge_args(server, judge_env))
        calls = server.calls
    assert code == 0
    table = capsys.readouterr().out
    assert "| Model    | Avg   | Accuracy_s | Recall_s | Lemma-match F |" in table
    assert f"| MicroEmo | {100 * (ACCURACY + RECALL) / 2:.2f} | {100 * ACCURACY:.2f} " in table
    assert "3 of 3 samples scored, judge judge-test" in table
    report = json.loads(files["report"].read_text())
    assert report["scores"]["accuracy_s"] == pytest.approx(ACCURACY)
    assert report["scores"]["recall_s"] == pytest.approx(RECALL)
    assert report["judge"]["model"] == "judge-test" and report["judge"]["temperature"] == 0
    assert report["judge"]["stats"]["calls"] == calls == 6  # 3 extractions + 3 groupings
    assert report["judge"]["stats"]["served_models"] == ["judge-test-served"]
    assert report["prompts_sha256"] == PROMPTS_SHA256
    assert report["predictions"]["field"] == "english" and report["failures"] == []
    first = report["samples"][0]
    assert first["prediction"] == ["joyful"] and first["groups"] == [["excited"], ["happy", "joyful"]]
    assert first["extraction_reply"] == "[joyful]"


def test_a_second_run_makes_no_calls(files, judge_env, capsys):
    argv = ["--predictions", str(files["descriptions"]), "--references", str(files["references"]),
            "--output", str(files["report"])]
    with ScriptedJudge() as server:
        assert evaluate_cli(*argv, *judge_args(server, judge_env)) == 0
        first_calls = server.calls
        first = json.loads(files["report"].read_text())
        assert evaluate_cli(*argv, *judge_args(server, judge_env)) == 0
        assert server.calls == first_calls
    second = json.loads(files["report"].read_text())
    assert second["judge"]["stats"]["calls"] == 0 and second["judge"]["stats"]["cache_hits"] == 6
    assert second["scores"] == first["scores"]


def test_saved_groupings_and_a_lexicon_need_no_judge(files, tmp_path, capsys):
    predictions = tmp_path / "predict-openset.jsonl"
    predictions.write_text(
        "\n".join(json.dumps(row) for row in [
            {"name": "sample_00000001", "openset": ["relaxed", "happy"]},
            {"name": "sample_00000002", "openset": "[fury]"},
            {"name": "sample_00000003", "openset": "['sadness']"},
        ]),
        encoding="utf-8",
    )
    references = tmp_path / "refs.csv"
    references.write_text(
        'name,openset\nsample_00000001,"[\'calm\']"\nsample_00000002,"[\'enraged\']"\nsample_00000003,"[\'sad\']"\n'
    )
    synonyms = tmp_path / "openset-synonym"
    synonyms.mkdir()
    np.save(synonyms / "sample_00000001.npy", np.array("[['calm', 'relaxed'], ['happy']]"))
    np.save(synonyms / "sample_00000002.npy", np.array("[['enraged', 'fury']]"))
    np.save(synonyms / "sample_00000003.npy", np.array("[['sad', 'sadness']]"))
    code = evaluate_cli("--predictions", str(predictions), "--references", str(references),
                        "--groupings", str(synonyms), "--lexicon", str(LEXICON), "--output", str(files["report"]))
    assert code == 0
    table = capsys.readouterr().out
    assert "Wheel-L1 F" in table and "Wheel-L2 F" in table
    assert "saved groupings" in table
    report = json.loads(files["report"].read_text())
    # {calm, happy} vs {calm}: 1/2, 1.  {enraged} vs {enraged}: 1, 1.  {sad} vs {sad}: 1, 1.
    assert report["scores"]["accuracy_s"] == pytest.approx(2.5 / 3)
    assert report["scores"]["recall_s"] == pytest.approx(1.0)
    assert report["judge"] is None and report["judge_free"]["metric"] == "emotion_wheel"
    assert {s["grouping_source"] for s in report["samples"]} == {"saved"}


def test_unknown_sample_names_are_an_error_and_write_nothing(files, tmp_path, judge_env, capsys):
    stray = tmp_path / "stray.csv"
    stray.write_text(DESCRIPTIONS_CSV + 'sample_99999999,x,"He is happy."\n', encoding="utf-8")
    with ScriptedJudge() as server:
        code = evaluate_cli("--predictions", str(stray), "--references", str(files["references"]),
                            "--output", str(files["report"]), *judge_args(server, judge_env))
        assert server.calls == 0
    assert code == 1
    error = capsys.readouterr().err
    assert "unknown sample names" in error and "sample_99999999" in error
    assert not files["report"].exists()


def test_a_missing_prediction_is_an_error_not_a_zero(files, tmp_path, capsys):
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(DESCRIPTIONS_CSV.splitlines()[:3]) + "\n", encoding="utf-8")
    code = evaluate_cli("--predictions", str(partial), "--references", str(files["references"]),
                        "--output", str(files["report"]))
    assert code == 1
    assert "1 reference samples have no prediction" in capsys.readouterr().err
    assert not files["report"].exists()


def test_a_missing_api_key_is_an_error_and_writes_nothing(files, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = evaluate_cli("--predictions", str(files["descriptions"]), "--references", str(files["references"]),
                        "--output", str(files["report"]), "--judge-model", "m", "--judge-cache", str(tmp_path / "c"))
    assert code == 1
    assert "OPENAI_API_KEY is unset or empty" in capsys.readouterr().err
    assert not files["report"].exists()


def test_an_unreachable_endpoint_is_an_error_and_writes_nothing(files, judge_env, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = evaluate_cli("--predictions", str(files["descriptions"]), "--references", str(files["references"]),
                        "--output", str(files["report"]), "--judge-model", "m",
                        "--judge-base-url", f"http://127.0.0.1:{port}/v1", "--judge-max-retries", "0",
                        "--judge-cache", str(judge_env))
    assert code == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
    assert not files["report"].exists()


def test_failed_samples_make_an_incomplete_report_and_exit_code(files, judge_env, capsys):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply("Sorry, I cannot help.") if "furious" in prompt else Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        code = evaluate_cli("--predictions", str(files["descriptions"]), "--references", str(files["references"]),
                            "--output", str(files["report"]), *judge_args(server, judge_env))
    assert code == EXIT_INCOMPLETE
    assert "INCOMPLETE: 1 samples failed" in capsys.readouterr().out
    report = json.loads(files["report"].read_text())
    assert report["scores"]["complete"] is False
    assert [f["name"] for f in report["failures"]] == ["sample_00000002"]
    assert report["failures"][0]["replies"][0] == "Sorry, I cannot help."


def test_the_microemo_command_line_has_the_evaluate_command(files, capsys):
    from microemo.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--help"])
    assert exited.value.code == 0
    assert "--judge-base-url" in capsys.readouterr().out
