"""Reproducible MNIST-family pipeline: check -> download -> verify -> extract -> decode -> export -> unpack, report.

Each stage is a module run as ``python -m mnist_pipeline.<stage>`` by ``dvc.yaml``; the library
functions it calls take explicit paths and values and can be used on their own.
``mnist_pipeline.load(name, split)`` returns the arrays a repository's pipeline built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnist_pipeline.loader import load

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    # Lazy: the stages import this package on every run and need none of load's imports.
    if name == "load":  # a function; the module is mnist_pipeline.loader, so no submodule can shadow it
        from mnist_pipeline.loader import load  # noqa: PLC0415

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
