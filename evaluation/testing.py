"""A scripted OpenAI-compatible judge server on 127.0.0.1, for tests and benchmarks.

It speaks `POST /v1/chat/completions` as OpenAI, vLLM or Ollama do, so the real `openai` client
talks to it over real HTTP. A responder scripts every reply: correct, malformed, an HTTP error
(429, 500, ...), late, or one of the ways a real endpoint misbehaves: a body that is not JSON
(an HTML page), JSON without ``choices``, an empty ``content``, a reply that trickles in a few bytes
at a time, a connection dropped without an answer, or no answer at all. Its "correct" answers come
from a small synonym table, which makes the expected scores computable by hand. Nothing here
reaches beyond the loopback interface.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .prompts import BUILT_IN_PROMPTS, PLACEHOLDERS, PromptSet

__all__ = ["SYNONYMS", "Reply", "ScriptedJudge", "correct_reply", "correct_grouping", "correct_extraction"]

# Words the scripted judge treats as synonyms: word -> group head.
SYNONYMS = {
    "happy": "happy",
    "joyful": "happy",
    "cheerful": "happy",
    "glad": "happy",
    "angry": "angry",
    "furious": "angry",
    "mad": "angry",
    "anxious": "anxious",
    "worried": "anxious",
    "nervous": "anxious",
    "sad": "sad",
    "upset": "sad",
    "surprised": "surprised",
    "calm": "calm",
    "relaxed": "calm",
}


def filled_value(prompt: str, template: str, placeholder: str) -> str | None:
    """What ``placeholder`` was replaced by, if ``prompt`` was made from ``template``; else None."""
    prefix, suffix = template.split(placeholder)
    if len(prompt) < len(prefix) + len(suffix) or not (prompt.startswith(prefix) and prompt.endswith(suffix)):
        return None
    return prompt[len(prefix) : len(prompt) - len(suffix)]


def union_from_grouping_prompt(prompt: str, prompts: PromptSet = BUILT_IN_PROMPTS) -> list[str]:
    """The label list a grouping prompt made from ``prompts`` asks about."""
    value = filled_value(prompt, prompts.grouping, PLACEHOLDERS["grouping"])
    if value is None:
        raise ValueError(f"not a grouping prompt of the {prompts.source} prompt set: {prompt[-200:]!r}")
    return list(ast.literal_eval(value))


def correct_grouping(prompt: str, prompts: PromptSet = BUILT_IN_PROMPTS) -> str:
    """What a good judge answers: the union grouped by SYNONYMS, unknown words alone."""
    groups: dict[str, list[str]] = {}
    for word in union_from_grouping_prompt(prompt, prompts):
        groups.setdefault(SYNONYMS.get(word, word), []).append(word)
    return str(list(groups.values()))


def correct_extraction(prompt: str, prompts: PromptSet = BUILT_IN_PROMPTS) -> str:
    """What a good judge answers to the extraction prompt: known emotion words in the text, unquoted."""
    description = filled_value(prompt, prompts.extraction, PLACEHOLDERS["extraction"])
    if description is None:
        raise ValueError(f"not an extraction prompt of the {prompts.source} prompt set: {prompt[-200:]!r}")
    words = [word for word in SYNONYMS if re.search(rf"\b{word}\b", description.lower())]
    return "[" + ", ".join(words) + "]"


def correct_reply(prompt: str, prompts: PromptSet = BUILT_IN_PROMPTS) -> str:
    """A good judge's answer to either prompt of ``prompts`` (the built-in set by default)."""
    if filled_value(prompt, prompts.grouping, PLACEHOLDERS["grouping"]) is not None:
        return correct_grouping(prompt, prompts)
    return correct_extraction(prompt, prompts)


@dataclass
class Reply:
    """One scripted answer.

    Args:
        content: the message content of a 200 reply (``None`` sends ``"content": null``).
        status: the HTTP status.
        delay: seconds to wait before answering.
        headers: extra response headers.
        body: raw bytes sent instead of the JSON completion (e.g. an HTML page).
        payload: a JSON object sent instead of the completion (e.g. one without ``choices``).
        content_type: the ``Content-Type`` header.
        finish_reason: the completion's ``finish_reason``.
        drip: seconds between single bytes of the body (a reply that trickles in).
        hang: accept the request and never answer (until the server shuts down).
        drop: close the connection without answering.
    """

    content: str | None = None
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    payload: dict | None = None
    content_type: str = "application/json"
    finish_reason: str = "stop"
    drip: float = 0.0
    hang: bool = False
    drop: bool = False


Responder = Callable[[str, int], Reply]


class ScriptedJudge:
    """The server. ``responder(prompt, nth_time_this_prompt_was_seen)`` decides each reply.

    Without a responder it answers correctly, reading the prompts as made from ``prompts``.
    """

    def __init__(self, responder: Responder | None = None, prompts: PromptSet = BUILT_IN_PROMPTS) -> None:
        self.responder = responder or (lambda prompt, nth: Reply(correct_reply(prompt, prompts)))
        self.requests: list[dict] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()  # wakes handlers that hang or wait, so shutdown is quick
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes; without TCP_NODELAY, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every reply, which would swamp the client being measured.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                return

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                prompt = body["messages"][-1]["content"]
                with judge._lock:
                    judge.requests.append(body)
                    nth = judge._seen.get(prompt, 0)
                    judge._seen[prompt] = nth + 1
                reply = judge.responder(prompt, nth)
                if reply.hang or reply.drop or (reply.delay and judge._closing.wait(reply.delay)):
                    if reply.hang:
                        judge._closing.wait()
                    self.close_connection = True  # no answer: do not wait for another request
                    return
                try:
                    self._answer(reply, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def _answer(self, reply: Reply, body: dict) -> None:
                if reply.body is not None:
                    data = reply.body
                elif reply.payload is not None:
                    data = json.dumps(reply.payload).encode()
                elif reply.status == 200:
                    data = json.dumps({
                        "id": f"chatcmpl-{len(judge.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"] + "-served",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": reply.content},
                             "finish_reason": reply.finish_reason}
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    }).encode()
                else:
                    data = json.dumps(
                        {"error": {"message": f"scripted {reply.status}", "type": "scripted", "code": None}}
                    ).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if not reply.drip:
                    self.wfile.write(data)
                    return
                for index in range(len(data)):
                    if judge._closing.wait(reply.drip):
                        return
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> ScriptedJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
