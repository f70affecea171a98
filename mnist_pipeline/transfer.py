"""One transfer from a mirror: open, resume with Range, check the answer's byte range, stream
into a partial file while hashing, abandon what is too slow, retry with back-off. The download
stage (``download.py``) keeps only the mirror policy: which mirror, in which order, when to skip.

Everything a server sends is hostile. Header values are parsed with ASCII-only patterns
(``str.isdigit`` accepts "²", which ``int`` then refuses); every answer to a Range request passes
one rule (``span_of``); redirects are followed to http(s) only; a body never grows past its
target's limit or starts without its magic. Credentials come from netrc only and are sent only
to the host a netrc entry names.

Slowness is judged as curl's ``--speed-limit/--speed-time`` judge it: a transfer that received
fewer than ``download.min_rate`` bytes per second over the last ``download.timeout`` seconds is
abandoned (a stall, no byte for ``download.timeout`` seconds, is the extreme case), so a drip
costs about one window, whatever the file's size. What a mirror may cost over a whole run is a
``Budget``: slow twice, or asked by ``Retry-After`` to wait longer than ``download.timeout`` in
all, and the mirror is given up for the run, not once per file. A mirror that does not answer
at all within ``download.timeout`` (no connection, no status line) is given up at once.

Kept by hand rather than taken from a library, because each would lose a row of the README's
failure table:

- urllib3's ``Retry`` sleeps whatever ``Retry-After`` asks (capped, never refused), so a mirror
  asking for an hour could not be given up; it counts attempts per request, not what a mirror
  cost over a run; it has no low-speed limit; ``int()`` of a 5,000-digit ``Retry-After`` raises
  from it; and it drives urllib3 connections, while the proxies, netrc and redirect rules here
  are urllib's.
- fsspec's ``HTTPFile`` takes a 200, or any Content-Length no larger than the range asked, as the
  range (a wrong ``Content-Range`` would be read as member bytes), reads each range into memory,
  runs on aiohttp (a second HTTP stack with its own proxy, netrc and redirect rules) and has no
  stall detection.
"""

from __future__ import annotations

import email.utils
import enum
import errno
import http.client
import logging
import netrc
import os
import re
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar
from urllib.parse import urljoin, urlsplit

from tqdm import tqdm

from mnist_pipeline.config import DownloadConfig
from mnist_pipeline.errors import ConfigError, DownloadError, one_line
from mnist_pipeline.fsio import CHUNK_SIZE, Digests, Hasher
from mnist_pipeline.names import redact
from mnist_pipeline.ziparchive import check_range

log = logging.getLogger("mnist_pipeline")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
HTTP_UNAUTHORIZED = 401
HTTP_RANGE_NOT_SATISFIABLE = 416
FOLLOWED_SCHEMES = ("http", "https")
#: Slow transfers (stalls or drips) one mirror may have in a run: one may be bad luck.
MAX_SLOW_TRANSFERS = 2
#: A netrc file holds a few lines; anything larger is not one.
MAX_NETRC_SIZE = 1 << 20
#: Header counts are ASCII digits; 18 of them stay below 2**63 and far below int()'s digit limit.
_COUNT = re.compile(r"[0-9]{1,18}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)")
#: Characters of a server-chosen value (status reason, header) quoted in a message.
MAX_SHOWN = 80
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
#: Samples kept by the rate window: its start is known to a sixteenth of its length.
_WINDOW_SAMPLES = 16

T = TypeVar("T")


class Severity(enum.Enum):
    """What one failed attempt says about the mirror."""

    RETRY = "retry"  # another attempt may succeed: 5xx, 429, a reset, a cut body
    SLOW = "slow"  # below download.min_rate for a window: retried, and counted in the mirror's budget
    SKIP = "skip"  # this mirror cannot deliver this file: 4xx, wrong bytes, a refused redirect
    DOWN = "down"  # nor any other file in this run: refused, unreachable, TLS, too slow, too long a wait


class TransferError(DownloadError):
    """A failed attempt or transfer. ``reason`` is one line that does not name the URL (the
    caller's line does); ``status`` is the HTTP status, when there was one."""

    def __init__(
        self, reason: str, severity: Severity, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.reason = reason or "unknown failure"
        super().__init__(self.reason)
        self.severity = severity
        self.status = status
        self.retry_after = retry_after


class RangeError(TransferError):
    """The answer to a Range request does not hold exactly the bytes asked."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason, Severity.SKIP, status=status)


def shown(value: object) -> str:
    """A server-sent value for a message: quoted, escaped, and cut to ``MAX_SHOWN`` characters."""
    if value is None:
        return "none"
    text = repr(str(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 4] + "...'"


def parse_count(value: object) -> int | None:
    """A non-negative count from a header value, or None unless it is 1-18 ASCII digits."""
    if value is None:
        return None
    match = _COUNT.fullmatch(str(value).strip(" \t"))
    return int(match.group()) if match else None


def header(headers: Message | None, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return None if value is None else str(value)


def parse_retry_after(headers: Message | None) -> float | None:
    """Seconds a server asks us to wait: delta-seconds or an HTTP date; None if neither."""
    value = header(headers, "Retry-After")
    seconds = parse_count(value)
    if seconds is not None or value is None:
        return None if seconds is None else float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value[:MAX_SHOWN])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
class Asked:
    """The bytes one request asks for: from ``start`` (None: the last ``length`` bytes), for
    ``length`` bytes (None: to the end of the file)."""

    start: int | None
    length: int | None

    def header(self) -> str | None:
        if self.start is None:
            return f"bytes=-{self.length}"
        if self.length is None:
            return f"bytes={self.start}-" if self.start else None
        return f"bytes={self.start}-{self.start + self.length - 1}"

    def __str__(self) -> str:
        if self.start is None:
            return f"the last {self.length} bytes"
        if self.length is None:
            return f"bytes {self.start}-"
        return f"bytes {self.start}-{self.start + self.length - 1}"


@dataclass(frozen=True)
class Span:
    """Where a response's body sits in the file."""

    start: int
    length: int | None  # bytes the body must hold, when announced
    total: int | None  # the file's size, when announced


def span_of(response: http.client.HTTPResponse, asked: Asked, total: int | None) -> Span:
    """The one rule for answers to a Range request. A 206 must carry a ``Content-Range`` of
    exactly the bytes asked (and of the file's ``total``, when known) and a Content-Length, if
    any, of that many bytes. A 200 (the whole file) answers only a request from a ``start`` to
    the end (a server may ignore Range; the caller restarts from byte 0), never a slice."""
    announced = parse_count(header(response.headers, "Content-Length"))
    if response.status == 200 and asked.start is not None and asked.length is None:
        return Span(0, announced, announced)
    value = header(response.headers, "Content-Range")
    found = parse_content_range(value)
    if response.status == 206 and found is not None and total in (None, found.total):
        length = found.end - found.start + 1
        if (found.start, found.end) == _expected_bounds(asked, found) and announced in (None, length):
            return Span(found.start, length, found.total)
    of_total = f"/{total}" if total is not None else ""
    raise RangeError(
        f"asked for {asked}{of_total}, got HTTP {response.status} with Content-Range {shown(value)}", response.status
    )


def _expected_bounds(asked: Asked, found: ContentRange) -> tuple[int, int] | None:
    """The first and last byte a correct answer to ``asked`` holds, given the total it announces."""
    if asked.start is not None and asked.length is not None:
        return asked.start, asked.start + asked.length - 1
    if found.total is None:  # "*": only the start of an open-ended request can be checked
        return None if asked.start is None else (asked.start, found.end)
    if asked.start is None:
        return max(0, found.total - (asked.length or 0)), found.total - 1
    return asked.start, found.total - 1


class RateFloor:
    """curl's low-speed limit: fails a transfer that received fewer than ``min_rate`` bytes per
    second over the last ``window`` seconds; judged once the transfer is a window old."""

    def __init__(self, window: float, min_rate: int) -> None:
        self._window = window
        self._min_rate = min_rate
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def passed(self, received: int) -> None:
        now = time.monotonic()
        if now - self._samples[-1][0] >= self._window / _WINDOW_SAMPLES:
            self._samples.append((now, received))
        # The window starts at the newest sample at least a window old.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()
        since, base = self._samples[0]
        if now - since >= self._window and received - base < self._min_rate * self._window:
            raise TransferError(
                f"too slow: {received - base} bytes in the last {now - since:.1f} s, below download.min_rate "
                f"({self._min_rate} bytes/s) over download.timeout ({self._window:g} s)",
                Severity.SLOW,
            )


@dataclass
class Budget:
    """What one mirror has cost in this run. Slow ``MAX_SLOW_TRANSFERS`` times, or asked to wait
    more than ``download.timeout`` in all, it is given up: a dead or hostile mirror costs about
    two windows per run, not per file."""

    slow: int = 0
    waited: float = 0.0


@dataclass(frozen=True)
class Target:
    """What one transfer must deliver."""

    name: str
    kind: str  # what the bytes are, for messages: gzip, xz, a zip archive
    magic: bytes
    limit: int  # most bytes accepted
    size: int | None  # exact size required (strict check, size published)

    def check_size(self, size: int, announced: str) -> None:
        """Refuse a file whose size, known before its bytes are read, cannot be this target's;
        ``announced``: who gives the size, for the message ("server announces", ...)."""
        if self.size is not None and size != self.size:
            raise TransferError(f"{announced} {size} bytes, expected {self.size}", Severity.SKIP)
        if size > self.limit:
            raise TransferError(f"{announced} {size} bytes, more than the expected {self.limit}", Severity.SKIP)


class PartialFile:
    """``target``'s bytes accumulating in ``path``, hashed as they are written; a body past
    ``target.limit`` or not starting with ``target.magic`` is refused. The file is never opened
    through a symbolic link. ``resume``: bytes already there (an earlier attempt's) are kept and
    hashed first, unless they already reach the limit; otherwise the file starts empty."""

    def __init__(self, path: Path, target: Target, *, resume: bool, progress: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.target = target
        self._file = _open_partial(path, resume=resume)
        self._hasher = Hasher()
        if resume and os.fstat(self._file.fileno()).st_size < target.limit:
            while chunk := self._file.read(CHUNK_SIZE):
                self._hasher.update(chunk)
        self._file.truncate(self.size)
        self._file.seek(self.size)
        self._bar = tqdm(
            total=target.size or target.limit,
            initial=self.size,
            unit="B",
            unit_scale=True,
            desc=target.name,
            disable=not progress,
            leave=False,
        )

    @property
    def size(self) -> int:
        return self._hasher.size

    def write(self, chunk: bytes) -> None:
        magic = self.target.magic
        if self.size < len(magic) and not chunk.startswith(magic[self.size : self.size + len(chunk)]):
            raise TransferError(f"body is not {self.target.kind} (starts with {chunk[:16]!r})", Severity.SKIP)
        if self.size + len(chunk) > self.target.limit:
            raise TransferError(f"body exceeds the expected {self.target.limit} bytes", Severity.SKIP)
        self._file.write(chunk)
        self._hasher.update(chunk)
        self._bar.update(len(chunk))

    def restart(self) -> None:
        """Drop every byte: the next ones are the file's first."""
        self._file.seek(0)
        self._file.truncate()
        self._hasher = Hasher()
        self._bar.reset()

    def digests(self) -> Digests:
        return self._hasher.digests()

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._bar.close()
        self._file.close()


def _open_partial(path: Path, *, resume: bool) -> IO[bytes]:
    """``path`` open for reading and writing. An earlier attempt's file is kept only to resume,
    and only when it is a regular file with no other name: writing into a hard link would
    change the other name's file too, wherever it is. Anything else there is removed (the
    name only: a link's target is never touched) and the file created anew."""
    if resume:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            pass  # missing, or a symbolic link (ELOOP): start anew
        else:
            status = os.fstat(descriptor)
            if stat.S_ISREG(status.st_mode) and status.st_nlink == 1:
                return os.fdopen(descriptor, "r+b")
            os.close(descriptor)
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), "r+b")


def copy_file(source: Path, writer: PartialFile) -> None:
    """A file of a local mirror into ``writer``."""
    if not source.is_file():  # also keeps a FIFO from blocking the read
        raise TransferError("not found" if not source.exists() else "not a regular file", Severity.SKIP)
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise TransferError(exc.strerror or one_line(exc), Severity.SKIP) from exc
    with stream:
        while chunk := stream.read(CHUNK_SIZE):
            writer.write(chunk)


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
                raise TransferError(
                    f"redirect to {shown(redact(target))} refused (only http and https are followed)",
                    Severity.SKIP,
                )
        return super().http_error_302(req, fp, code, msg, headers)  # type: ignore[arg-type]

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def netrc_passwords(mirrors: list[str]) -> urllib.request.HTTPPasswordMgrWithPriorAuth | None:
    """Basic-auth credentials for the http(s) mirrors whose host a netrc ``machine`` entry
    names exactly. A ``default`` entry is ignored: it would send a password to every mirror."""
    http_mirrors = [parts for parts in map(urlsplit, mirrors) if parts.scheme in FOLLOWED_SCHEMES]
    named = os.environ.get("NETRC")
    path = Path(named) if named else Path.home() / ".netrc"
    if not http_mirrors or not (named or path.is_file()):
        return None
    entries = _read_netrc(path, named_by_env=bool(named))
    if entries is None:
        return None
    hosts = {machine.lower(): entry for machine, entry in entries.hosts.items()}
    manager: urllib.request.HTTPPasswordMgrWithPriorAuth | None = None
    for parts in http_mirrors:
        login, _, password = hosts.get(parts.hostname or "", ("", None, None))
        if not password:
            continue
        manager = manager or urllib.request.HTTPPasswordMgrWithPriorAuth()
        # Sent with the first request (as curl and requests do with netrc), to this host only.
        manager.add_password(None, f"{parts.scheme}://{parts.netloc}/", login or "", password, is_authenticated=True)
    return manager


def _read_netrc(path: Path, *, named_by_env: bool) -> netrc.netrc | None:
    """The entries of the netrc file at ``path``; None for a ``~/.netrc`` others can read (with
    one warning: a mirror that needs no login must still work). Its content is never quoted:
    the netrc module's own messages quote the token they cannot place, perhaps a password."""
    where = f"netrc file {path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: expected a regular file")
        if info.st_size > MAX_NETRC_SIZE:
            raise ConfigError(f"{where}: expected at most {MAX_NETRC_SIZE} bytes, found {info.st_size}")
        if not named_by_env and (info.st_mode & 0o077 or info.st_uid != os.getuid()):
            # Python's netrc module refuses such a default file only once it meets a password,
            # and then for every mirror; curl uses it. A secret others can read is not used.
            log.warning(
                "%s: readable or owned by another user (mode %o); not using it (chmod 600 %s to use it)",
                where,
                stat.S_IMODE(info.st_mode),
                path,
            )
            return None
        # netrc decodes with the locale's encoding; a file that is not UTF-8 gets our line instead.
        path.read_bytes().decode("utf-8")
        # An explicit path: the module's own permission check is the one done above.
        return netrc.netrc(str(path))
    except UnicodeDecodeError as exc:
        found = exc.object[exc.start : exc.start + 1].hex()
        raise ConfigError(f"{where}: expected UTF-8 text, found byte 0x{found} at offset {exc.start}") from None
    except netrc.NetrcParseError as exc:
        line = f"line {exc.lineno}: " if exc.lineno is not None else ""
        raise ConfigError(f"{where}: {line}not valid netrc syntax (the line is not shown)") from None
    except OSError as exc:
        named = " (named by $NETRC)" if named_by_env else ""
        raise ConfigError(f"{where}{named}: {exc.strerror or one_line(exc)}") from None


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


@dataclass(frozen=True)
class Client:
    """The download settings and the opener of one run."""

    config: DownloadConfig
    opener: urllib.request.OpenerDirector

    @classmethod
    def for_mirrors(cls, config: DownloadConfig, mirrors: list[str]) -> Client:
        """Built per run, so HTTP(S)_PROXY / NO_PROXY and netrc are read when the stage starts."""
        return cls(config, build_opener(netrc_passwords(mirrors)))

    def open(self, url: str, asked: Asked) -> http.client.HTTPResponse:
        """Send a GET for ``asked``; a 2xx response, or TransferError."""
        headers = {"User-Agent": self.config.user_agent, "Accept-Encoding": "identity"}
        byte_range = asked.header()
        if byte_range is not None:
            headers["Range"] = byte_range
        request = urllib.request.Request(url, headers=headers)
        try:
            response: http.client.HTTPResponse = self.opener.open(request, timeout=self.config.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            status = f"HTTP {exc.code} {' '.join(str(exc.reason).split())[:MAX_SHOWN]}".strip()
            if exc.code == HTTP_UNAUTHORIZED:
                status += " (a login for this host goes in ~/.netrc, or in the file $NETRC names)"
            if exc.code in RETRYABLE_STATUS:
                raise TransferError(
                    status, Severity.RETRY, status=exc.code, retry_after=parse_retry_after(exc.headers)
                ) from None
            raise TransferError(status, Severity.SKIP, status=exc.code) from None
        except urllib.error.URLError as exc:
            raise _connection_error(exc.reason, self.config.timeout) from exc
        except (OSError, http.client.HTTPException) as exc:  # from getresponse: urllib does not wrap them
            raise _connection_error(exc, self.config.timeout) from exc
        except ValueError as exc:  # a malformed redirect target or an auth scheme urllib cannot answer
            raise TransferError(f"unusable response: {one_line(exc)}", Severity.SKIP) from exc
        return response


def _connection_error(reason: object, timeout: float) -> TransferError:
    if isinstance(reason, ssl.SSLError):
        return TransferError(f"TLS: {one_line(reason)} (not tried again in this run)", Severity.DOWN)
    if isinstance(reason, TimeoutError):
        # No connection or no answer (status line and headers) in a whole window: a mirror
        # that does not answer at all is given up at once, so it costs one window per run. A
        # stall once the body flows is retried (and resumed), as a blip more likely is.
        return TransferError(
            f"no answer within {timeout:g} s (download.timeout; not tried again in this run)", Severity.DOWN
        )
    if isinstance(reason, ConnectionRefusedError | socket.gaierror) or (
        isinstance(reason, OSError) and reason.errno in _UNREACHABLE
    ):
        # Nothing listens there, or no route or name: seconds later it will not be otherwise,
        # and an offline machine should reach the one-line error at once.
        return TransferError(f"{one_line(reason)} (not tried again in this run)", Severity.DOWN)
    if isinstance(reason, OSError):  # a reset or a hang-up (RemoteDisconnected is one)
        return TransferError(one_line(reason), Severity.RETRY)
    if isinstance(reason, http.client.IncompleteRead):
        return TransferError(f"cut response ({one_line(reason)})", Severity.RETRY)
    if isinstance(reason, http.client.HTTPException):
        return TransferError(f"not a valid HTTP response ({type(reason).__name__}: {shown(reason)})", Severity.SKIP)
    return TransferError(one_line(reason) if isinstance(reason, BaseException) else str(reason), Severity.SKIP)


def with_retries(client: Client, budget: Budget, what: str, attempt: Callable[[], T]) -> T:
    """``attempt()`` until it succeeds. A RETRY or SLOW failure is tried again, up to
    ``download.retries`` times, after the back-off (doubled each time) or the wait the server
    asks; what cannot be mended is raised as it is, and a spent budget as DOWN."""
    tries = 0
    while True:
        try:
            return attempt()
        except TransferError as exc:
            delay = _delay_before_retry(client.config, budget, exc, tries)
            log.warning("%s: %s; retrying in %.1f s", what, exc.reason, delay)
        time.sleep(delay)
        tries += 1


def _delay_before_retry(config: DownloadConfig, budget: Budget, exc: TransferError, tries: int) -> float:
    if exc.severity is Severity.SLOW:
        budget.slow += 1
        if budget.slow >= MAX_SLOW_TRANSFERS:
            raise TransferError(f"{exc.reason} (slow {budget.slow} times: not tried again in this run)", Severity.DOWN)
    elif exc.retry_after is not None and budget.waited + exc.retry_after > config.timeout:
        raise TransferError(
            f"{exc.reason} with Retry-After {exc.retry_after:g} s: more waiting than download.timeout "
            f"({config.timeout:g} s) allows a mirror in one run (not tried again in this run)",
            Severity.DOWN,
            status=exc.status,
        )
    if exc.severity not in (Severity.RETRY, Severity.SLOW):
        raise exc
    if tries >= config.retries:
        raise TransferError(f"{exc.reason} (gave up after {tries + 1} attempts)", Severity.SKIP, status=exc.status)
    if exc.severity is Severity.SLOW:
        return 0.0  # the window already waited download.timeout
    if exc.retry_after is not None:
        budget.waited += exc.retry_after
        return exc.retry_after
    return config.backoff * (1 << tries)


def _pump(
    config: DownloadConfig, response: http.client.HTTPResponse, span: Span, write: Callable[[bytes], None]
) -> None:
    """The body of ``response`` into ``write``: each read bounded by ``download.timeout``, the
    whole by the rate floor; exactly ``span.length`` bytes when that is known."""
    floor = RateFloor(config.timeout, config.min_rate)
    noun = "body" if span.start == 0 and span.length == span.total else "range"
    received = 0
    while True:
        try:
            chunk = response.read1(CHUNK_SIZE)
        except TimeoutError as exc:
            raise TransferError(
                f"no byte for {config.timeout:g} s (download.timeout) after {received} bytes", Severity.SLOW
            ) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise TransferError(f"connection cut after {received} bytes ({one_line(exc)})", Severity.RETRY) from exc
        if not chunk:
            break
        if span.length is not None and received + len(chunk) > span.length:
            raise TransferError(f"server sent more than the {span.length} bytes it announced", Severity.SKIP)
        received += len(chunk)
        write(chunk)
        floor.passed(received)
    if span.length is not None and received < span.length:
        raise TransferError(f"{noun} cut after {received} of {span.length} bytes", Severity.RETRY)


def fetch(
    client: Client, budget: Budget, url: str, writer: PartialFile, response: http.client.HTTPResponse | None = None
) -> None:
    """Bring ``writer``'s file to the whole body of ``url``: resumed with Range after a cut,
    restarted from byte 0 when the server will not resume. ``response``: an answer already open
    (the whole file), read first."""
    waiting = response

    def attempt() -> None:
        nonlocal waiting
        opened, waiting = waiting, None
        asked = Asked(writer.size, None)
        try:
            if opened is None:
                opened = client.open(url, asked)
            with opened:
                span = span_of(opened, asked, None)
                if span.start != writer.size:
                    log.info("%s: server ignored the Range request; restarting from byte 0", writer.target.name)
                    writer.restart()
                if span.total is not None:
                    writer.target.check_size(span.total, "server announces")
                _pump(client.config, opened, span, writer.write)
        except TransferError as exc:
            if asked.start and (isinstance(exc, RangeError) or exc.status == HTTP_RANGE_NOT_SATISFIABLE):
                # The partial file is as long as the whole one, or the file changed on the server.
                writer.restart()
                raise TransferError(f"{exc.reason}; restarting from byte 0", Severity.RETRY) from exc
            raise
        end = span.total if span.total is not None else writer.target.size
        if end is not None and writer.size < end:
            raise TransferError(f"body cut at byte {writer.size} of {end}", Severity.RETRY)

    with_retries(client, budget, f"{writer.target.name}: {redact(url)}", attempt)


class RangedFile:
    """``ReadAt`` over Range requests on one URL. Every answer passes ``span_of`` against the
    file's total; a cut range is resumed where it stopped. Blocks read ahead (the tail that holds
    a zip's end records, its central directory) are kept and served from memory. ``requests``
    and ``received`` count what crossed the network."""

    def __init__(self, client: Client, budget: Budget, url: str, total: int, block: tuple[int, bytes]) -> None:
        self._client = client
        self._budget = budget
        self._url = url
        self._total = total
        self._blocks = [block]
        self.where = redact(url)
        self.requests = 1
        self.received = len(block[1])

    def size(self) -> int:
        return self._total

    def read_at(self, offset: int, length: int) -> bytes:
        check_range(self.where, self._total, offset, length)
        for start, data in self._blocks:
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        pieces: list[bytes] = []
        self.stream(offset, length, pieces.append)
        return b"".join(pieces)

    def keep(self, offset: int, length: int) -> None:
        """Read ``[offset, offset + length)`` in one request and serve later reads inside it."""
        if length:
            self._blocks.append((offset, self.read_at(offset, length)))

    def stream(self, offset: int, length: int, write: Callable[[bytes], None]) -> None:
        """``[offset, offset + length)`` into ``write``, from one request unless it is cut."""
        check_range(self.where, self._total, offset, length)
        done = 0

        def delivered(chunk: bytes) -> None:
            nonlocal done
            done += len(chunk)
            self.received += len(chunk)
            write(chunk)

        def attempt() -> None:
            if done == length:
                return
            asked = Asked(offset + done, length - done)
            self.requests += 1
            with self._client.open(self._url, asked) as response:
                _pump(self._client.config, response, span_of(response, asked, self._total), delivered)

        with_retries(self._client, self._budget, self.where, attempt)


def open_ranged(client: Client, budget: Budget, url: str, tail_length: int) -> RangedFile | http.client.HTTPResponse:
    """One suffix request (``bytes=-tail_length``): a ``RangedFile`` holding the last bytes, or,
    when the server ignores Range and answers 200, that open response (the whole file)."""
    asked = Asked(None, tail_length)

    def attempt() -> RangedFile | http.client.HTTPResponse:
        response = client.open(url, asked)
        if response.status == 200:
            return response
        with response:
            span = span_of(response, asked, None)
            body = bytearray()
            _pump(client.config, response, span, body.extend)
        total = span.total if span.total is not None else span.start + len(body)
        return RangedFile(client, budget, url, total, (span.start, bytes(body)))

    return with_retries(client, budget, redact(url), attempt)
