"""The judge over real HTTP: correct scores, retries, the cache, resuming, and clear failures."""

from __future__ import annotations

import socket

import pytest

from microemo.evaluation.emer import evaluate_emer
from microemo.evaluation.judge import (
    JudgeClient,
    JudgeConfig,
    JudgeError,
    JudgeUnavailableError,
    MissingAPIKeyError,
)
from microemo.evaluation.prompts import grouping_prompt
from microemo.evaluation.testing import Reply, ScriptedJudge, correct_reply

# Six samples: labels, list strings and one free-form explanation.
NAMES = ["s1", "s2", "s3", "s4", "s5", "s6"]
REFERENCES = [["happy", "excited"], ["angry"], ["sad", "worried"], ["calm"], ["surprised"], ["anxious", "sad"]]
PREDICTIONS = [
    ["joyful"],  # joyful ~ happy: acc 1, recall 1/2
    "[furious, mad, confused]",  # {angry, confused}: acc 1/2, recall 1
    ["upset", "nervous"],  # {sad, anxious}: 1, 1
    [],  # empty: 0, 0, no judge call
    ["surprised"],  # equal to the reference: 1, 1, no judge call
    "She looks nervous and upset while speaking.",  # extracted [nervous, upset] -> 1, 1
]
EXPECTED_ACCURACY = (1 + 0.5 + 1 + 0 + 1 + 1) / 6
EXPECTED_RECALL = (0.5 + 1 + 1 + 0 + 1 + 1) / 6
JUDGED_PROMPTS = 5  # 1 extraction + 4 groupings (s4 and s5 need none)


def config(server: ScriptedJudge, cache, **overrides) -> JudgeConfig:
    settings = dict(model="judge-test", base_url=server.base_url, cache_path=cache, concurrency=4,
                    timeout=2.0, max_retries=3, backoff_initial=0.01, backoff_max=0.05)
    settings.update(overrides)
    return JudgeConfig(**settings)


def run(server: ScriptedJudge, cache, **overrides):
    with JudgeClient(config(server, cache, **overrides)) as client:
        evaluation = evaluate_emer(NAMES, REFERENCES, PREDICTIONS, judge=client, progress=False)
        return evaluation, client.stats


def test_judged_scores_match_the_hand_computed_values(judge_env):
    with ScriptedJudge() as server:
        evaluation, stats = run(server, judge_env)
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert evaluation.summary["recall_s"] == pytest.approx(EXPECTED_RECALL)
    assert evaluation.summary["avg"] == pytest.approx((EXPECTED_ACCURACY + EXPECTED_RECALL) / 2)
    assert evaluation.summary["complete"] is True
    by_name = {sample.name: sample for sample in evaluation.samples}
    assert by_name["s6"].prediction == ["nervous", "upset"]
    assert by_name["s4"].grouping_source == by_name["s5"].grouping_source == "not-needed"
    assert by_name["s1"].grouping_source == "judge"
    assert by_name["s2"].mapped_prediction == ["angry", "confused"]  # the union is sorted: "angry" heads its group
    assert server.calls == stats.calls == JUDGED_PROMPTS
    assert stats.prompt_tokens == 11 * JUDGED_PROMPTS and stats.completion_tokens == 7 * JUDGED_PROMPTS
    assert stats.served_models == ["judge-test-served"]
    # Temperature 0 and the protocol's token budget are what the endpoint received.
    assert all(r["temperature"] == 0 and r["max_tokens"] == 1000 and r["model"] == "judge-test" for r in server.requests)


def test_a_second_run_is_served_entirely_from_the_cache(judge_env):
    with ScriptedJudge() as server:
        first, _ = run(server, judge_env)
        calls_after_first = server.calls
        second, stats = run(server, judge_env)
    assert server.calls == calls_after_first == JUDGED_PROMPTS
    assert stats.calls == 0 and stats.cache_hits == JUDGED_PROMPTS
    assert second.summary == first.summary
    assert {s.grouping_source for s in second.samples} == {"cache", "not-needed"}


def test_malformed_replies_are_retried_then_parsed(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply("I would say they are similar.") if nth == 0 else Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env)
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert stats.malformed_replies == JUDGED_PROMPTS
    assert server.calls == 2 * JUDGED_PROMPTS
    # The rejected replies are kept for auditing; the accepted one is what a re-run is served.
    sample = next(s for s in evaluation.samples if s.name == "s1")
    with JudgeClient(config(server, judge_env)) as client:
        key = client.cache_key(grouping_prompt(set(sample.reference) | set(sample.prediction)))
        assert client.cache.rejected(key) == ["I would say they are similar."]
        assert client.cache.get(key) == sample.grouping_reply


def test_replies_that_never_parse_are_reported_per_sample_not_scored_zero(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        if "furious" in prompt:
            return Reply("These emotions cannot be grouped.")
        return Reply(correct_reply(prompt))

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env, parse_retries=2)
        broken_prompt_calls = sum("furious" in r["messages"][-1]["content"] for r in server.requests)
    assert broken_prompt_calls == 3  # the first ask and two re-asks
    failed = evaluation.failures
    assert [sample.name for sample in failed] == ["s2"]
    assert "did not parse" in failed[0].error and failed[0].failed_replies[0].startswith("These emotions")
    assert failed[0].accuracy is None
    summary = evaluation.summary
    assert summary["complete"] is False and summary["num_failed"] == 1 and summary["num_scored"] == 5
    # The mean is over the five scored samples: s2 is neither zero nor silently dropped from the counts.
    assert summary["accuracy_s"] == pytest.approx((1 + 1 + 0 + 1 + 1) / 5)
    assert stats.failures == 1


def test_rate_limits_and_server_errors_are_retried_with_backoff(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        if nth == 0:
            return Reply(status=429, headers={"Retry-After": "0.04"})
        if nth == 1:
            return Reply(status=500)
        return Reply(correct_reply(prompt))

    delays: list[float] = []
    with ScriptedJudge(responder) as server:
        with JudgeClient(config(server, judge_env), sleep=delays.append) as client:
            evaluation = evaluate_emer(NAMES, REFERENCES, PREDICTIONS, judge=client, progress=False)
            stats = client.stats
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert stats.rate_limited == JUDGED_PROMPTS and stats.server_errors == JUDGED_PROMPTS
    assert stats.retries == 2 * JUDGED_PROMPTS and server.calls == 3 * JUDGED_PROMPTS
    assert len(delays) == 2 * JUDGED_PROMPTS
    # After a 429 the client waits at least Retry-After (capped at backoff_max = 0.05 s).
    assert sum(delay >= 0.04 for delay in delays) >= JUDGED_PROMPTS
    assert all(0 < delay <= 0.05 for delay in delays)


def test_a_reply_slower_than_the_timeout_is_retried(judge_env):
    def responder(prompt: str, nth: int) -> Reply:
        return Reply(correct_reply(prompt), delay=2.5 if nth == 0 and "furious" in prompt else 0.0)

    with ScriptedJudge(responder) as server:
        evaluation, stats = run(server, judge_env, timeout=1.0)
        slow_prompt_calls = sum("furious" in r["messages"][-1]["content"] for r in server.requests)
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    # The late reply was abandoned and asked again; the generous 1 s timeout keeps a busy CI
    # machine from timing out the fast replies too.
    assert slow_prompt_calls == 2
    assert stats.timeouts >= 1 and stats.retries >= 1


def test_an_unreadable_cache_file_is_a_clear_error(judge_env):
    judge_env.write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises(JudgeError, match="cannot open it as SQLite"):
        JudgeClient(JudgeConfig(model="m", cache_path=judge_env))


def test_an_endpoint_that_keeps_failing_stops_the_run_with_a_clear_error(judge_env):
    with ScriptedJudge(lambda prompt, nth: Reply(status=503)) as server:
        with pytest.raises(JudgeUnavailableError, match=r"failed 3 attempts.*503") as raised:
            run(server, judge_env, max_retries=2, concurrency=1)
        assert server.base_url in str(raised.value)
        assert server.calls == 3  # bounded: one prompt, 1 + 2 retries, then the batch stops


def test_a_refused_key_fails_at_once_without_retries(judge_env):
    with ScriptedJudge(lambda prompt, nth: Reply(status=401)) as server:
        with pytest.raises(JudgeUnavailableError, match="HTTP 401"):
            run(server, judge_env, concurrency=1)
        assert server.calls == 1


def test_an_unreachable_endpoint_is_a_clear_error(judge_env):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = JudgeConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", cache_path=judge_env, max_retries=1,
                      backoff_initial=0.01, timeout=2.0)
    with JudgeClient(cfg) as client:
        with pytest.raises(JudgeUnavailableError, match=rf"127.0.0.1:{port}.*APIConnectionError"):
            evaluate_emer(NAMES, REFERENCES, PREDICTIONS, judge=client, progress=False)
        assert client.stats.connection_errors == 2


def test_a_missing_api_key_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="MY_JUDGE_KEY"):
        JudgeClient(JudgeConfig(model="m", api_key_env="MY_JUDGE_KEY", cache_path=tmp_path / "c.sqlite"))


def test_an_interrupted_run_resumes_without_repeating_finished_samples(judge_env):
    # The first server dies (401 for everything) after answering three grouping prompts.
    answered: list[str] = []

    def flaky(prompt: str, nth: int) -> Reply:
        if len(answered) >= 3:
            return Reply(status=401)
        answered.append(prompt)
        return Reply(correct_reply(prompt))

    with ScriptedJudge(flaky) as server:
        with pytest.raises(JudgeUnavailableError):
            run(server, judge_env, concurrency=1)
    with ScriptedJudge() as server:
        evaluation, stats = run(server, judge_env, concurrency=1)
        resumed_prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert evaluation.summary["accuracy_s"] == pytest.approx(EXPECTED_ACCURACY)
    assert stats.cache_hits == 3 and server.calls == JUDGED_PROMPTS - 3
    assert not set(resumed_prompts) & set(answered)


def test_config_rejects_values_that_cannot_work():
    with pytest.raises(ValueError, match="model"):
        JudgeConfig(model=" ")
    with pytest.raises(ValueError, match="concurrency"):
        JudgeConfig(model="m", concurrency=0)
    with pytest.raises(ValueError, match="max_retries"):
        JudgeConfig(model="m", max_retries=-1)
