"""The README documents every setting, with its environment variable."""

from __future__ import annotations

from pathlib import Path

from doclane.settings import Settings

README = Path(__file__).parent.parent / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        f"DOCLANE_{name.upper()}"
        for name in Settings.model_fields
        if f"`DOCLANE_{name.upper()}`" not in text
    ]
    assert missing == []


def test_readme_has_the_two_setup_commands() -> None:
    text = README.read_text()
    assert "scripts/serve" in text and "scripts/test" in text
    for script in ("scripts/serve", "scripts/test", ".ci/run"):
        assert (README.parent / script).stat().st_mode & 0o111, script
