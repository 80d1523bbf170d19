"""Where images go: a ``STORAGES`` alias, and keys that blogimages makes unique itself.

django-storages' ``file_overwrite=False`` checks for an existing key and then writes,
which races under concurrent saves; a random key per image never collides, so no
image is ever overwritten whatever the backend does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .conf import app_settings

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class ImageStorage(LazyObject):
    """The ``BLOGIMAGES_STORAGE`` alias, resolved on first use and again after settings change.

    FileField calls a callable storage once, when the model class is built; handing it
    this lazy object keeps the choice of backend out of import time.
    """

    def _setup(self) -> None:
        self._wrapped = storages[app_settings.STORAGE]

    def reset(self) -> None:
        self._wrapped = empty


image_storage = ImageStorage()


def get_storage() -> Storage:
    """The storage images are written to (``BLOGIMAGES_STORAGE``, default ``"default"``)."""
    return image_storage


def reset_on_setting_change(*, setting: str, **kwargs: object) -> None:
    """Connected to ``setting_changed`` in ``AppConfig.ready()``."""
    if setting in {"STORAGES", "BLOGIMAGES_STORAGE", "MEDIA_ROOT", "MEDIA_URL"}:
        image_storage.reset()


def new_key(content_type: str, kind: str = "images") -> str:
    ext = EXTENSIONS.get(content_type, "bin")
    now = timezone.now()
    return f"{app_settings.KEY_PREFIX}/{kind}/{now:%Y/%m}/{uuid.uuid4().hex}.{ext}"


def save_bytes(data: bytes, content_type: str, kind: str = "images") -> str:
    """Store ``data`` under a fresh unique key and return the name the storage chose."""
    storage = get_storage()
    return storage.save(new_key(content_type, kind), ContentFile(data))


def rendition_names(renditions: object) -> Iterator[str]:
    """Storage names in a renditions value: {width: name}, tolerating nested dicts and lists."""
    if isinstance(renditions, str):
        yield renditions
    elif isinstance(renditions, dict):
        for value in renditions.values():
            yield from rendition_names(value)
    elif isinstance(renditions, (list, tuple)):
        for value in renditions:
            yield from rendition_names(value)


def delete_quietly(name: str) -> None:
    """Remove a stored file we just wrote, when the row that would own it was not saved."""
    if name:
        try:
            get_storage().delete(name)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            import logging

            logging.getLogger("blogimages.storage").exception("Could not delete orphan %s", name)


@contextmanager
def stored_image(data: bytes, content_type: str, thumbnail: bytes) -> Iterator[tuple[str, str]]:
    """Store an image and its WebP thumbnail; yield their names for the row that will own them.

    If the block raises (the row was not saved, or lost a race), both files are deleted
    again, so no file outlives the row it was written for.
    """
    name = save_bytes(data, content_type)
    thumb = ""
    try:
        thumb = save_bytes(thumbnail, "image/webp", kind="thumbnails")
        yield name, thumb
    except BaseException:
        delete_quietly(name)
        delete_quietly(thumb)
        raise
