"""Named errors for expected failures. Stages print them as one line and exit non-zero."""

from __future__ import annotations

from collections.abc import Callable

from mnist_pipeline.names import SCRATCH_PART


class PipelineError(Exception):
    """An expected failure: bad input, bad configuration or an unreachable source."""


class ConfigError(PipelineError):
    """params.yaml does not match the schema; the message names the key."""


class DownloadError(PipelineError):
    """No mirror delivered the expected bytes of a file."""


class ChecksumError(PipelineError):
    """A file's size or digest differs from the value recorded in the dataset config."""


class ArchiveError(PipelineError):
    """A compressed file or a zip is corrupt, truncated, hostile or decompresses beyond its expected size."""


class IdxFormatError(PipelineError):
    """An IDX file breaks the format: magic, dtype code, dimensions or payload length."""


class DatasetError(PipelineError):
    """Decoded arrays are inconsistent: counts that disagree or labels out of range."""


def one_line(exc: BaseException) -> str:
    """``exc`` as one line of text: its message with every run of whitespace (line breaks of
    YAML and Hydra messages included) made one space, or its type's name when it has none
    (``str(TimeoutError())`` is empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the file it names (the output, for a file being written in its
    scratch folder), then the system's reason."""
    reason = exc.strerror or one_line(exc)
    if not exc.filename:
        return reason
    where, unwrapped = str(exc.filename), 1
    while unwrapped:  # nested: an atomic write inside another's scratch
        where, unwrapped = SCRATCH_PART.subn(r"\1\2", where)
    return f"{where}: {reason}"


#: The exit code of a run stopped by Ctrl-C, as a shell reports SIGINT.
INTERRUPTED = 130


def exit_code(
    work: Callable[[], None], report: Callable[[str], None], also_expected: tuple[type[Exception], ...] = ()
) -> int:
    """Run ``work``; an expected failure (a ``PipelineError``, an ``OSError``, Ctrl-C, or one of
    ``also_expected``) becomes one line given to ``report`` and a non-zero exit code. Anything
    else is a bug and keeps its traceback. The one place stages and the CLI map failures."""
    expected: tuple[type[Exception], ...] = (PipelineError, *also_expected)
    try:
        work()
    except expected as exc:
        report(f"error: {one_line(exc)}")
        return 1
    except OSError as exc:
        report(f"error: {os_error_line(exc)}")
        return 1
    except KeyboardInterrupt:
        report("interrupted")
        return INTERRUPTED
    return 0
