"""README is the front door: every setting is documented there."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import DEFAULTS

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_is_documented_with_its_default(name):
    row = next((line for line in README.splitlines() if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"{name} is missing from README's settings table"
    default = DEFAULTS[name]
    assert (f"`{default}`" in row) if default else ("(unset)" in row), row
