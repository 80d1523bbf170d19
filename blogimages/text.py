"""Text that reaches a prompt or an alt attribute: plain, never markup."""

from __future__ import annotations

import html
import re

from django.utils.html import strip_tags

_BLOCK_END = re.compile(r"</(p|div|li|h[1-6]|blockquote|pre|tr)>|<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def plain_text(value: object) -> str:
    """``value`` as plain text: tags removed, entities decoded, whitespace tidied.

    Block ends become line breaks first so "<p>One</p><p>Two</p>" reads "One\\nTwo",
    not "OneTwo".
    """
    text = str(value or "")
    if "<" in text or "&" in text:
        text = _BLOCK_END.sub(lambda m: m.group(0) + "\n", text)
        # strip_tags leaves entities encoded; decode after, so "&lt;p&gt;" (text that
        # shows a tag) stays the literal characters "<p>" rather than being stripped.
        text = html.unescape(strip_tags(text))
    lines = [_SPACE.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
