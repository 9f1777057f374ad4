"""A judge client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

What it adds to the `openai` package:

* bounded concurrency (a thread pool; the sync client is thread-safe),
* its own retry loop with exponential backoff and jitter on 429, 5xx, timeouts and dropped
  connections (honouring ``Retry-After``), bounded by ``max_retries``; the `openai` client's
  own retries are switched off so that every attempt is counted,
* re-asking when a reply does not parse, bounded by ``parse_retries``,
* a persistent SQLite cache of every accepted reply keyed by (model, messages, parameters), so a
  re-run makes no calls and a crashed run resumes where it stopped; replies that did not parse
  are kept there too, for auditing, but are never served,
* accounting of calls, cache hits, retries, failures and tokens.
"""

from __future__ import annotations

import hashlib
import json
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
        timeout: seconds per request before it counts as timed out (and is retried).
        max_retries: retries per request after 429, 5xx, timeouts and connection errors.
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
    max_retries: int = 5
    parse_retries: int = 2
    concurrency: int = 8
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    cache_path: str | Path | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"JudgeConfig.model: got {self.model!r}; expected the endpoint's model name")
        for name in ("max_retries", "parse_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"JudgeConfig.{name}: got {getattr(self, name)}; expected 0 or more")
        if self.concurrency < 1:
            raise ValueError(f"JudgeConfig.concurrency: got {self.concurrency}; expected 1 or more")
        if self.timeout <= 0 or self.backoff_initial < 0 or self.backoff_max < 0:
            raise ValueError(
                f"JudgeConfig: timeout={self.timeout}, backoff_initial={self.backoff_initial}, "
                f"backoff_max={self.backoff_max}; expected a positive timeout and non-negative delays"
            )

    @property
    def sampling(self) -> dict[str, Any]:
        """The request parameters that change replies, and so belong to the cache key."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


@dataclass
class JudgeStats:
    """What a client did. ``calls`` counts HTTP requests sent, including failed and retried ones."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    connection_errors: int = 0
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
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


class JudgeClient:
    """Sends prompts to the judge with caching, bounded retries and bounded concurrency."""

    def __init__(self, config: JudgeConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
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
        self._sleep = sleep
        # The cache first: if it cannot be opened there is no HTTP client left to close.
        self.cache: JudgeCache | None = None
        if config.use_cache:
            self.cache = JudgeCache(config.cache_path or default_cache_path())
        # The client's own retries are off: ours count every attempt and honour our bounds.
        self._openai = openai.OpenAI(
            api_key=api_key, base_url=config.resolved_base_url(), timeout=config.timeout, max_retries=0
        )

    # -- one prompt ---------------------------------------------------------------------------
    def complete(self, prompt: str, parse: Callable[[str], T]) -> Completion[T]:
        """Answer one prompt: from the cache if an accepted reply is there, else from the endpoint.

        Raises :class:`JudgeReplyError` when no reply parses after ``parse_retries`` re-asks, and
        :class:`JudgeUnavailableError` when the endpoint fails past ``max_retries``.
        """
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
        last_error: Exception | None = None
        for _ in range(self.config.parse_retries + 1):
            text, served_model, usage = self._request(messages)
            replies.append(text)
            try:
                value = parse(text)
            except ValueError as error:
                last_error = error
                self._count(malformed_replies=1)
                if self.cache is not None:
                    self.cache.put_rejected(key, text, str(error))
                continue
            if self.cache is not None:
                request = {"model": self.config.model, "messages": messages, **self.config.sampling}
                self.cache.put(key, self.config.model, request, text, served_model, usage)
            return Completion(key=key, text=text, value=value, cached=False)
        self._count(failures=1)
        raise JudgeReplyError(
            f"judge {self.config.model}: {len(replies)} replies to one prompt did not parse; last error: {last_error}",
            replies,
        )

    def _request(self, messages: list[dict[str, str]]) -> tuple[str, str | None, dict[str, int] | None]:
        config = self.config
        for attempt in range(config.max_retries + 1):
            retry_after: float | None = None
            self._count(calls=1)
            try:
                response = self._openai.chat.completions.create(
                    model=config.model, messages=messages, **config.sampling
                )
            except openai.APITimeoutError as error:  # a subclass of APIConnectionError: test it first
                self._count(timeouts=1)
                reason: Exception = error
            except openai.APIConnectionError as error:
                self._count(connection_errors=1)
                reason = error
            except openai.APIStatusError as error:
                status = error.status_code
                if status == 429:
                    self._count(rate_limited=1)
                elif status >= 500:
                    self._count(server_errors=1)
                elif status not in _RETRYABLE_STATUS:
                    self._count(failures=1)
                    raise JudgeUnavailableError(
                        f"judge endpoint {config.resolved_base_url()} refused the request for model "
                        f"{config.model!r} with HTTP {status}: {_error_text(error)}"
                    ) from error
                reason = error
                retry_after = _retry_after_seconds(error.response)
            else:
                return self._accept(response)
            if attempt == config.max_retries:
                self._count(failures=1)
                raise JudgeUnavailableError(
                    f"judge endpoint {config.resolved_base_url()} (model {config.model!r}) failed "
                    f"{config.max_retries + 1} attempts; last error: {type(reason).__name__}: {_error_text(reason)}"
                ) from reason
            self._count(retries=1)
            delay = min(config.backoff_max, config.backoff_initial * 2**attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, config.backoff_max))
            self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")  # pragma: no cover

    def _accept(self, response: Any) -> tuple[str, str | None, dict[str, int] | None]:
        usage = None
        if getattr(response, "usage", None) is not None:
            usage = {
                "prompt_tokens": int(response.usage.prompt_tokens or 0),
                "completion_tokens": int(response.usage.completion_tokens or 0),
            }
            self._count(**usage)
        served = getattr(response, "model", None)
        if served:
            with self._stats_lock:
                if served not in self.stats.served_models:
                    self.stats.served_models.append(served)
        choices = getattr(response, "choices", None) or []
        text = choices[0].message.content if choices and choices[0].message is not None else None
        # An empty reply is handed to the parser, which rejects it and so triggers a re-ask.
        return (text or ""), served, usage

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    # -- many prompts -------------------------------------------------------------------------
    def complete_many(
        self, prompts: Sequence[str], parse: Callable[[str], T], *, desc: str = "judge", progress: bool = True
    ) -> list[Completion[T] | JudgeReplyError]:
        """Answer many prompts, ``concurrency`` at a time, in input order.

        A prompt whose replies never parse gives its :class:`JudgeReplyError` in its place; an
        unusable endpoint stops the whole batch with :class:`JudgeUnavailableError` (everything
        finished before is already in the cache, so the next run resumes from there).
        """
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

        bar = tqdm(total=len(prompts), initial=len(prompts) - len(misses), desc=desc,
                   disable=not progress or not prompts, leave=False)
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="judge") as pool:
            futures = [pool.submit(one, index) for index in misses]
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    bar.update(len(done))
                    for future in done:
                        future.result()  # re-raises JudgeUnavailableError and anything unexpected
            except BaseException:
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


def _retry_after_seconds(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_text(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:297] + "..."
