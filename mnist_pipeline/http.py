"""HTTP for the download stage: a hardened opener, strict header parsing, deadlines, the per-run
record of failing mirrors, and byte-range reads of a remote file (``HttpReadAt``).

Everything a server sends is hostile. Header values are parsed with ASCII-only patterns
(``str.isdigit`` accepts "²", which ``int`` then refuses); redirects are followed to http(s)
only; every read is bounded by the socket timeout and every body by a deadline of
``timeout + size / min_rate`` seconds, so neither a stall nor a slow drip can hang the stage.
Credentials come from netrc only and are sent only to the host a netrc entry names.
"""

from __future__ import annotations

import errno
import http.client
import logging
import netrc
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO
from urllib.parse import urljoin, urlsplit

from mnist_pipeline.config import redact
from mnist_pipeline.errors import ArchiveError, ConfigError, DownloadError
from mnist_pipeline.fsio import CHUNK_SIZE

log = logging.getLogger("mnist_pipeline")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
HTTP_UNAUTHORIZED = 401
MAX_RETRY_AFTER = 60.0
FOLLOWED_SCHEMES = ("http", "https")
#: Header counts are ASCII digits; 18 of them stay below 2**63 and far below int()'s digit limit.
_COUNT = re.compile(r"[0-9]{1,18}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)")
#: Characters of a server-chosen value (status reason, header) quoted in a message.
MAX_SHOWN = 80
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
#: Shortest socket timeout handed to a request, so a nearly spent deadline still gets one read.
MIN_SOCKET_TIMEOUT = 0.05


class RetryableError(DownloadError):
    """Worth another attempt at the same mirror: 5xx, 429, a timeout, a reset or a cut body.
    ``network`` marks a mirror that stalled, timed out or could not be reached: those count
    against the mirror for the whole run (``MirrorHealth``)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, network: bool = False, status: int | None = None
    ) -> None:
        super().__init__(reason or "unknown failure")
        self.retry_after = retry_after
        self.network = network
        self.status = status


class MirrorError(DownloadError):
    """This mirror cannot deliver the file; the next one is tried. ``down``: nor any other file
    in this run (a deadline blown, TLS refused)."""

    def __init__(self, reason: str, *, down: bool = False, status: int | None = None) -> None:
        super().__init__(reason or "unknown failure")
        self.down = down
        self.status = status


def describe(exc: BaseException) -> str:
    """A non-empty one-line description of ``exc`` (``str(TimeoutError())`` is empty)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def shown(value: object) -> str:
    """A server-sent value for a message: quoted, escaped, and cut to ``MAX_SHOWN`` characters."""
    if value is None:
        return "none"
    text = repr(str(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 4] + "...'"


def loggable_url(url: str) -> str:
    """``url`` without user info, query or fragment: any of them may carry a token."""
    text = redact(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("?", 1)[0].split("#", 1)[0]
    if not parts.query and not parts.fragment:
        return text
    return parts._replace(query="***" if parts.query else "", fragment="").geturl()


def parse_count(value: object) -> int | None:
    """A non-negative count from a header value, or None unless it is 1-18 ASCII digits."""
    if value is None:
        return None
    match = _COUNT.fullmatch(str(value).strip(" \t"))
    return int(match.group()) if match else None


def header(headers: Message | None, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return None if value is None else str(value)


def retry_after(headers: Message | None) -> float | None:
    """Seconds a server asks us to wait (delta-seconds only; a date is ignored), capped."""
    seconds = parse_count(header(headers, "Retry-After"))
    return None if seconds is None else min(float(seconds), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive, as HTTP writes it
    total: int | None  # None for "*"


def parse_content_range(value: str | None) -> ContentRange | None:
    """``bytes START-END/TOTAL`` with START <= END < TOTAL, or None."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip(" \t"))
    if match is None:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if start > end or (total is not None and end >= total):
        return None
    return ContentRange(start, end, total)


@dataclass(frozen=True)
class HttpSettings:
    timeout: float
    retries: int
    backoff: float
    min_rate: int
    user_agent: str


@dataclass
class Deadline:
    """When one body (a file, or one range of it) must be complete at one mirror. Sleeps
    between attempts push it back: they are our choice, not the server's slowness."""

    end: float
    allowed: float

    @classmethod
    def for_size(cls, settings: HttpSettings, size: int) -> Deadline:
        allowed = settings.timeout + size / settings.min_rate
        return cls(end=time.monotonic() + allowed, allowed=allowed)

    def expired(self) -> bool:
        return time.monotonic() > self.end

    def socket_timeout(self, timeout: float) -> float:
        return max(MIN_SOCKET_TIMEOUT, min(timeout, self.end - time.monotonic()))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.end += seconds


@dataclass
class MirrorHealth:
    """Timeouts and stalls per mirror over one run. Once a mirror's count passes the retry
    budget, it is given up for every later file, as a refused or unreachable one is at once:
    a dead mirror costs its retries once per run, not once per file."""

    budget: int
    strikes: dict[str, int] = field(default_factory=dict)
    given_up: dict[str, str] = field(default_factory=dict)

    def strike(self, mirror: str, reason: str) -> bool:
        """Count one failure; True if the mirror is now given up."""
        self.strikes[mirror] = self.strikes.get(mirror, 0) + 1
        if self.strikes[mirror] > self.budget:
            self.give_up(mirror, reason)
        return mirror in self.given_up

    def give_up(self, mirror: str, reason: str) -> None:
        self.given_up.setdefault(mirror, reason)

    def down_reason(self, mirror: str) -> str | None:
        return self.given_up.get(mirror)


class SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http and https only. urllib's own handler follows ftp:// too, and
    refuses file:// with a message quoting the whole target URL (tokens included)."""

    def http_error_302(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message
    ) -> object:
        location = header(headers, "Location") or header(headers, "URI")
        if location is not None:
            try:
                target = urljoin(req.full_url, location.strip())
                scheme = urlsplit(target).scheme.lower()
            except ValueError:
                target, scheme = location, ""
            if scheme not in FOLLOWED_SCHEMES:
                fp.close()
                raise MirrorError(
                    f"redirect to {shown(loggable_url(target))} refused (only http and https are followed)"
                )
        return super().http_error_302(req, fp, code, msg, headers)  # type: ignore[arg-type]

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def netrc_file() -> tuple[Path, bool] | None:
    """The netrc file to read and whether it is the default ``~/.netrc``: ``$NETRC`` when set
    (as curl does), else ``~/.netrc`` when it exists."""
    named = os.environ.get("NETRC")
    if named:
        return Path(named), False
    default = Path.home() / ".netrc"
    return (default, True) if default.is_file() else None


def netrc_passwords(mirrors: list[str]) -> urllib.request.HTTPPasswordMgrWithPriorAuth | None:
    """Basic-auth credentials for the http(s) mirrors whose host a netrc ``machine`` entry
    names exactly. A ``default`` entry is ignored: it would send a password to every mirror."""
    http_mirrors = [urlsplit(mirror) for mirror in mirrors if urlsplit(mirror).scheme in FOLLOWED_SCHEMES]
    found = netrc_file() if http_mirrors else None
    if found is None:
        return None
    hosts = {machine.lower(): entry for machine, entry in _read_netrc(*found).hosts.items()}
    manager: urllib.request.HTTPPasswordMgrWithPriorAuth | None = None
    for parts in http_mirrors:
        login, _, password = hosts.get(parts.hostname or "", ("", None, None))
        if not password:
            continue
        manager = manager or urllib.request.HTTPPasswordMgrWithPriorAuth()
        # Sent with the first request (as curl and requests do with netrc), to this host only.
        manager.add_password(None, f"{parts.scheme}://{parts.netloc}/", login or "", password, is_authenticated=True)
    return manager


def _read_netrc(path: Path, is_default: bool) -> netrc.netrc:
    try:
        # Only for the default file does the module refuse one that others can read.
        return netrc.netrc(None if is_default else str(path))
    except netrc.NetrcParseError as exc:
        # The module's own messages quote the offending token, which may be a password.
        reason = exc.msg if exc.msg.startswith("~/.netrc") else "not valid netrc syntax (the line is not shown)"
        raise ConfigError(f"netrc file {exc.filename or path}: line {exc.lineno}: {reason}") from None
    except OSError as exc:
        named = "" if is_default else " (named by $NETRC)"
        raise ConfigError(f"netrc file {path}{named}: {exc.strerror or describe(exc)}") from None


def build_opener(passwords: urllib.request.HTTPPasswordMgrWithPriorAuth | None) -> urllib.request.OpenerDirector:
    """An opener for http(s) only (no ftp:, file: or data: handler), with proxies from the
    environment (HTTP(S)_PROXY, NO_PROXY), safe redirects and, if given, Basic auth."""
    opener = urllib.request.OpenerDirector()
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        SafeRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ]
    if passwords is not None:
        handlers.append(urllib.request.HTTPBasicAuthHandler(passwords))
    for handler in handlers:
        opener.add_handler(handler)
    return opener


@dataclass
class HttpClient:
    """The opener, the settings and the mirrors' health for one run."""

    settings: HttpSettings
    opener: urllib.request.OpenerDirector
    health: MirrorHealth

    def open(self, url: str, *, byte_range: str | None, deadline: Deadline) -> http.client.HTTPResponse:
        """Send a GET; a 2xx response, or RetryableError / MirrorError."""
        headers = {"User-Agent": self.settings.user_agent, "Accept-Encoding": "identity"}
        if byte_range is not None:
            headers["Range"] = byte_range
        request = urllib.request.Request(url, headers=headers)
        try:
            response: http.client.HTTPResponse = self.opener.open(
                request, timeout=deadline.socket_timeout(self.settings.timeout)
            )
        except urllib.error.HTTPError as exc:
            exc.close()
            status = f"HTTP {exc.code} {' '.join(str(exc.reason).split())[:MAX_SHOWN]}".strip()
            if exc.code == HTTP_UNAUTHORIZED:
                status += " (a login for this host goes in ~/.netrc, or in the file $NETRC names)"
            if exc.code in RETRYABLE_STATUS:
                raise RetryableError(status, retry_after=retry_after(exc.headers), status=exc.code) from None
            raise MirrorError(status, status=exc.code) from None
        except urllib.error.URLError as exc:
            raise _connection_error(exc.reason) from exc
        except (OSError, http.client.HTTPException) as exc:  # from getresponse: urllib does not wrap them
            raise _connection_error(exc) from exc
        except ValueError as exc:  # a malformed redirect target or an auth scheme urllib cannot answer
            raise MirrorError(f"unusable response: {describe(exc)}") from exc
        return response

    def after_failure(self, mirror: str, exc: RetryableError, attempt: int, what: str, deadline: Deadline) -> None:
        """Sleep before attempt ``attempt + 1``, or raise MirrorError when the mirror is spent."""
        if exc.network and self.health.strike(mirror, str(exc)):
            raise MirrorError(
                f"{exc} (giving up on this mirror for this run after {self.health.strikes[mirror]} network failures)",
                down=True,
            ) from exc
        if attempt >= self.settings.retries:
            raise MirrorError(f"{exc} (gave up after {attempt + 1} attempts)") from exc
        delay = self.settings.backoff * 2**attempt if exc.retry_after is None else exc.retry_after
        log.warning("%s: %s; retrying in %.1f s", what, exc, delay)
        deadline.sleep(delay)


def _connection_error(reason: object) -> DownloadError:
    if isinstance(reason, ssl.SSLError):
        return MirrorError(f"TLS: {describe(reason)}", down=True)
    if isinstance(reason, TimeoutError):
        return RetryableError(f"timed out ({describe(reason)})", network=True)
    if isinstance(reason, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        # The server was reached and hung up (RemoteDisconnected is one): worth a retry, but
        # no sign that the mirror as a whole is down.
        return RetryableError(describe(reason))
    if isinstance(reason, OSError):
        if isinstance(reason, ConnectionRefusedError | socket.gaierror) or reason.errno in _UNREACHABLE:
            # Nothing listens there, or no route or name: seconds later it will not be otherwise,
            # and an offline machine should reach the one-line error at once.
            return MirrorError(f"{describe(reason)} (not tried again in this run)", down=True)
        return RetryableError(describe(reason), network=True)
    if isinstance(reason, http.client.IncompleteRead):
        return RetryableError(f"cut response ({describe(reason)})")
    if isinstance(reason, http.client.HTTPException):
        return MirrorError(f"not a valid HTTP response ({type(reason).__name__}: {shown(reason)})")
    return MirrorError(describe(reason) if isinstance(reason, BaseException) else str(reason))


def read_chunk(response: http.client.HTTPResponse, deadline: Deadline, received: int) -> bytes:
    """The next piece of the body (b"" at its end), with at most one socket read, so each read
    is bounded by the socket timeout and the deadline is checked between them."""
    if deadline.expired():
        raise MirrorError(
            f"body not complete within the {deadline.allowed:.1f} s allowed (download.timeout + size / "
            f"download.min_rate); {received} bytes received",
            down=True,
        )
    try:
        return response.read1(CHUNK_SIZE)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # A stall counts against the mirror; a body cut short may be this file's problem only.
        stalled = isinstance(exc, TimeoutError)
        raise RetryableError(f"connection cut after {received} bytes ({describe(exc)})", network=stalled) from exc


class HttpReadAt:
    """``ReadAt`` over HTTP Range requests on one URL. Every request must be answered by a 206
    with exactly the range asked, and is bounded by the timeout and a deadline for its length.
    Blocks read ahead (the tail that holds a zip's end records, its central directory) are
    kept and served from memory. ``requests`` and ``received`` count what crossed the network."""

    def __init__(self, client: HttpClient, mirror: str, url: str, total: int, block: tuple[int, bytes]) -> None:
        self._client = client
        self._mirror = mirror
        self._url = url
        self._total = total
        self._blocks = [block]
        self.where = loggable_url(url)
        self.requests = 1
        self.received = len(block[1])

    def size(self) -> int:
        return self._total

    def read_at(self, offset: int, length: int) -> bytes:
        self._check_bounds(offset, length)
        for start, data in self._blocks:
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        return b"".join(self.iter_range(offset, length)) if length else b""

    def keep(self, offset: int, length: int) -> None:
        """Read ``[offset, offset + length)`` in one request and serve later reads inside it."""
        if length:
            self._blocks.append((offset, self.read_at(offset, length)))

    def iter_range(self, offset: int, length: int, label: str = "") -> Iterator[bytes]:
        """``[offset, offset + length)`` streamed from one request; a cut one is resumed.
        ``label`` names what is read, in retry messages."""
        self._check_bounds(offset, length)
        what = f"{label}: {self.where}" if label else self.where
        deadline = Deadline.for_size(self._client.settings, length)
        done = 0
        attempt = 0
        while done < length:
            try:
                with self._open_range(offset + done, length - done, deadline) as response:
                    while done < length:
                        chunk = read_chunk(response, deadline, done)
                        if not chunk:
                            raise RetryableError(f"range cut after {done} of {length} bytes")
                        if len(chunk) > length - done:
                            raise MirrorError(f"server sent more than the {length} bytes asked at offset {offset}")
                        done += len(chunk)
                        self.received += len(chunk)
                        yield chunk
            except RetryableError as exc:
                self._client.after_failure(self._mirror, exc, attempt, what, deadline)
                attempt += 1

    def _check_bounds(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self._total:
            raise ArchiveError(
                f"{self.where}: expected a range inside the file's {self._total} bytes, "
                f"found {length} bytes at offset {offset}"
            )

    def _open_range(self, offset: int, length: int, deadline: Deadline) -> http.client.HTTPResponse:
        end = offset + length - 1
        self.requests += 1
        response = self._client.open(self._url, byte_range=f"bytes={offset}-{end}", deadline=deadline)
        value = header(response.headers, "Content-Range")
        announced = parse_count(header(response.headers, "Content-Length"))
        if (
            response.status != 206
            or parse_content_range(value) != ContentRange(offset, end, self._total)
            or announced not in (None, length)
        ):
            response.close()
            raise MirrorError(
                f"asked for bytes {offset}-{end}/{self._total}, got HTTP {response.status} "
                f"with Content-Range {shown(value)}"
            )
        return response


def open_ranged(client: HttpClient, mirror: str, url: str, tail_length: int) -> HttpReadAt | http.client.HTTPResponse:
    """One suffix request (``bytes=-tail_length``): an ``HttpReadAt`` holding the last bytes, or,
    when the server ignores Range and answers 200, that open response (the whole file)."""
    deadline = Deadline.for_size(client.settings, tail_length)
    attempt = 0
    while True:
        try:
            response = client.open(url, byte_range=f"bytes=-{tail_length}", deadline=deadline)
            if response.status == 200:
                return response
            with response:
                return _tail_source(client, mirror, url, response, tail_length, deadline)
        except RetryableError as exc:
            client.after_failure(mirror, exc, attempt, loggable_url(url), deadline)
            attempt += 1


def _tail_source(
    client: HttpClient,
    mirror: str,
    url: str,
    response: http.client.HTTPResponse,
    tail_length: int,
    deadline: Deadline,
) -> HttpReadAt:
    value = header(response.headers, "Content-Range")
    found = parse_content_range(value)
    if (
        response.status != 206
        or found is None
        or found.total is None
        or found.end != found.total - 1
        or found.start != max(0, found.total - tail_length)
    ):
        raise MirrorError(
            f"asked for the last {tail_length} bytes, got HTTP {response.status} with Content-Range {shown(value)}"
        )
    body = read_exactly(response, found.end - found.start + 1, deadline)
    return HttpReadAt(client, mirror, url, found.total, (found.start, body))


def read_exactly(response: http.client.HTTPResponse, length: int, deadline: Deadline) -> bytes:
    """The whole body, which must be ``length`` bytes (only for small bodies: it is kept)."""
    pieces: list[bytes] = []
    received = 0
    while chunk := read_chunk(response, deadline, received):
        received += len(chunk)
        if received > length:
            raise MirrorError(f"server sent more than the {length} bytes its Content-Range announced")
        pieces.append(chunk)
    if received < length:
        raise RetryableError(f"body cut after {received} of {length} bytes")
    return b"".join(pieces)
