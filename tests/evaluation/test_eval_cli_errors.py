"""`microemo evaluate` on bad input and misbehaving judges: one line on stderr, a non-zero exit, no
traceback and no report; with `--debug` the error is raised with its traceback. Paths that cannot
take the report are refused before any judge call."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from microemo.evaluation import runner
from microemo.evaluation.cli import register
from microemo.evaluation.testing import Reply, ScriptedJudge

REFERENCES_CSV = "name,openset\ns1,\"['happy']\"\ns2,\"['angry']\"\n"
PREDICTIONS_CSV = "name,openset\ns1,\"['joyful']\"\ns2,\"['furious']\"\n"


def parse(*argv: str, debug: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="microemo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv, "--no-progress"])
    args.debug = debug  # the `microemo` command's global switch
    return args


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"references": tmp_path / "refs.csv", "predictions": tmp_path / "preds.csv",
             "report": tmp_path / "report.json"}
    paths["references"].write_text(REFERENCES_CSV, encoding="utf-8")
    paths["predictions"].write_text(PREDICTIONS_CSV, encoding="utf-8")
    return paths


def evaluate(files: dict[str, Path], *extra: str, debug: bool = False) -> int:
    args = parse("--predictions", str(files["predictions"]), "--references", str(files["references"]),
                 "--output", str(files["report"]), *extra, debug=debug)
    return args.func(args)


def judge_args(server: ScriptedJudge, cache: Path, *extra: str) -> list[str]:
    return ["--judge-model", "judge-test", "--judge-base-url", server.base_url, "--judge-cache", str(cache), *extra]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("microemo evaluate: error: ")
    return err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        ('name,openset\ns1,"[\'joyeux\']"\ns2,"[\'énervé\']"\n'.encode("latin-1"), "line 3: not UTF-8 text"),
        (b'name,openset\ns1,"[\'joyful\']\ns2,"[\'furious\']"\n', "line 2: not valid CSV"),
        (b"name,openset\ns1,nan\ns2,[furious]\n", "is 'nan'"),
    ],
    ids=["empty", "latin-1", "unbalanced-quote", "nan-cell"],
)
def test_a_bad_predictions_file_is_one_line_naming_it(files, capsys, content, expected):
    files["predictions"].write_bytes(content)
    assert evaluate(files) == 1
    err = one_error_line(capsys)
    assert str(files["predictions"]) in err and expected in err
    assert not files["report"].exists()


def test_a_predictions_folder_is_one_line(files, tmp_path, capsys):
    files["predictions"] = tmp_path / "predictions-folder"
    files["predictions"].mkdir()
    assert evaluate(files) == 1
    assert "predictions-folder: is a folder" in one_error_line(capsys)


def test_an_empty_reference_cell_names_the_references_file(files, capsys):
    files["references"].write_text("name,openset\ns1,\"['happy']\"\ns2,\n", encoding="utf-8")
    assert evaluate(files) == 1
    err = one_error_line(capsys)
    assert str(files["references"]) in err and "empty 'openset' cell, e.g. ['s2']" in err


def test_a_report_path_that_is_a_folder_is_refused_before_any_judge_call(files, judge_env, tmp_path, capsys):
    files["report"] = tmp_path / "reports"
    files["report"].mkdir()
    with ScriptedJudge() as server:
        assert evaluate(files, *judge_args(server, judge_env)) == 1
        assert server.calls == 0
    assert "reports: is a folder; expected the path of a .json file" in one_error_line(capsys)


def test_a_judge_answering_html_is_one_line_naming_the_endpoint(files, judge_env, capsys):
    page = Reply(body=b"<!doctype html><html><body>Open WebUI</body></html>", content_type="text/html")
    with ScriptedJudge(lambda prompt, nth: page) as server:
        assert evaluate(files, *judge_args(server, judge_env, "--judge-max-retries", "1", "--judge-concurrency", "1")) == 1
        assert server.calls == 2
    err = one_error_line(capsys)
    assert server.base_url in err and "'judge-test'" in err and "not JSON (text/html)" in err
    assert not files["report"].exists()


def test_a_hung_judge_fails_within_the_configured_time_in_one_line(files, judge_env, capsys):
    with ScriptedJudge(lambda prompt, nth: Reply(hang=True)) as server:
        code = evaluate(files, *judge_args(server, judge_env, "--judge-timeout", "0.5",
                                           "--judge-timeout-retries", "0", "--judge-concurrency", "1"))
        assert server.calls == 1
    assert code == 1
    err = one_error_line(capsys)
    assert "did not answer: no complete reply within 0.5 s" in err and server.base_url in err


def test_a_timeout_that_is_not_a_number_is_one_line(files, judge_env, capsys):
    assert evaluate(files, "--judge-model", "m", "--judge-timeout", "nan", "--judge-cache", str(judge_env)) == 1
    assert "JudgeConfig.timeout: got nan; expected a positive, finite number of seconds" in one_error_line(capsys)


def test_debug_raises_the_error_with_its_traceback(files):
    files["predictions"].write_bytes(b"")
    with pytest.raises(ValueError, match="the file is empty"):
        evaluate(files, debug=True)


def test_an_interrupted_run_says_how_to_resume(files, monkeypatch, capsys):
    def interrupted(request: runner.EvaluationRequest) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_evaluation", interrupted)
    assert evaluate(files) == 130
    err = capsys.readouterr().err
    assert "interrupted; no report written" in err and "run the same command again to resume" in err
