"""Reading sections out of a page's StreamField, and placing an image block after one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from wagtail.blocks import StreamValue, StructValue
from wagtail.blocks.list_block import ListValue
from wagtail.rich_text import RichText

from ...text import plain_text
from .conf import PageConfig

# Block ids of the image blocks blogimages inserts are derived from the section's key, so
# finding "the block we inserted for this section" needs no table and survives the editor
# moving the block: approving again updates that block instead of adding a second one.
_INSERTED_NAMESPACE = uuid.UUID("6f1d2b7e-2f0a-4c55-9a55-1f0f6b7f3b10")
TITLE_LENGTH = 80


def inserted_block_id(section_key: str) -> str:
    return str(uuid.uuid5(_INSERTED_NAMESPACE, f"blogimages:{section_key}"))


def stream_of(page: Any, config: PageConfig) -> StreamValue | None:
    value = getattr(page, config.field, None)
    return value if isinstance(value, StreamValue) else None


def section_blocks(stream: StreamValue | None, config: PageConfig) -> list[StreamValue.StreamChild]:
    """The stream's children that are sections, in order (blocks without an id are skipped:
    Wagtail gives every block an id when it saves, so only an unsaved stream lacks them)."""
    if stream is None:
        return []
    wanted = set(config.blocks)
    return [child for child in stream if child.block_type in wanted and child.id]


def text_of(value: Any) -> str:
    """Plain text of a block value: rich text, strings, and the text inside structs, lists and streams."""
    return "\n\n".join(part for part in _texts(value) if part)


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, RichText):
        # ``source`` is the stored HTML; str(value) would expand page links with queries.
        yield plain_text(value.source)
    elif isinstance(value, str):
        yield plain_text(value)
    elif isinstance(value, StructValue):
        for child in value.values():
            yield from _texts(child)
    elif isinstance(value, StreamValue):
        for child in value:
            yield from _texts(child.value)
    elif isinstance(value, ListValue | list | tuple):
        for child in value:
            yield from _texts(child)


def title_and_text(child: StreamValue.StreamChild, config: PageConfig) -> tuple[str, str]:
    value = child.value
    title = ""
    if isinstance(value, StructValue):
        if config.title and config.title in value:
            title = text_of(value[config.title])
        names = config.text if config.text is not None else [name for name in value if name != config.title]
        text = "\n\n".join(part for part in (text_of(value.get(name)) for name in names) if part)
    else:
        text = text_of(value)
    if not title:
        first_line = (text.splitlines() or [""])[0]
        title = first_line if len(first_line) <= TITLE_LENGTH else first_line[: TITLE_LENGTH - 1].rstrip() + "…"
    return title, text


def index_of(stream: StreamValue, block_id: str) -> int | None:
    return next((index for index, child in enumerate(stream) if child.id == block_id), None)


def place_image_block(stream: StreamValue, config: PageConfig, section_key: str, image: Any) -> bool:
    """Put ``image`` in the block blogimages inserted after the section, inserting it if
    missing; ``False`` if nothing changed (already there, or the section is gone)."""
    block_id = inserted_block_id(section_key)
    index = index_of(stream, block_id)
    if index is not None:
        current = stream[index].value
        if getattr(current, "pk", None) == image.pk:
            return False
        stream[index] = (config.image_block, image, block_id)
        return True
    section_index = index_of(stream, section_key)
    if section_index is None:
        return False
    stream.insert(section_index + 1, (config.image_block, image, block_id))
    return True


def remove_image_block(stream: StreamValue, section_key: str) -> bool:
    index = index_of(stream, inserted_block_id(section_key))
    if index is None:
        return False
    del stream[index]
    return True
