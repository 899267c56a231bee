"""A local webhook sink for tests and the benchmark: a real HTTP server that checks signatures, records each
message id once, and can be told to fail a share of requests (500 or a slow answer past the client's timeout)
without recording them."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from customers.senders import SIGNATURE_HEADER, verify


class WebhookSink:
    def __init__(self, secret: str, fail_rate: float = 0.0, slow_rate: float = 0.0, slow_seconds: float = 0.5,
                 seed: int = 1) -> None:
        self.secret, self.fail_rate, self.slow_rate, self.slow_seconds = secret, fail_rate, slow_rate, slow_seconds
        self.received: Counter[str] = Counter()  # message id -> times accepted
        self.bodies: dict[str, dict[str, Any]] = {}
        self.requests = self.failed = self.bad_signatures = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = sink.handle(body, self.headers.get(SIGNATURE_HEADER))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/notify"

    def handle(self, body: bytes, signature: str | None) -> int:
        with self._lock:
            self.requests += 1
            roll = self._random.random()
        if not verify(self.secret, body, signature):
            with self._lock:
                self.bad_signatures += 1
            return 401
        if roll < self.fail_rate:
            with self._lock:
                self.failed += 1
            return 500
        if roll < self.fail_rate + self.slow_rate:
            time.sleep(self.slow_seconds)  # the client has given up: nothing recorded
            with self._lock:
                self.failed += 1
            return 504
        messages = json.loads(body)["messages"]
        with self._lock:
            for message in messages:
                self.received[message["id"]] += 1
                self.bodies[message["id"]] = message
        return 200

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values() if n > 1)

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
