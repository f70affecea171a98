"""The PNG export's options (``export.png``, ``datasets.<d>.export.png``). The PNG export
imports this module, and ``check`` through mnist_pipeline.formats: a change here re-runs PNG
exports only."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mnist_pipeline.config import FormatOptions


class PngLayout(enum.Enum):
    imagefolder = "imagefolder"
    flat = "flat"


@dataclass
class PngOptions:
    layout: PngLayout
    invert: bool


#: No rule beyond the types.
PNG = FormatOptions("png", PngOptions)
