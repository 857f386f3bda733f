"""The README documents every setting and both contract commands (docs that cannot drift)."""

from __future__ import annotations

from pathlib import Path

from onair.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"ONAIR_{name.upper()}" for name in Settings.model_fields
               if f"`ONAIR_{name.upper()}`" not in README]
    assert missing == [], f"add to README (python -m onair.settings prints the table): {missing}"


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
