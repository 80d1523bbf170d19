"""Where images go: a ``STORAGES`` alias, and keys that blogimages makes unique itself.

django-storages' ``file_overwrite=False`` checks for an existing key and then writes,
which races under concurrent saves; a random key per image never collides, so no
image is ever overwritten whatever the backend does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .conf import app_settings
from .exceptions import StorageUnavailable
from .provenance import Marked, Provenance, finish

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


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a storage backend raises when it cannot be reached or refuses a write.

    ``OSError`` for the filesystem (a full disk, a missing mount) and for HTTP clients;
    botocore's and boto3's own families for S3, when they are installed.
    """
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # no S3 support installed
        pass
    else:
        errors += [BotoCoreError, ClientError]
    try:
        from boto3.exceptions import Boto3Error
    except ImportError:
        pass
    else:
        errors.append(Boto3Error)
    return tuple(errors)


def storage_error_reason(exc: BaseException) -> str:
    """A few words on why a storage call failed, for the sentence editors see."""
    try:
        from botocore.exceptions import ClientError, ConnectionError, ConnectTimeoutError, ReadTimeoutError
    except ImportError:
        ClientError = ConnectionError = ConnectTimeoutError = ReadTimeoutError = ()  # noqa: N806
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    # The most telling cause first: botocore wraps a refused connection in a general one.
    if any(isinstance(e, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)) for e in chain):
        return "it did not answer in time"
    if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in chain):
        return "connection refused"
    for error in chain:
        if isinstance(error, ClientError):
            return f"it answered {error.response.get('Error', {}).get('Code') or 'an error'}"
    if any(isinstance(e, ConnectionError) for e in chain):
        return "could not connect"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return exc.__class__.__name__


def save_bytes(data: bytes, content_type: str, kind: str = "images", *, provenance: Provenance | None = None) -> str:
    """Store ``data`` under a fresh unique key and return the name the storage chose.

    Every image blogimages stores passes here, so this is where no metadata gets past:
    ``data`` (a PNG, JPEG or WebP file) is stored without it (``images.strip_metadata``),
    then, with ``provenance`` (an AI-made image's), marked as AI-made
    (``provenance.finish``). Bytes a caller already marked (:class:`provenance.Marked`,
    as callers that record a checksum do) are stored as they are.

    A storage that cannot be reached raises :class:`StorageUnavailable` with one sentence;
    whatever the failed write may have left under the key (a partial file, an object
    whose answer was lost) is deleted again.
    """
    if not isinstance(data, Marked):
        data = finish(data, provenance, derived=kind != "images")
    storage = get_storage()
    key = new_key(content_type, kind)
    try:
        return storage.save(key, ContentFile(data))
    except storage_errors() as exc:
        logging.getLogger("blogimages.storage").warning("Could not store %s: %r", key, exc)
        delete_quietly(key)
        raise StorageUnavailable(
            f"The image could not be saved to file storage ({storage_error_reason(exc)}); try again in a few minutes."
        ) from exc


def save_as(name: str, data: bytes, *, provenance: Provenance | None = None, derived: bool = False) -> bool:
    """Store ``data`` under exactly ``name`` unless something is there already; ``True`` if written.

    For the readable names of published images (``blogimages.naming``), which the caller
    has claimed in the database first, so no other blogimages process writes the same name.
    The ``exists`` check keeps files blogimages does not know about safe: a backend that
    overwrites (S3's default ``file_overwrite=True``) is never asked to write a taken name,
    and one that renames instead (the filesystem) has its renamed copy deleted again.
    Metadata is stripped and an AI-made image (``provenance``) marked as in
    :func:`save_bytes`; a storage error raises :class:`StorageUnavailable`, with whatever
    the failed write left deleted.
    """
    if not isinstance(data, Marked):
        data = finish(data, provenance, derived=derived)
    storage = get_storage()
    try:
        if storage.exists(name):
            return False
        saved = storage.save(name, ContentFile(data))
    except storage_errors() as exc:
        logging.getLogger("blogimages.storage").warning("Could not store %s: %r", name, exc)
        delete_quietly(name)
        raise StorageUnavailable(
            f"The image could not be saved to file storage ({storage_error_reason(exc)}); try again in a few minutes."
        ) from exc
    if saved != name:  # appeared between the check and the write; the backend kept both
        delete_quietly(saved)
        return False
    return True


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
            logging.getLogger("blogimages.storage").exception("Could not delete orphan %s", name)


@contextmanager
def stored_image(
    data: bytes, content_type: str, thumbnail: bytes, *, provenance: Provenance | None = None
) -> Iterator[tuple[str, str]]:
    """Store an image and its WebP thumbnail; yield their names for the row that will own them.

    If the block raises (the row was not saved, or lost a race), both files are deleted
    again, so no file outlives the row it was written for.
    """
    name = save_bytes(data, content_type, provenance=provenance)
    thumb = ""
    try:
        thumb = save_bytes(thumbnail, "image/webp", kind="thumbnails", provenance=provenance)
        yield name, thumb
    except BaseException:
        delete_quietly(name)
        delete_quietly(thumb)
        raise
