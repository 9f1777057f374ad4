"""A judge client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

What it adds to the `openai` package:

* bounded concurrency (a thread pool; the sync client is thread-safe),
* its own retry loop with exponential backoff and jitter on 429, 5xx, timeouts, dropped
  connections and 200 replies that are not a chat completion (honouring ``Retry-After``),
  bounded by ``max_retries``; the `openai` client's own retries are switched off so that every
  attempt is counted,
* bounded time: a connect timeout, a deadline for the whole reply (a reply that trickles in
  counts as a timeout too) and a separate, small budget of retries after timeouts, so that a
  judge that never answers stops the run in about ``(timeout_retries + 1) * timeout`` seconds,
* a note on the progress bar while requests wait long or are retried,
* re-asking when a reply does not parse, bounded by ``parse_retries``,
* a persistent SQLite cache of every accepted reply keyed by (model, messages, parameters), so a
  re-run makes no calls and a crashed run resumes where it stopped; replies that did not parse
  are kept there too, for auditing, but are never served,
* accounting of calls, cache hits, retries, failures and tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx2
import openai
from tqdm.auto import tqdm

__all__ = [
    "JudgeConfig",
    "JudgeClient",
    "JudgeCache",
    "JudgeStats",
    "Completion",
    "JudgeError",
    "JudgeUnavailableError",
    "JudgeReplyError",
    "MissingAPIKeyError",
    "default_cache_path",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)


class JudgeError(RuntimeError):
    """Base class of the judge's errors."""


class MissingAPIKeyError(JudgeError):
    """The environment variable that should hold the API key is unset or empty."""


class JudgeUnavailableError(JudgeError):
    """The endpoint cannot be used: unreachable, overloaded past every retry, or refusing the request."""


class JudgeReplyError(JudgeError):
    """Every reply to one prompt failed to parse; holds the replies and the last parse error."""

    def __init__(self, message: str, replies: Sequence[str]) -> None:
        super().__init__(message)
        self.replies = list(replies)


def default_cache_path() -> Path:
    """``$MICROEMO_JUDGE_CACHE``, else ``$XDG_CACHE_HOME/microemo/judge-cache.sqlite`` (``~/.cache`` by default)."""
    if os.environ.get("MICROEMO_JUDGE_CACHE"):
        return Path(os.environ["MICROEMO_JUDGE_CACHE"])
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "microemo" / "judge-cache.sqlite"


@dataclass(frozen=True)
class JudgeConfig:
    """How to reach and use the judge.

    Args:
        model: the model name the endpoint serves (the protocol's `gpt-3.5-turbo-16k-0613` is
            retired; scores are comparable only under one judge, so it is always named).
        base_url: the endpoint, e.g. ``http://localhost:8000/v1`` (vLLM) or
            ``http://localhost:11434/v1`` (Ollama); ``None`` means ``$OPENAI_BASE_URL`` or OpenAI.
        api_key_env: the environment variable holding the key. Local servers that need none
            still need a value there (any, e.g. ``EMPTY``), so that a forgotten key for a paid
            endpoint is caught before the first call.
        temperature, max_tokens: sampling parameters; temperature 0 and 1000 tokens as in the protocol.
        timeout: seconds a request may take, from sending it to the last byte of the reply
            (also the longest silence between two bytes); past it the request counts as timed out.
        connect_timeout: seconds to open a connection before that attempt counts as timed out.
        max_retries: retries per request after 429, 5xx, timeouts, connection errors and 200
            replies that are not a chat completion.
        timeout_retries: of those, at most this many after timeouts. A judge that never answers
            stops the run after about ``(timeout_retries + 1) * timeout`` seconds plus one backoff
            (about 2 minutes with the defaults).
        parse_retries: further requests when a reply does not parse.
        concurrency: requests in flight at once.
        backoff_initial, backoff_max: the first retry delay in seconds and its cap; delays double.
        cache_path: the SQLite cache file; ``None`` means :func:`default_cache_path`.
        use_cache: read and write the cache (off: every prompt is sent).
    """

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 1000
    timeout: float = 60.0
    connect_timeout: float = 10.0
    max_retries: int = 5
    timeout_retries: int = 1
    parse_retries: int = 2
    concurrency: int = 8
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    cache_path: str | Path | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"JudgeConfig.model: got {self.model!r}; expected the endpoint's model name")
        for name in ("max_retries", "timeout_retries", "parse_retries", "concurrency", "max_tokens"):
            value = getattr(self, name)
            least = 1 if name in ("concurrency", "max_tokens") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"JudgeConfig.{name}: got {value!r}; expected a whole number, {least} or more")
        for name in ("timeout", "connect_timeout", "backoff_initial", "backoff_max", "temperature"):
            value = getattr(self, name)
            positive = name in ("timeout", "connect_timeout")
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0 or (positive and value == 0)):
                rule = "a positive, finite number of seconds" if positive else "a finite number, 0 or more"
                raise ValueError(f"JudgeConfig.{name}: got {value!r}; expected {rule}")

    @property
    def sampling(self) -> dict[str, Any]:
        """The request parameters that change replies, and so belong to the cache key."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


@dataclass
class JudgeStats:
    """What a client did. ``calls`` counts HTTP requests sent, including failed and retried ones.

    ``invalid_responses`` counts 200 replies that were not a chat completion (not JSON, no
    ``choices``); ``refused_prompts`` counts prompts the endpoint refused with 400, 413 or 422;
    ``malformed_replies`` counts completions whose text did not parse (an empty one included).
    """

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
    invalid_responses: int = 0
    refused_prompts: int = 0
    malformed_replies: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    served_models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Completion(Generic[T]):
    """One accepted reply: its text, its parsed value, and whether it came from the cache."""

    key: str
    text: str
    value: T
    cached: bool


class JudgeCache:
    """Accepted replies in SQLite, one committed row per reply (so a crash loses nothing finished)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise JudgeError(f"judge cache {self.path}: is a folder; expected the path of a SQLite file "
                             "(an existing cache or a new one)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JudgeError(f"judge cache {self.path}: cannot create its folder ({error.strerror}); "
                             "expected a writable location") from error
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "request TEXT NOT NULL, reply TEXT NOT NULL, served_model TEXT, usage TEXT, created REAL)"
            )
            # Replies that did not parse are kept for auditing but never served from the cache,
            # so that a later run asks again.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS rejected (key TEXT NOT NULL, reply TEXT NOT NULL, error TEXT, created REAL)"
            )
            self._db.commit()
        except sqlite3.DatabaseError as error:
            raise JudgeError(f"judge cache {self.path}: cannot open it as SQLite ({error}); expected a cache file "
                             "written by this tool, or a new path") from error

    @staticmethod
    def key(model: str, messages: Sequence[dict[str, str]], sampling: dict[str, Any]) -> str:
        payload = json.dumps({"model": model, "messages": list(messages), "sampling": sampling}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, model: str, request: dict[str, Any], reply: str, served_model: str | None,
            usage: dict[str, int] | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, model, json.dumps(request, sort_keys=True), reply, served_model,
                 json.dumps(usage or {}), time.time()),
            )
            self._db.commit()

    def put_rejected(self, key: str, reply: str, error: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO rejected VALUES (?, ?, ?, ?)", (key, reply, error, time.time()))
            self._db.commit()

    def rejected(self, key: str) -> list[str]:
        """Replies to this key that did not parse, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT reply FROM rejected WHERE key = ? ORDER BY rowid", (key,)).fetchall()
        return [row[0] for row in rows]

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        """Accepted replies of the given keys that are in the cache (one query per 500 keys)."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, reply FROM replies WHERE key IN ({marks})", chunk).fetchall()
                found.update(rows)
        return found

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


_RETRYABLE_STATUS = {408, 409, 429}
# 4xx answers about one prompt (too long, unacceptable): that prompt fails, the run goes on.
_PROMPT_REFUSED_STATUS = {400, 413, 422}
# Refusals of the first prompts, with nothing accepted yet, after which the endpoint itself is blamed.
_REFUSALS_BEFORE_STOP = 3
# The progress bar says "waiting" once the oldest request in flight is older than this (or timeout / 4).
_WAITING_NOTICE_S = 5.0


class _BadResponse(Exception):
    """A 200 reply that is not a chat completion (not JSON, no ``choices``, an ``error`` object)."""


class _Stopped(JudgeUnavailableError):
    """Another request of the batch already stopped the run; this one is not sent."""


@dataclass(frozen=True)
class _Answer:
    """The parts of a chat completion the client uses."""

    text: str
    served_model: str | None
    usage: dict[str, int] | None
    finish_reason: str | None
    has_reasoning: bool


class _DeadlineStream(httpx2.SyncByteStream):
    """A response body that raises a read timeout once the request's deadline has passed."""

    def __init__(self, inner: httpx2.SyncByteStream, deadline: float, seconds: float) -> None:
        self._inner, self._deadline, self._seconds = inner, deadline, seconds

    def __iter__(self) -> Any:
        for chunk in self._inner:
            if time.monotonic() > self._deadline:
                raise httpx2.ReadTimeout(f"the reply was not complete after {self._seconds:g} s")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _DeadlineTransport(httpx2.BaseTransport):
    """Bounds the whole exchange, not only each read: a reply that trickles in byte by byte would
    otherwise never meet a per-read timeout."""

    def __init__(self, seconds: float) -> None:
        self._inner = httpx2.HTTPTransport()
        self._seconds = seconds

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + self._seconds
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_DeadlineStream(response.stream, deadline, self._seconds),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


class JudgeClient:
    """Sends prompts to the judge with caching, bounded retries, bounded time and bounded concurrency."""

    def __init__(self, config: JudgeConfig, *, sleep: Callable[[float], None] | None = None) -> None:
        api_key = os.environ.get(config.api_key_env, "").strip()
        if not api_key:
            raise MissingAPIKeyError(
                f"judge API key: environment variable {config.api_key_env} is unset or empty; set it to your key "
                f"for {config.resolved_base_url()} (local servers such as vLLM or Ollama accept any value, "
                "e.g. EMPTY)"
            )
        self.config = config
        self.stats = JudgeStats()
        self._stats_lock = threading.Lock()
        # Set when one request stops the run: the others send nothing more and stop waiting.
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._in_flight: dict[int, float] = {}  # request number -> start time, for the progress note
        self._requests_started = 0
        self._last_retry: str | None = None
        self._accepted = 0
        # The cache first: if it cannot be opened there is no HTTP client left to close.
        self.cache: JudgeCache | None = None
        if config.use_cache:
            self.cache = JudgeCache(config.cache_path or default_cache_path())
        timeout = httpx2.Timeout(config.timeout, connect=config.connect_timeout)
        http_client = openai.DefaultHttpxClient(transport=_DeadlineTransport(config.timeout), timeout=timeout)
        # The client's own retries are off: ours count every attempt and honour our bounds.
        self._openai = openai.OpenAI(
            api_key=api_key, base_url=config.resolved_base_url(), timeout=timeout, max_retries=0,
            http_client=http_client,
        )

    # -- one prompt ---------------------------------------------------------------------------
    def complete(self, prompt: str, parse: Callable[[str], T]) -> Completion[T]:
        """Answer one prompt: from the cache if an accepted reply is there, else from the endpoint.

        Raises :class:`JudgeReplyError` when no reply parses after ``parse_retries`` re-asks (or the
        endpoint refuses the prompt with 400, 413 or 422), and :class:`JudgeUnavailableError` when
        the endpoint fails past its retries or refuses the key or the model.
        """
        self._stop.clear()
        messages = self._messages(prompt)
        key = self._key(messages)
        if self.cache is not None:
            hit = self._from_cache(key, self.cache.get(key), parse)
            if hit is not None:
                return hit
        return self._ask(messages, key, parse)

    def cache_key(self, prompt: str) -> str:
        """The cache key of a prompt under this client's model and sampling parameters."""
        return self._key(self._messages(prompt))

    @staticmethod
    def _messages(prompt: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": prompt}]

    def _key(self, messages: list[dict[str, str]]) -> str:
        return JudgeCache.key(self.config.model, messages, self.config.sampling)

    def _where(self) -> str:
        return f"judge endpoint {self.config.resolved_base_url()} (model {self.config.model!r})"

    def _from_cache(self, key: str, cached: str | None, parse: Callable[[str], T]) -> Completion[T] | None:
        if cached is None:
            return None
        try:
            value = parse(cached)
        except ValueError:
            return None  # a cache written by an older, looser parser: ask again
        self._count(cache_hits=1)
        return Completion(key=key, text=cached, value=value, cached=True)

    def _ask(self, messages: list[dict[str, str]], key: str, parse: Callable[[str], T]) -> Completion[T]:
        replies: list[str] = []
        last_error: str | None = None
        for _ in range(self.config.parse_retries + 1):
            answer = self._request(messages)
            replies.append(answer.text)
            try:
                if not answer.text.strip():
                    raise ValueError(_empty_reply_reason(answer, self.config.max_tokens))
                value = parse(answer.text)
            except ValueError as error:
                last_error = str(error)
                self._count(malformed_replies=1)
                if self.cache is not None:
                    self.cache.put_rejected(key, answer.text, last_error)
                continue
            if self.cache is not None:
                request = {"model": self.config.model, "messages": messages, **self.config.sampling}
                self.cache.put(key, self.config.model, request, answer.text, answer.served_model, answer.usage)
            return Completion(key=key, text=answer.text, value=value, cached=False)
        self._count(failures=1)
        raise JudgeReplyError(
            f"judge {self.config.model}: {len(replies)} replies to one prompt did not parse; last error: {last_error}",
            replies,
        )

    def _request(self, messages: list[dict[str, str]]) -> _Answer:
        # A retry loop of our own rather than openai's max_retries (or tenacity): it counts every attempt for the
        # report's stats, bounds the retries after a timeout separately (--judge-timeout-retries), also retries
        # a 200 reply that is not a chat completion, and stops at once when another request failed for good.
        config = self.config
        timeouts = 0
        for attempt in range(config.max_retries + 1):
            if self._stop.is_set():
                raise _Stopped(f"{self._where()}: the run was stopped by another request's failure")
            retry_after: float | None = None
            self._count(calls=1)
            number = self._begin()
            try:
                raw = self._openai.chat.completions.with_raw_response.create(
                    model=config.model, messages=messages, **config.sampling
                )
                answer = _read_completion(raw.http_response)
            except openai.APITimeoutError as error:  # a subclass of APIConnectionError: test it first
                self._count(timeouts=1)
                timeouts += 1
                reason = _timeout_text(error, config)
                if timeouts > config.timeout_retries:
                    self._count(failures=1)
                    raise JudgeUnavailableError(
                        f"{self._where()} did not answer: {reason}, {timeouts} times in a row for one prompt; "
                        f"expected a complete reply within --judge-timeout {config.timeout:g} s (raise it for a "
                        "slow judge, or check that the server is not stuck)"
                    ) from error
            except openai.APIConnectionError as error:
                self._count(connection_errors=1)
                reason = f"APIConnectionError, {_cause_text(error)}"
            except openai.APIStatusError as error:
                status = error.status_code
                if status == 429:
                    self._count(rate_limited=1)
                elif status >= 500:
                    self._count(server_errors=1)
                elif status in _PROMPT_REFUSED_STATUS:
                    raise self._refused_prompt(status, error) from error
                elif status not in _RETRYABLE_STATUS:
                    self._count(failures=1)
                    raise JudgeUnavailableError(
                        f"{self._where()} refused the request with HTTP {status}: {_error_text(error)}"
                        f"{_status_hint(status, config)}"
                    ) from error
                reason = f"HTTP {status}: {_error_text(error)}"
                retry_after = _retry_after_seconds(error.response)
            except _BadResponse as error:
                self._count(invalid_responses=1)
                reason = str(error)
            else:
                self._account(answer)
                return answer
            finally:
                self._end(number)
            if attempt == config.max_retries:
                self._count(failures=1)
                raise JudgeUnavailableError(
                    f"{self._where()} failed {config.max_retries + 1} attempts; last error: {reason}"
                    f"{_BASE_URL_HINT if 'not a chat completion: not JSON' in reason else ''}"
                )
            self._count(retries=1)
            note = f"retry {attempt + 1} of {config.max_retries} after {reason}"
            with self._stats_lock:
                self._last_retry = note
            logger.info("%s: %s", self._where(), note)
            delay = min(config.backoff_max, config.backoff_initial * 2**attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, config.backoff_max))
            self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")  # pragma: no cover

    def _account(self, answer: _Answer) -> None:
        if answer.usage is not None:
            self._count(**answer.usage)
        with self._stats_lock:
            self._accepted += 1
            self._last_retry = None
            if answer.served_model and answer.served_model not in self.stats.served_models:
                self.stats.served_models.append(answer.served_model)

    def _refused_prompt(self, status: int, error: openai.APIStatusError) -> JudgeError:
        """A 400/413/422: this prompt fails alone, unless the endpoint has accepted nothing yet and
        refused the first few prompts, which says the requests themselves are wrong."""
        self._count(refused_prompts=1, failures=1)
        text = f"{self._where()} refused this prompt with HTTP {status}: {_error_text(error)}"
        with self._stats_lock:
            refused, accepted = self.stats.refused_prompts, self._accepted
        if accepted == 0 and refused >= _REFUSALS_BEFORE_STOP:
            return JudgeUnavailableError(
                f"{text}; it refused the first {refused} prompts and accepted none, so the run stops "
                "(check the model name, and that the server accepts temperature and max_tokens)"
            )
        return JudgeReplyError(
            f"{text}; this sample is reported as failed and the run goes on (a prompt too long for the "
            "judge's context is refused this way)", [])

    def _begin(self) -> int:
        with self._stats_lock:
            self._requests_started += 1
            self._in_flight[self._requests_started] = time.monotonic()
            return self._requests_started

    def _end(self, number: int) -> None:
        with self._stats_lock:
            self._in_flight.pop(number, None)

    def progress_note(self) -> str:
        """What the progress bar shows beside the count: long waits and the last retry, or nothing."""
        with self._stats_lock:
            starts = list(self._in_flight.values())
            retry = self._last_retry
        parts = []
        if starts:
            waited = time.monotonic() - min(starts)
            if waited >= min(_WAITING_NOTICE_S, self.config.timeout / 4):
                parts.append(
                    f"waiting {waited:.0f}s of {self.config.timeout:g}s for {len(starts)} "
                    f"repl{'y' if len(starts) == 1 else 'ies'}"
                )
        if retry:
            parts.append(retry)
        return "; ".join(parts)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    # -- many prompts -------------------------------------------------------------------------
    def complete_many(
        self, prompts: Sequence[str], parse: Callable[[str], T], *, desc: str = "judge", progress: bool = True
    ) -> list[Completion[T] | JudgeReplyError]:
        """Answer many prompts, ``concurrency`` at a time, in input order.

        A prompt whose replies never parse (or that the endpoint refuses alone) gives its
        :class:`JudgeReplyError` in its place; an unusable endpoint stops the whole batch with
        :class:`JudgeUnavailableError` (everything finished before is already in the cache, so the
        next run resumes from there). Once one request stops the batch, no other sends again.
        """
        self._stop.clear()
        first_failure: list[BaseException] = []  # the error that stopped the batch, not a _Stopped
        results: list[Completion[T] | JudgeReplyError | None] = [None] * len(prompts)
        messages = [self._messages(prompt) for prompt in prompts]
        keys = [self._key(message) for message in messages]
        # Cache hits are answered here in one query; only misses go to the thread pool.
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        misses = []
        for index, key in enumerate(keys):
            results[index] = self._from_cache(key, cached.get(key), parse)
            if results[index] is None:
                misses.append(index)

        def one(index: int) -> None:
            try:
                results[index] = self._ask(messages[index], keys[index], parse)
            except JudgeReplyError as error:
                results[index] = error
            except BaseException as error:
                with self._stats_lock:
                    if not first_failure or isinstance(first_failure[0], _Stopped):
                        first_failure[:] = [error]
                self._stop.set()
                raise

        bar = tqdm(total=len(prompts), initial=len(prompts) - len(misses), desc=desc,
                   disable=not progress or not prompts, leave=False)
        note = ""
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="judge") as pool:
            futures = [pool.submit(one, index) for index in misses]
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                    if any(future.exception() is not None for future in done):
                        # The error that stopped the batch, not a later "stopped by another request".
                        with self._stats_lock:
                            failure = first_failure[0]
                        raise failure
                    if done:
                        bar.update(len(done))
                    if self.progress_note() != note:
                        note = self.progress_note()
                        bar.set_postfix_str(note)
            except BaseException:
                self._stop.set()
                for future in pending:
                    future.cancel()
                raise
            finally:
                bar.close()
        return [result for result in results if result is not None]

    def close(self) -> None:
        self._openai.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_BASE_URL_HINT = "; check the base URL: it should be the API's, which usually ends in /v1"


def _read_completion(response: httpx2.Response) -> _Answer:
    """The text and accounting of a 200 reply, or :class:`_BadResponse` saying what it was instead."""
    body = response.text
    kind = response.headers.get("content-type", "no Content-Type")
    try:
        data = json.loads(body)
    except ValueError:
        shown = " ".join(body.split())[:120] if body.strip() else "an empty body"
        raise _BadResponse(
            f"HTTP 200 with a body that is not a chat completion: not JSON ({kind}): {shown!r}"
        ) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), (str, type(None))):
        if isinstance(data, dict) and isinstance(data.get("error"), (dict, str)):
            error = data["error"]
            detail = f"an error object: {(error.get('message') if isinstance(error, dict) else error)!r}"
        else:
            detail = f"JSON without choices[0].message.content: {_error_text(json.dumps(data))[:120]}"
        raise _BadResponse(f"HTTP 200 with a body that is not a chat completion: {detail}")
    usage = None
    if isinstance(data.get("usage"), dict):
        usage = {name: _as_int(data["usage"].get(name)) for name in ("prompt_tokens", "completion_tokens")}
    served = data.get("model") if isinstance(data.get("model"), str) else None
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return _Answer(
        text=message.get("content") or "",
        served_model=served or None,
        usage=usage,
        finish_reason=choices[0].get("finish_reason"),
        has_reasoning=bool(reasoning),
    )


def _as_int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def _empty_reply_reason(answer: _Answer, max_tokens: int) -> str:
    reason = f"the judge sent an empty reply (finish_reason {answer.finish_reason!r})"
    if answer.finish_reason == "length":
        reason += f": it stopped at max_tokens={max_tokens} before writing an answer"
    if answer.has_reasoning:
        reason += "; its text is all in the reasoning field, which a reasoning model fills first"
    return reason + "; expected a list"


def _timeout_text(error: openai.APITimeoutError, config: JudgeConfig) -> str:
    cause = error.__cause__
    if isinstance(cause, httpx2.ConnectTimeout):
        return f"no connection within {config.connect_timeout:g} s"
    return f"no complete reply within {config.timeout:g} s"


def _cause_text(error: Exception) -> str:
    cause = error.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(error)


def _status_hint(status: int, config: JudgeConfig) -> str:
    if status in (401, 403):
        return f"; the key in ${config.api_key_env} was refused: check it, or the base URL"
    if status == 404:
        return f"; the endpoint does not know model {config.model!r}, or the base URL is wrong (it usually ends in /v1)"
    return ""


def _retry_after_seconds(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_text(error: object) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:297] + "..."
