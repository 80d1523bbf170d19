"""The README documents every setting and every management command."""

from __future__ import annotations

import re
from pathlib import Path

from blogimages.conf import AppSettings
from blogimages.contrib.djangocms.conf import DjangoCMSSettings
from blogimages.contrib.wagtail.conf import WagtailSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _settings(cls) -> list[str]:
    return [f"{cls.prefix}{name}" for name, value in vars(cls).items() if isinstance(value, property)]


def test_every_setting_is_in_the_readme():
    names = _settings(AppSettings) + _settings(WagtailSettings) + _settings(DjangoCMSSettings)
    assert len(names) > 13
    missing = [name for name in names if name not in README]
    assert missing == []


def test_every_command_is_in_the_readme():
    commands = [p.stem for p in ROOT.glob("blogimages/**/management/commands/blogimages_*.py")]
    missing = [name for name in commands if not re.search(rf"\b{name}\b", README)]
    assert missing == []


def test_the_two_commands_are_there():
    assert "make demo" in README and "make test" in README
