"""Judge endpoints that misbehave: each fails in bounded time with a message naming the endpoint and
the model, or is retried, or fails one sample while the run goes on. Timeouts here are short so
that every test takes a few seconds at most; none asserts how fast anything ran."""

from __future__ import annotations

import pytest

from microemo.evaluation.emer import evaluate_emer
from microemo.evaluation.judge import (
    JudgeClient,
    JudgeConfig,
    JudgeError,
    JudgeReplyError,
    JudgeUnavailableError,
)
from microemo.evaluation.labels import parse_groupings
from microemo.evaluation.testing import Reply, ScriptedJudge, correct_reply

NAMES = ["s1", "s2", "s3"]
REFERENCES = [["happy", "excited"], ["angry"], ["sad", "worried"]]
PREDICTIONS = [["joyful"], ["furious", "confused"], ["upset", "nervous"]]
EXPECTED_ACCURACY = (1 + 0.5 + 1) / 3


def config(server: ScriptedJudge, cache, **overrides) -> JudgeConfig:
    settings = dict(model="judge-test", base_url=server.base_url, cache_path=cache, concurrency=1,
                    timeout=2.0, max_retries=2, backoff_initial=0.01, backoff_max=0.02)
    settings.update(overrides)
    return JudgeConfig(**settings)


def run(server: ScriptedJudge, cache, **overrides):
    with JudgeClient(config(server, cache, **overrides)) as client:
        evaluation = evaluate_emer(NAMES, REFERENCES, PREDICTIONS, judge=client, progress=False)
        return evaluation, client.stats


def always(reply: Reply):
    return lambda prompt, nth: reply


def names_the_endpoint(message: str, server: ScriptedJudge) -> bool:
    return server.base_url in message and "'judge-test'" in message


# -- HTTP 200 that is not a chat completion ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(body=b"<!doctype html><title>Open WebUI</title>", content_type="text/html"),
         r"not JSON \(text/html\): '<!doctype html>.*ends in /v1"),
        (Reply(body=b"upstream connect error"), r"not JSON \(application/json\): 'upstream connect error'"),
        (Reply(body=b""), "not JSON .*an empty body"),
        (Reply(payload={"object": "chat.completion", "model": "judge-test"}), r"without choices\[0\]\.message\.content"),
        (Reply(payload={"choices": []}), r"without choices\[0\]\.message\.content"),
        (Reply(payload={"error": {"message": "model is still loading"}}), "an error object: 'model is still loading'"),
    ],
    ids=["html-page", "text-as-json", "empty-body", "no-choices", "empty-choices", "error-object"],
)
def test_a_200_that_is_not_a_chat_completion_is_retried_then_names_the_endpoint(judge_env, reply, expected):
    with ScriptedJudge(always(reply)) as server:
        with pytest.raises(JudgeUnavailableError, match=expected) as raised:
            run(server, judge_env, max_retries=2)
        assert server.calls == 3  # the first ask and two retries, then the run stops
    message = str(raised.value)
    assert names_the_endpoint(message, server) and "failed 3 attempts" in message
    assert "Expecting value" not in message


def test_a_single_non_json_reply_is_retried_and_the_scores_are_right(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply(body=b"<html>busy</html>", content_type="text/html") if nth == 0 else Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env)
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert evaluation.summary["complete"] is True
    assert stats.invalid_responses == 3 and stats.retries == 3


# -- empty replies ------------------------------------------------------------------------------------------
def test_an_empty_reply_fails_that_sample_saying_why_and_the_run_goes_on(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply("", finish_reason="length") if "furious" in prompt else Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env, parse_retries=1)
    [failed] = evaluation.failures
    assert failed.name == "s2"
    assert "empty reply (finish_reason 'length')" in failed.error and "max_tokens=1000" in failed.error
    assert evaluation.summary["num_scored"] == 2 and evaluation.summary["complete"] is False
    assert stats.malformed_replies == 2  # the first ask and one re-ask


def test_an_empty_content_beside_reasoning_text_says_so(judge_env):
    reasoning = {
        "model": "judge-test",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": None, "reasoning_content": "Let me think..."}}],
    }
    with ScriptedJudge(always(Reply(payload=reasoning))) as server:
        with JudgeClient(config(server, judge_env, parse_retries=0)) as client:
            with pytest.raises(JudgeReplyError, match="reasoning field"):
                client.complete("['angry', 'furious']", parse_groupings)


# -- no answer, or an answer that never ends ---------------------------------------------------------------
def test_a_judge_that_never_answers_stops_after_the_timeout_retries_not_the_full_retry_budget(judge_env):
    with ScriptedJudge(always(Reply(hang=True))) as server:
        with pytest.raises(JudgeUnavailableError, match="did not answer: no complete reply within 0.5 s") as raised:
            run(server, judge_env, timeout=0.5, max_retries=5, timeout_retries=1)
        assert server.calls == 2  # 1 + timeout_retries, although max_retries allows 6 attempts
    assert names_the_endpoint(str(raised.value), server) and "--judge-timeout" in str(raised.value)


def test_a_reply_that_trickles_in_counts_as_a_timeout(judge_env):
    # Each byte arrives well within the timeout, but the whole reply would take ~15 s.
    slow = Reply("[['angry', 'furious'], ['confused']]", drip=0.05)
    with ScriptedJudge(always(slow)) as server:
        with pytest.raises(JudgeUnavailableError, match="no complete reply within 0.5 s"):
            run(server, judge_env, timeout=0.5, timeout_retries=0)
        assert server.calls == 1


def test_a_dropped_connection_is_retried_then_named(judge_env):
    with ScriptedJudge(always(Reply(drop=True))) as server:
        with pytest.raises(JudgeUnavailableError, match="APIConnectionError.*disconnected") as raised:
            run(server, judge_env, max_retries=1)
        assert server.calls == 2
    assert names_the_endpoint(str(raised.value), server)


def test_the_default_settings_bound_a_hung_judge_to_about_two_minutes():
    defaults = JudgeConfig(model="m")
    # What README "Errors and timeouts" promises: (timeout_retries + 1) x timeout, plus one backoff.
    bound = (defaults.timeout_retries + 1) * defaults.timeout + defaults.backoff_initial
    assert bound <= 125
    assert defaults.connect_timeout <= defaults.timeout


def test_a_run_stopped_by_a_hung_judge_resumes_from_the_cache(judge_env):
    answered: list[str] = []

    def hangs_after_two(prompt: str, nth: int) -> Reply:
        if len(answered) >= 2:
            return Reply(hang=True)
        answered.append(prompt)
        return Reply(correct_reply(prompt))

    with ScriptedJudge(hangs_after_two) as server:
        with pytest.raises(JudgeUnavailableError, match="did not answer"):
            run(server, judge_env, timeout=0.5, timeout_retries=0)
    with ScriptedJudge() as server:
        evaluation, stats = run(server, judge_env)
        asked = [r["messages"][-1]["content"] for r in server.requests]
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert stats.cache_hits == 2 and not set(asked) & set(answered)


# -- 4xx ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, r"key in \$OPENAI_API_KEY was refused"), (403, r"key in \$OPENAI_API_KEY was refused"),
     (404, "does not know model 'judge-test', or the base URL is wrong")],
)
def test_a_refused_key_or_unknown_model_fails_at_once_naming_endpoint_and_model(judge_env, status, hint):
    with ScriptedJudge(always(Reply(status=status))) as server:
        with pytest.raises(JudgeUnavailableError, match=rf"HTTP {status}.*{hint}") as raised:
            run(server, judge_env, max_retries=5)
        assert server.calls == 1
    assert names_the_endpoint(str(raised.value), server)


def test_a_prompt_the_endpoint_refuses_fails_that_sample_only(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply(status=400) if "furious" in prompt else Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env)
        refused_calls = sum("furious" in r["messages"][-1]["content"] for r in server.requests)
    [failed] = evaluation.failures
    assert failed.name == "s2" and "refused this prompt with HTTP 400" in failed.error
    assert refused_calls == 1  # not retried
    assert evaluation.summary["num_scored"] == 2 and stats.refused_prompts == 1


def test_an_endpoint_that_refuses_every_prompt_stops_the_run(judge_env):
    with ScriptedJudge(always(Reply(status=422))) as server:
        with pytest.raises(JudgeUnavailableError, match="refused the first 3 prompts and accepted none"):
            run(server, judge_env)
        assert server.calls == 3


# -- the batch as a whole ------------------------------------------------------------------------------------------
def test_once_one_request_stops_the_run_the_others_are_not_sent_again(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply(status=401, delay=0.2) if "p0" in prompt else Reply(hang=True)

    prompts = ["['p0']", "['p1']", "['p2']", "['p3']"]
    with ScriptedJudge(responder) as server:
        with JudgeClient(config(server, judge_env, concurrency=4, timeout=1.0, timeout_retries=3)) as client:
            with pytest.raises(JudgeUnavailableError, match="HTTP 401"):
                client.complete_many(prompts, parse_groupings, progress=False)
        # Each hung request timed out once and was not retried, although timeout_retries allows 3.
        assert server.calls == 4


def test_the_progress_bar_says_when_it_waits_and_retries(judge_env, capsys):
    with ScriptedJudge(always(Reply(hang=True))) as server:
        with JudgeClient(config(server, judge_env, timeout=1.0, timeout_retries=1)) as client:
            with pytest.raises(JudgeUnavailableError):
                client.complete_many(["['angry', 'mad']"], parse_groupings, desc="grouping", progress=True)
    shown = capsys.readouterr().err
    assert "waiting" in shown and "of 1s for 1 reply" in shown
    assert "retry 1 of 2 after no complete reply within 1 s" in shown


# -- settings ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout", float("nan")), ("timeout", float("inf")), ("timeout", 0), ("timeout", -1.0),
     ("connect_timeout", float("nan")), ("backoff_max", float("inf")), ("timeout_retries", -1),
     ("concurrency", 2.5), ("max_retries", True), ("temperature", float("nan"))],
)
def test_settings_that_cannot_bound_the_time_are_refused(setting, value):
    with pytest.raises(ValueError, match=rf"JudgeConfig\.{setting}: got"):
        JudgeConfig(model="m", **{setting: value})


def test_a_cache_path_that_is_a_folder_is_named(judge_env, tmp_path):
    with pytest.raises(JudgeError, match="is a folder; expected the path of a SQLite file"):
        JudgeClient(JudgeConfig(model="m", cache_path=tmp_path))
