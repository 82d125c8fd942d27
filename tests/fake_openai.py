"""A fake OpenAI-compatible chat server for the tests: a real HTTP server on 127.0.0.1 that
the real `openai` client (and langchain's) talks to, whose answer depends on the model name,
and which records the headers and the body of every request."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hyperpilot.agent.llm.scripted import example_for


class FakeOpenAI(ThreadingHTTPServer):
    """`/v1/chat/completions` at `url`. By model name: `deny` answers 401 with the request's
    Authorization header echoed in the error, as some servers do; `down` answers 500 and
    `rate-limited` 429; `slow` answers after 1.5 s; `llama-cpp` refuses `json_schema` (500)
    and `tools-only` refuses `json_object` (400) too. Otherwise a structured request gets JSON
    of its schema (or, forced to a tool, the tool call's arguments) and a plain one "hi".
    `headers` (names lower-cased) and `bodies` hold every request, in order."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def forget(self) -> None:
        """Drop the requests recorded so far."""
        self.headers.clear()
        self.bodies.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (on a `slow` model past its timeout) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_fake_openai() -> Iterator[FakeOpenAI]:
    """A `FakeOpenAI` serving from a thread until the block ends."""
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.headers.append(headers)
        self.server.bodies.append(body)
        model, fmt = body.get("model", "m"), (body.get("response_format") or {}).get("type")
        if model == "deny":
            echoed = headers.get("authorization", "")
            return self._send(401, {"error": {"message": f"Incorrect API key provided: {echoed}",
                                              "type": "invalid_request_error"}})
        if model == "down":
            return self._send(500, {"error": {"message": "boom"}})
        if model == "rate-limited":
            return self._send(429, {"error": {"message": "slow down"}})
        if model == "slow":
            time.sleep(1.5)
        if fmt == "json_schema" and model in ("llama-cpp", "tools-only"):
            return self._send(500, {"error": {"message": "json_schema is not supported"}})
        if fmt == "json_object" and model == "tools-only":
            return self._send(400, {"error": {"message": "bad response_format"}})
        message: dict[str, Any] = {"role": "assistant", "content": "hi"}
        if fmt in ("json_schema", "json_object"):
            schema = body["response_format"].get("schema") or body["response_format"]["json_schema"]["schema"]
            message["content"] = example_for(schema, 1)
        elif body.get("tools"):
            args = example_for(body["tools"][0]["function"]["parameters"], 2)
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "answer", "arguments": args}}]}
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                         "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass
