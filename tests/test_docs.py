"""The README documents every setting and every management command."""

from __future__ import annotations

import re
from pathlib import Path

from blogimages.conf import AppSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    names = [name for name, value in vars(AppSettings).items() if isinstance(value, property)]
    assert len(names) > 10
    missing = [name for name in names if f"BLOGIMAGES_{name}" not in README]
    assert missing == []


def test_every_command_is_in_the_readme():
    commands = [p.stem for p in (ROOT / "blogimages/management/commands").glob("blogimages_*.py")]
    missing = [name for name in commands if not re.search(rf"\b{name}\b", README)]
    assert missing == []


def test_the_two_commands_are_there():
    assert "make demo" in README and "make test" in README
