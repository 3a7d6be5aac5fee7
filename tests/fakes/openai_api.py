"""A fake OpenAI-compatible API on loopback: chat completions (plain and streamed) and embeddings.

It checks the Bearer key, answers in the real response shapes, and replays scripted faults
(status codes with Retry-After, slow replies) so the real `openai` client's behaviour is tested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.fakes.loopback import LoopbackServer, send_json

Messages = list[dict[str, str]]
EMBED_DIM = 64
MODEL_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


def cite_first_source(messages: Messages) -> str:
    """The default reply: the first source's first sentence, cited as [1]."""
    match = re.search(
        r'<source id="1" title="([^"]*)"[^>]*>\n(.*?)\n</source>', messages[-1]["content"], re.S
    )
    if not match:
        return "I could not find this in the documents I can see."
    body = re.sub(r"^#+ .*$", "", match.group(2), flags=re.M).strip()
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]
    return f"According to {match.group(1)}, {first} [1]"


@dataclass
class Fault:
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    # Only for a request whose body holds this text (a test's own question), so a request
    # still in flight from an earlier test cannot take the fault.
    asking: str | None = None


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test"
    responder: Callable[[Messages], str] = cite_first_source
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reply_seconds: float = 0.0  # every chat reply takes this long: a slow model
    # Streamed replies: the first piece after this long, then `tokens_per_second` pieces of
    # about one token (four characters) each; 0 sends them all at once.
    first_token_seconds: float = 0.0
    tokens_per_second: float = 0.0
    max_in_flight: int = 0  # most chat requests being answered at the same moment
    _in_flight: int = 0
    embed_seconds: float = 0.0  # every embeddings request takes this long (a busy GPU server)
    max_embeds_in_flight: int = 0  # most embeddings requests being served at the same moment
    _embeds_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return self._server.url + "/v1"

    def start(self) -> FakeOpenAI:
        self._server = LoopbackServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p.endswith(path))

    def _take_fault(self, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            if not self.faults:
                return None
            text = json.dumps(body, ensure_ascii=False)
            for position, fault in enumerate(self.faults):
                if fault.asking is None or fault.asking in text:
                    return self.faults.pop(position)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            body = json.loads(h.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            return send_json(h, 400, _error("invalid JSON body", "invalid_request_error"))
        self.requests.append((h.path, body))
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return send_json(h, 401, _error("Incorrect API key provided", "invalid_api_key"))
        fault = self._take_fault(body)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
                return send_json(h, fault.status, _error("scripted failure", kind), headers)
        if h.path == "/v1/chat/completions":
            return self._chat(h, body)
        if h.path == "/v1/embeddings":
            return self._embeddings(h, body)
        return send_json(h, 404, _error(f"Unknown path {h.path}", "not_found"))

    def _chat(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            time.sleep(self.reply_seconds)
            self._reply(h, body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        content = self.responder(body["messages"])
        created = int(time.time())
        if not body.get("stream"):
            return send_json(
                h,
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        size = 4 if self.tokens_per_second else 8
        pieces = [content[i : i + size] for i in range(0, len(content), size)]
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
        time.sleep(self.first_token_seconds)
        for i, delta in enumerate(deltas):
            if self.tokens_per_second and i > 1:
                time.sleep(1 / self.tokens_per_second)
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            h.wfile.flush()
            if i == len(deltas) - 1:
                chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
                h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        h.wfile.write(b"data: [DONE]\n\n")

    def _embeddings(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            self._embeds_in_flight += 1
            self.max_embeds_in_flight = max(self.max_embeds_in_flight, self._embeds_in_flight)
        try:
            time.sleep(self.embed_seconds)
            self._embed(h, body)
        finally:
            with self._lock:
                self._embeds_in_flight -= 1

    def _embed(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = int(body.get("dimensions") or MODEL_DIMS.get(body["model"], EMBED_DIM))
        vectors = [hashed_vector(text, dim) for text in inputs]
        encoded: list[Any] = vectors
        if body.get("encoding_format") == "base64":  # what the openai client asks for by default
            encoded = [
                base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors
            ]
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
        data.reverse()  # the API does not promise order; clients must sort by index
        send_json(
            h,
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )


def hashed_vector(text: str, dim: int = EMBED_DIM) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words point the same way."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    norm = float(np.linalg.norm(vector)) or 1.0
    return [float(x) for x in vector / norm]


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "param": None, "code": code}}
