"""A loopback HTTP server for tests that serves files correctly or fails on purpose.

Every behaviour a real mirror has shown is one ``Fault``: error statuses (with or without
Retry-After), an HTML page with status 200, a body cut short, a connection reset mid-stream,
a stall longer than the client's timeout, a lying Content-Length, a redirect loop, a Range
request answered with 200, and correct bytes served slowly. It binds to 127.0.0.1 only, and
every sleep is bounded, so a test can never hang on it.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_STALL_SECONDS = 5.0


@dataclass
class Fault:
    """How to answer requests for one path. ``times`` limits it to the first N requests."""

    kind: str  # status | html | truncate | reset | stall | wrong_length | redirect_loop | ignore_range | slow
    status: int = 500
    retry_after: int | None = None
    seconds: float = 2.0
    times: int | None = None


@dataclass
class Served:
    path: str
    range_header: str | None
    user_agent: str | None
    via_proxy: bool


@dataclass
class FaultServer:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[Served] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fault_for(self, path: str) -> Fault | None:
        fault = self.faults.get(path)
        if fault is None or fault.times is None:
            return fault
        if fault.times <= 0:
            return None
        fault.times -= 1
        return fault

    def hits(self, name: str) -> list[Served]:
        return [r for r in self.requests if r.path.endswith("/" + name)]


def _handler(server_state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output clean

        def do_GET(self) -> None:
            via_proxy = self.path.startswith("http://")
            path = re.sub(r"^http://[^/]+", "", self.path)
            server_state.requests.append(
                Served(path, self.headers.get("Range"), self.headers.get("User-Agent"), via_proxy)
            )
            name = path.rsplit("/", 1)[-1]
            data = server_state.files.get(name)
            fault = server_state.fault_for(name)
            if fault is not None:
                self._fail(fault, data or b"")
                return
            if data is None:
                self._status(404, b"not found")
                return
            self._serve(data, honour_range=True)

        def _status(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, data: bytes, honour_range: bool, pace: float = 0.0) -> None:
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if honour_range and match:
                start = int(match.group(1))
                if start >= len(data):
                    self._status(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            step = max(len(body) // 10, 1) if pace else len(body) or 1
            for offset in range(0, len(body), step):
                self.wfile.write(body[offset : offset + step])
                if pace:
                    time.sleep(pace)

        def _send_200(self, announced: int, body: bytes) -> None:
            """A 200 whose Content-Length may not match the body; the connection then closes."""
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def _fail(self, fault: Fault, data: bytes) -> None:
            half = data[: len(data) // 2]
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
            elif fault.kind == "wrong_length":
                self._send_200(announced=len(data) + 1000, body=data)
            elif fault.kind == "redirect_loop":
                self._status(302, b"", {"Location": self.path})
            elif fault.kind == "ignore_range":
                self._serve(data, honour_range=False)
            elif fault.kind == "slow":
                self._serve(data, honour_range=True, pace=min(fault.seconds, MAX_STALL_SECONDS) / 10)
            else:
                raise ValueError(f"unknown fault {fault.kind!r}")

    return Handler


@contextmanager
def serve(state: FaultServer) -> Iterator[FaultServer]:
    """Run ``state`` on 127.0.0.1 in a daemon thread for the duration of the block."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
