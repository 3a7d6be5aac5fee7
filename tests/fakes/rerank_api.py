"""A fake reranking server (Cohere-compatible `/rerank`, as vLLM, Infinity and Jina serve it).

Scores each document with a test's `scorer`, checks the Bearer key, records every request,
and answers 503 while `failing` is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer, send_json


@dataclass
class FakeReranker:
    scorer: Callable[[str, str], float]
    api_key: str = "rr-test"
    failing: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url + "/v1"

    def start(self) -> FakeReranker:
        self._server = LoopbackServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"{}")
        self.requests.append(body)
        if h.path != "/v1/rerank":
            return send_json(h, 404, {"error": "not found"})
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            return send_json(h, 401, {"error": "invalid api key"})
        if self.failing:
            return send_json(h, 503, {"error": "overloaded"})
        scores = [self.scorer(body["query"], text) for text in body["documents"]]
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: body.get("top_n")]
        results = [{"index": i, "relevance_score": scores[i]} for i in ranked]
        return send_json(h, 200, {"model": body.get("model"), "results": results})
