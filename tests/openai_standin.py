"""A stand-in for an OpenAI-compatible chat-completions endpoint: a real HTTP server on
127.0.0.1 (random port) for the insights tests and bench/flagged_jobs.py.

    with OpenAIStandIn() as api:          # api.base_url -> http://127.0.0.1:PORT/v1
        api.mode = "429"                  # "ok", "429", "500" or "slow"
        ...
        api.requests                      # the JSON bodies received, in order

"slow" holds the response until the server stops, so a client timeout fires without the test
sleeping for it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIStandIn:
    def __init__(self, reply: str = "Counts are on track; recount the negative stock first."):
        self.reply = reply
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                standin.requests.append(json.loads(body or b"{}"))
                standin.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if standin.mode == "slow":
                    standin.release.wait(30)
                if standin.mode == "429":
                    error = {"message": "Rate limit reached", "type": "rate_limit_exceeded"}
                    return self._send(429, {"error": error})
                if standin.mode == "500":
                    return self._send(500, {"error": {"message": "The server had an error"}})
                return self._send(200, standin.completion(standin.requests[-1]))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

        return Handler

    def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        }
