"""A local HTTP server on 127.0.0.1 (in a thread) that misbehaves the ways the internet does.

Routes are registered per test: each path maps to a `Route` saying what to answer.
Every request is counted per path, so tests can assert how often a URL was fetched.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "video/mp4"
    status: int = 200
    fail_first: int = 0  # answer `fail_status` to the first N requests, then serve normally
    fail_status: int = 429
    retry_after_s: int = 0  # Retry-After header of the failed answers
    delay_s: float = 0.0  # sleep before sending the headers
    announce_extra: int = 0  # Content-Length larger than the body by this much (truncated body)


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer._Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._answer(send_body=False)

    def do_GET(self):
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        with owner.lock:
            owner.requests[path] += 1
            n = owner.requests[path]
        route = owner.routes.get(path)
        if route is None:
            return self._plain(404, b"not found", send_body)
        if route.delay_s:
            time.sleep(route.delay_s)
        if n <= route.fail_first:
            self.send_response(route.fail_status)
            self.send_header("Retry-After", str(route.retry_after_s))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route.status != 200:
            return self._plain(route.status, b"error page", send_body)
        body = route.body
        start, end = 0, len(body) - 1
        rng = self.headers.get("Range")
        status = 200
        if rng and rng.startswith("bytes=") and not route.announce_extra:
            a, _, b = rng[len("bytes="):].partition("-")
            start = int(a) if a else 0
            end = min(int(b), len(body) - 1) if b else len(body) - 1
            status = 206
        chunk = body[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        self.send_header("Content-Length", str(len(chunk) + route.announce_extra))
        if route.announce_extra:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if send_body:
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    def _plain(self, status: int, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class MediaServer:
    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        owner: MediaServer

        def handle_error(self, request, client_address):  # clients hanging up on purpose
            pass

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        self._server = self._Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
