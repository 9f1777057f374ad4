"""The judge's prompts: the built-in wording, a user's prompts file, its validation, and the report's record."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from microemo.evaluation.cli import register
from microemo.evaluation.emer import evaluate_emer
from microemo.evaluation.emer_set_accuracy.emer_set_accuracy import EmerSetAccuracy
from microemo.evaluation.judge import JudgeClient, JudgeConfig
from microemo.evaluation.labels import parse_groupings
from microemo.evaluation.prompts import (
    BUILT_IN_PROMPTS,
    EXTRACTION_PROMPT,
    GROUPING_PROMPT,
    PROMPTS_SHA256,
    PromptFileError,
    PromptSet,
    load_prompts,
)
from microemo.evaluation.testing import ScriptedJudge

# A user's own wording; the JSON-looking braces show that only the placeholder is formatted.
USER_GROUPING = 'Cluster these feelings by meaning, e.g. {"x": 1} is not a placeholder.\nWords={labels}\nGroups:'
USER_EXTRACTION = "Which feelings does the lead show? Reply as [a, b] or [].\nText={description}\nFeelings:"
USER_YAML = f"grouping: {json.dumps(USER_GROUPING)}\nextraction: {json.dumps(USER_EXTRACTION)}\n"

REFERENCES_CSV = """name,openset
sample_00000001,"['happy', 'excited']"
sample_00000002,"['angry']"
"""
DESCRIPTIONS_CSV = """name,english
sample_00000001,"He smiles; he seems joyful."
sample_00000002,"She raises her voice; she is furious."
"""
# joyful ~ happy: 1, 1/2.  furious ~ angry: 1, 1.
ACCURACY, RECALL = 1.0, 0.75


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def evaluate_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="microemo")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv, "--no-progress"])
    return args.func(args)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "references": write(tmp_path / "refs.csv", REFERENCES_CSV),
        "descriptions": write(tmp_path / "pred.csv", DESCRIPTIONS_CSV),
        "report": tmp_path / "report.json",
        "prompts": write(tmp_path / "my-prompts.yaml", USER_YAML),
    }


# -- the built-in wording ----------------------------------------------------------------------
def test_the_grouping_prompt_gives_the_union_sorted_whatever_the_set_order():
    prompt = BUILT_IN_PROMPTS.grouping_prompt({"sad", "happy", "angry"})
    assert prompt == BUILT_IN_PROMPTS.grouping_prompt(["angry", "sad", "happy"])
    assert prompt.endswith("Words: ['angry', 'happy', 'sad']\nAnswer:")
    assert BUILT_IN_PROMPTS.source == "built-in" and BUILT_IN_PROMPTS.sha256 == PROMPTS_SHA256
    assert len(PROMPTS_SHA256) == 64


def test_the_built_in_examples_are_answers_our_parsers_read():
    example = GROUPING_PROMPT.split("Example answer: ", 1)[1].split("\n", 1)[0]
    assert parse_groupings(example) == [["afraid", "frightened", "scared"], ["bored"], ["grateful", "thankful"]]
    assert "Example answer: []" in EXTRACTION_PROMPT
    assert BUILT_IN_PROMPTS.extraction_prompt("a {labels} b").endswith("Text: a {labels} b\nAnswer:")


# -- a user's prompts file -----------------------------------------------------------------------
def test_a_yaml_prompts_file_is_read_used_as_written_and_hashed(files):
    prompts = load_prompts(files["prompts"])
    assert (prompts.grouping, prompts.extraction) == (USER_GROUPING, USER_EXTRACTION)
    assert prompts.source == str(files["prompts"])
    assert prompts.sha256 != PROMPTS_SHA256
    assert prompts.grouping_prompt({"sad", "angry"}).endswith("Words=['angry', 'sad']\nGroups:")
    assert prompts.extraction_prompt("She beams.") == USER_EXTRACTION.replace("{description}", "She beams.")


def test_a_json_file_with_the_built_in_wording_has_the_built_in_hash(tmp_path):
    path = write(tmp_path / "copy.json", json.dumps(BUILT_IN_PROMPTS.to_dict()))
    prompts = load_prompts(path)
    assert prompts.sha256 == PROMPTS_SHA256 and prompts.source == str(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", f"grouping: {json.dumps(USER_GROUPING)}\n",
         r"key 'extraction' is missing; expected the extraction template, holding \{description\}"),
        ("a.json", json.dumps({"extraction": USER_EXTRACTION}),
         r"key 'grouping' is missing; expected the grouping template, holding \{labels\}"),
        ("a.json", json.dumps({"grouping": "Group: {label}", "extraction": USER_EXTRACTION}),
         r"key 'grouping': the template does not hold the placeholder \{labels\}; expected \{labels\} exactly once"),
        ("a.yaml", USER_YAML.replace("Text={description}", "Text={description} again {description}"),
         r"key 'extraction': the template holds \{description\} 2 times; expected \{description\} exactly once"),
        ("a.json", json.dumps({"grouping": "{labels} {description}", "extraction": USER_EXTRACTION}),
         r"key 'grouping': unknown placeholder\(s\) \{description\}; expected only \{labels\}"),
        ("a.yaml", USER_YAML + "model: gpt-4o\n", r"unknown key 'model'; expected only 'grouping' and 'extraction'"),
        ("a.yaml", "grouping: [a, b]\nextraction: x\n", r"key 'grouping': got list .*; expected a string template"),
        ("a.json", '{"grouping": "{labels}", "extraction": ', r"not valid JSON \(Expecting value at line 1, column 40\)"),
        ("a.json", json.dumps(BUILT_IN_PROMPTS.to_dict())[:-1] + ', "grouping": "{labels}"}',
         r"key 'grouping' is written twice"),
        ("a.yaml", "grouping: 'x {labels}'\n  extraction: [\n", r"not valid YAML \(.* at line 2, column"),
        ("a.yaml", USER_YAML + f"grouping: {json.dumps(USER_GROUPING)}\n", r"not valid YAML \(key 'grouping' is written twice"),
        ("a.yaml", "- grouping\n- extraction\n", r"got a list; expected a mapping with the keys 'grouping' and 'extraction'"),
        ("a.txt", USER_YAML, r"unknown suffix '.txt'; expected .json, .yaml or .yml"),
    ],
)
def test_a_malformed_prompts_file_is_refused_naming_the_file_key_and_rule(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(PromptFileError, match=message) as raised:
        load_prompts(path)
    assert str(raised.value).startswith(f"judge prompts file {path}: ")


def test_a_missing_prompts_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"judge prompts file .*nope.yaml: no such file"):
        load_prompts(tmp_path / "nope.yaml")


def test_a_prompt_set_made_in_python_is_validated_too():
    with pytest.raises(PromptFileError, match=r"in-memory judge prompts: key 'extraction': .* \{description\}"):
        PromptSet(grouping="{labels}", extraction="no placeholder")


# -- the prompts reach the judge, and the report records them ---------------------------------
def test_the_judge_is_asked_in_the_users_wording_and_the_report_records_it(files, judge_env, capsys):
    user = load_prompts(files["prompts"])
    argv = ["--predictions", str(files["descriptions"]), "--references", str(files["references"]),
            "--output", str(files["report"]), "--judge-model", "judge-test", "--judge-cache", str(judge_env)]
    with ScriptedJudge() as server:
        assert evaluate_cli(*argv, "--judge-base-url", server.base_url) == 0
        built_in = json.loads(files["report"].read_text())
    with ScriptedJudge(prompts=user) as server:
        assert evaluate_cli(*argv, "--judge-base-url", server.base_url, "--judge-prompts", str(files["prompts"])) == 0
        sent = [request["messages"][-1]["content"] for request in server.requests]
    report = json.loads(files["report"].read_text())
    assert (built_in["prompts_sha256"], built_in["prompts_source"]) == (PROMPTS_SHA256, "built-in")
    assert built_in["prompts"] == BUILT_IN_PROMPTS.to_dict()
    assert (report["prompts_sha256"], report["prompts_source"]) == (user.sha256, str(files["prompts"]))
    assert report["prompts"] == {"grouping": USER_GROUPING, "extraction": USER_EXTRACTION}
    # Other wording is another cache key: the second run asked again, in the user's words.
    assert report["judge"]["stats"]["calls"] == 4 and report["judge"]["stats"]["cache_hits"] == 0
    assert sum(prompt.startswith("Cluster these feelings") for prompt in sent) == 2
    assert sum(prompt.startswith("Which feelings") for prompt in sent) == 2
    assert report["scores"]["accuracy_s"] == built_in["scores"]["accuracy_s"] == pytest.approx(ACCURACY)
    assert report["scores"]["recall_s"] == built_in["scores"]["recall_s"] == pytest.approx(RECALL)
    assert f"prompts {files['prompts']} (sha256 {user.sha256[:12]})" in capsys.readouterr().out


def test_a_malformed_prompts_file_stops_the_run_before_any_call(files, judge_env, tmp_path, capsys):
    bad = write(tmp_path / "bad.json", json.dumps({"grouping": "{labels}"}))
    with ScriptedJudge() as server:
        code = evaluate_cli("--predictions", str(files["descriptions"]), "--references", str(files["references"]),
                            "--output", str(files["report"]), "--judge-model", "m", "--judge-base-url",
                            server.base_url, "--judge-cache", str(judge_env), "--judge-prompts", str(bad))
        assert server.calls == 0
    assert code == 1
    assert f"judge prompts file {bad}: key 'extraction' is missing" in capsys.readouterr().err
    assert not files["report"].exists()


def test_evaluate_emer_takes_a_prompt_set_and_records_it(judge_env):
    user = PromptSet(grouping=USER_GROUPING, extraction=USER_EXTRACTION)
    with ScriptedJudge(prompts=user) as server:
        with JudgeClient(JudgeConfig(model="m", base_url=server.base_url, cache_path=judge_env)) as client:
            evaluation = evaluate_emer(["a"], [["happy", "excited"]], ["He seems joyful."], judge=client,
                                       judge_prompts=user, progress=False)
        sent = [request["messages"][-1]["content"] for request in server.requests]
    assert evaluation.prompts is user and evaluation.summary["recall_s"] == pytest.approx(0.5)
    assert sent == [user.extraction_prompt("He seems joyful."), user.grouping_prompt(["excited", "happy", "joyful"])]


def test_the_evaluate_module_takes_a_prompts_file_and_reports_its_hash(files, judge_env):
    user = load_prompts(files["prompts"])
    with ScriptedJudge(prompts=user) as server:
        result = EmerSetAccuracy(keep_in_memory=True).compute(
            predictions=["He seems joyful.", ["furious"]],
            references=[["happy", "excited"], ["angry"]],
            judge={"model": "m", "base_url": server.base_url, "cache_path": str(judge_env)},
            judge_prompts=str(files["prompts"]),
        )
    assert (result["prompts_sha256"], result["prompts_source"]) == (user.sha256, str(files["prompts"]))
    assert (result["accuracy_s"], result["recall_s"]) == (pytest.approx(ACCURACY), pytest.approx(RECALL))
    saved_only = EmerSetAccuracy(keep_in_memory=True).compute(
        predictions=[["joyful"]], references=[["happy"]], groupings={"0": [["happy", "joyful"]]}
    )
    assert (saved_only["prompts_sha256"], saved_only["prompts_source"]) == (PROMPTS_SHA256, "built-in")


def test_the_readme_example_prompts_file_is_valid(tmp_path):
    readme = (Path(__file__).parents[2] / "evaluation" / "README.md").read_text(encoding="utf-8")
    example = readme.split("# my-prompts.yaml\n", 1)[1].split("```", 1)[0]
    prompts = load_prompts(write(tmp_path / "my-prompts.yaml", example))
    assert prompts.grouping.endswith("Words: {labels}") and prompts.extraction.endswith("Text: {description}")
