"""A recording HTTP endpoint on 127.0.0.1: Apprise's `json://` receiver, a Slack-style webhook
or a Healthchecks ping endpoint. `mode` makes it fail: "error" answers 500, "hang" never answers
(until the test ends), "ok" answers 200 after `delay` seconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[Hit] = []
        self.mode = "ok"
        self.delay = 0.0
        self.release = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.address}{path}"

    @property
    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.server.hits.append(Hit(self.command, parts.path, query, body))
        if self.server.mode == "hang":
            self.server.release.wait(60)
            return
        time.sleep(self.server.delay)
        self.send_response(500 if self.server.mode == "error" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
