"""A fault-injecting HTTP server for the downloader tests, on 127.0.0.1 only.

``FaultServer(routes)`` serves GET on an ephemeral port from a background thread; each
route maps a path to a behaviour (``Ok``, ``Status``, ``FailFirst``, ``Drop``, ``Stall``,
``Truncated``, ``Redirect``); any other path is a 404. ``counts[path]`` is the number of
requests a path received. Every wait is bounded and ends when the server stops, and the
server stops by itself after ``lifetime_s`` (a test that forgets it cannot hang the run).

    with FaultServer({"/a.jpg": Ok(jpeg_bytes), "/gone": Status(404)}) as server:
        server.url("/a.jpg"); server.counts["/a.jpg"]
"""
from __future__ import annotations

import collections
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Ok:
    """200 with ``body``; ``delay`` seconds before the second half of the body (a slow
    transfer, so that a test can kill a client mid-body)."""

    def __init__(self, body: bytes, content_type: str = "image/jpeg", delay: float = 0.0):
        self.body, self.content_type, self.delay = body, content_type, delay

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        half = len(self.body) // 2
        handler.wfile.write(self.body[:half])
        handler.wfile.flush()
        if self.delay:
            handler.server.stopped.wait(self.delay)
        handler.wfile.write(self.body[half:])


class Status:
    """An empty response with status ``code``, every time."""

    def __init__(self, code: int):
        self.code = code

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.send_response(self.code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class FailFirst:
    """Status ``code`` for the first ``times`` requests, then ``then``."""

    def __init__(self, times: int, code: int, then):
        self.times, self.code, self.then = times, code, then

    def serve(self, handler: "_Handler", n: int) -> None:
        (Status(self.code) if n <= self.times else self.then).serve(handler, n)


class Drop:
    """Close the connection without sending a byte."""

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.close_connection = True


class Stall:
    """Wait ``seconds`` (longer than the client's timeout) before answering with ``then``."""

    def __init__(self, seconds: float, then):
        self.seconds, self.then = seconds, then

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.server.stopped.wait(self.seconds)
        self.then.serve(handler, n)


class Truncated:
    """A Content-Length ``missing`` bytes larger than the body sent, then a close."""

    def __init__(self, body: bytes, missing: int = 1000):
        self.body, self.missing = body, missing

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(self.body) + self.missing))
        handler.end_headers()
        handler.wfile.write(self.body)
        handler.close_connection = True


class Redirect:
    """A redirect (``code``) to ``location`` (a path on this server, or a full URL)."""

    def __init__(self, location: str, code: int = 302):
        self.location, self.code = location, code

    def serve(self, handler: "_Handler", n: int) -> None:
        handler.send_response(self.code)
        handler.send_header("Location", self.location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers: a drop hits a pooled connection

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        n = self.server.count(path)
        behaviour = self.server.routes.get(path, Status(404))
        try:
            behaviour.serve(self, n)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence the per-request log
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.counts: collections.Counter = collections.Counter()
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    def count(self, path: str) -> int:
        with self._lock:
            self.counts[path] += 1
            return self.counts[path]


class FaultServer:
    """The server, started on entry (or ``start()``) and stopped on exit (or ``stop()``)."""

    def __init__(self, routes: dict, lifetime_s: float = 60.0):
        self._server = _Server(dict(routes))
        self._lifetime_s = lifetime_s
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._stop_lock = threading.Lock()

    @property
    def counts(self) -> collections.Counter:
        return self._server.counts

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self) -> dict:
        with self._server._lock:
            return dict(self._server.counts)

    def start(self) -> "FaultServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._stop_lock:
            if self._server.stopped.is_set():
                return
            self._server.stopped.set()
            self._timer.cancel()
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
