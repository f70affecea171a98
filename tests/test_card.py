"""The card's pieces: license display names as the Hub's license ids (the card itself is read
back by the Hugging Face libraries in tests/test_hf.py)."""

from __future__ import annotations

import pytest
import yaml

from mnist_pipeline import cardtext
from tests.support.repos import PROJECT_ROOT


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("CC BY-SA 3.0", {"license": "cc-by-sa-3.0"}),
        ("MIT", {"license": "mit"}),
        ("CC0 1.0 (NIST)", {"license": "cc0-1.0"}),
        ("BSD-style (see the QMNIST repository)", {"license": "bsd"}),
        ("apache-2.0", {"license": "apache-2.0"}),
        ("Research use only", {"license": "other", "license_name": "research-use-only", "license_link": "https://x"}),
    ],
)
def test_license_display_names_become_hub_ids(display: str, expected: dict[str, str]) -> None:
    assert cardtext.license_metadata(display, "https://x") == expected


def test_every_configured_license_has_a_hub_id() -> None:
    for path in sorted((PROJECT_ROOT / "conf").rglob("*.yaml")):
        license_name = (yaml.safe_load(path.read_text()) or {}).get("license")
        if license_name:
            assert cardtext.license_metadata(license_name, "")["license"] != "other", path
