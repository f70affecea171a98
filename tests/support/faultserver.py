"""A loopback HTTP server for tests that serves files correctly or fails on purpose.

Every behaviour a real mirror has shown is one ``Fault``: error statuses (with or without
Retry-After), an HTML page with status 200, a body cut short, a connection reset mid-stream,
a stall longer than the client's timeout, no answer at all, a slow drip, a lying Content-Length, odd header
values, a redirect loop or a redirect elsewhere, a Range request answered with 200, a wrong
Content-Range, a range cut short, and correct bytes served slowly. The server itself can
ignore Range altogether (``ranges=False``) and require HTTP Basic auth (``credentials``); it
counts the body bytes it sends (``sent``). It binds to 127.0.0.1 only, and every sleep is
bounded, so a test can never hang on it.
"""

from __future__ import annotations

import base64
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_STALL_SECONDS = 5.0
#: A drip stops after this long even if the client is still reading.
MAX_DRIP_SECONDS = 10.0
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Fault:
    """How to answer requests for one path. ``times`` limits it to the first N requests;
    ``min_length`` to requests whose answer would hold at least that many bytes (so a fault can
    hit a zip member's data and spare the small reads of its headers)."""

    # status | html | truncate | reset | stall | silent | drip | wrong_length | headers | redirect_loop |
    # redirect | ignore_range | wrong_range | cut_range | slow
    kind: str
    status: int = 500
    retry_after: int | None = None
    seconds: float = 2.0
    times: int | None = None
    min_length: int = 0
    #: ``headers``: sent as given (bytes, so a test can send any octet); replaces Content-Length.
    headers: dict[str, bytes] = field(default_factory=dict)
    location: str = ""


@dataclass
class Served:
    path: str
    range_header: str | None
    user_agent: str | None
    via_proxy: bool
    authorized: bool = False


@dataclass
class FaultServer:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[Served] = field(default_factory=list)
    port: int = 0
    ranges: bool = True
    credentials: tuple[str, str] | None = None
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fault_for(self, path: str, length: int) -> Fault | None:
        with self.lock:
            fault = self.faults.get(path)
            if fault is None or length < fault.min_length:
                return None
            if fault.times is None:
                return fault
            if fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    def hits(self, name: str) -> list[Served]:
        return [r for r in self.requests if r.path.endswith("/" + name)]

    def count_sent(self, size: int) -> None:
        with self.lock:
            self.sent += size


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, stop) asked by a single-range ``Range`` header, or None (no or unusable header)."""
    match = _RANGE.fullmatch(header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    if match.group(1) == "":
        return max(0, size - int(match.group(2))), size
    start = int(match.group(1))
    stop = size if match.group(2) == "" else min(int(match.group(2)) + 1, size)
    return start, stop


def _handler(server_state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output clean

        def do_GET(self) -> None:
            via_proxy = self.path.startswith("http://")
            path = re.sub(r"^http://[^/]+", "", self.path)
            authorized = self._authorized()
            server_state.requests.append(
                Served(path, self.headers.get("Range"), self.headers.get("User-Agent"), via_proxy, authorized)
            )
            if server_state.credentials is not None and not authorized:
                self._status(401, b"login needed", {"WWW-Authenticate": 'Basic realm="mirror"'})
                return
            name = path.rsplit("/", 1)[-1].split("?", 1)[0]
            data = server_state.files.get(name)
            span = requested_range(self.headers.get("Range"), len(data or b"")) if server_state.ranges else None
            length = len(data or b"") if span is None else span[1] - span[0]
            fault = server_state.fault_for(name, length)
            if fault is not None:
                self._fail(fault, data or b"")
                return
            if data is None:
                self._status(404, b"not found")
                return
            self._serve(data, honour_range=server_state.ranges)

        def _authorized(self) -> bool:
            if server_state.credentials is None:
                return False
            user, password = server_state.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return self.headers.get("Authorization") == expected

        def _write(self, body: bytes) -> None:
            self.wfile.write(body)
            server_state.count_sent(len(body))

        def _status(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._write(body)

        def _serve(self, data: bytes, honour_range: bool, pace: float = 0.0) -> None:
            span = requested_range(self.headers.get("Range"), len(data)) if honour_range else None
            start, stop = span or (0, len(data))
            if span is not None:
                if start >= len(data) or start >= stop:
                    self._status(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(stop - start))
            self.end_headers()
            body = data[start:stop]
            step = max(len(body) // 10, 1) if pace else len(body) or 1
            for offset in range(0, len(body), step):
                self._write(body[offset : offset + step])
                if pace:
                    time.sleep(pace)

        def _send_200(self, announced: int, body: bytes) -> None:
            """A 200 whose Content-Length may not match the body; the connection then closes."""
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self._write(body)
            self.wfile.flush()
            self.close_connection = True

        def _send_raw(self, status: int, headers: dict[str, bytes], body: bytes) -> None:
            """Headers exactly as given (latin-1 round-trips every octet), then the connection closes."""
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value.decode("latin-1"))
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._write(body)
            self.wfile.flush()
            self.close_connection = True

        def _send_range(self, data: bytes, start: int, stop: int, shift: int, keep: int) -> None:
            """A 206 that claims ``[start, stop)`` but holds the bytes ``shift`` further on,
            of which only ``keep`` are sent before the connection closes."""
            body = data[start + shift : stop + shift]
            first = min(start + shift, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{first + max(len(body), 1) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._write(body[:keep])
            self.wfile.flush()
            self.close_connection = True

        def _drip(self, data: bytes, interval: float) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            stop_at = time.monotonic() + MAX_DRIP_SECONDS
            try:
                for index in range(len(data)):
                    if time.monotonic() > stop_at:
                        break
                    self._write(data[index : index + 1])
                    self.wfile.flush()
                    time.sleep(min(interval, MAX_STALL_SECONDS))
            except OSError:
                pass  # the client gave up: what the test wants
            self.close_connection = True

        def _fail(self, fault: Fault, data: bytes) -> None:
            half = data[: len(data) // 2]
            span = requested_range(self.headers.get("Range"), len(data)) or (0, len(data))
            if fault.kind == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                self._status(fault.status, b"error", headers)
            elif fault.kind == "html":
                self._status(
                    200, b"<!DOCTYPE html><html><body>Access denied</body></html>", {"Content-Type": "text/html"}
                )
            elif fault.kind == "truncate":
                self._send_200(announced=len(data), body=half)
            elif fault.kind == "reset":
                self._send_200(announced=len(data), body=half)
                # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            elif fault.kind == "stall":
                self._send_200(announced=len(data), body=half)
                time.sleep(min(fault.seconds, MAX_STALL_SECONDS))
            elif fault.kind == "silent":  # accepts the request and never answers
                time.sleep(min(fault.seconds, MAX_STALL_SECONDS))
            elif fault.kind == "drip":
                self._drip(data, fault.seconds)
            elif fault.kind == "wrong_length":
                self._send_200(announced=len(data) + 1000, body=data)
            elif fault.kind == "headers":
                self._send_raw(fault.status, fault.headers, data if fault.status < 300 else b"error")
            elif fault.kind == "redirect_loop":
                self._status(302, b"", {"Location": self.path})
            elif fault.kind == "redirect":
                self._status(302, b"", {"Location": fault.location})
            elif fault.kind == "ignore_range":
                self._serve(data, honour_range=False)
            elif fault.kind == "wrong_range":
                self._send_range(data, span[0], span[1], 1, keep=span[1] - span[0])
            elif fault.kind == "cut_range":
                self._send_range(data, span[0], span[1], 0, keep=(span[1] - span[0]) // 2)
            elif fault.kind == "slow":
                self._serve(data, honour_range=True, pace=min(fault.seconds, MAX_STALL_SECONDS) / 10)
            else:
                raise ValueError(f"unknown fault {fault.kind!r}")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gives up mid-body (what many tests want) is no server error: no traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serve(state: FaultServer) -> Iterator[FaultServer]:
    """Run ``state`` on 127.0.0.1 in a daemon thread for the duration of the block."""
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
