"""Image bytes: inspect what a provider returned, make thumbnails, vet uploads.

Uploads are decoded fully, capped in frames, pixels and bytes, and re-encoded before
anything is stored, because Django's ImageField alone lets through truncated files,
frame bombs, huge text chunks and HTML appended after the image data.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from .conf import app_settings
from .exceptions import PermanentProviderError, UploadRejected

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
THUMBNAIL_WIDTH = 320
MAX_UPLOAD_FRAMES = 100  # a short animation is flattened to its first frame; a longer one is refused


@contextmanager
def strict_decoding():
    """Truncated files are errors while we decode, whatever the host set for Pillow.

    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is process-wide; a host that turned it on for its
    own images gets it back afterwards, instead of blogimages storing grey bands.
    """
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    content_type: str
    size: int
    checksum: str


def analyse(data: bytes, thumbnail_width: int = THUMBNAIL_WIDTH) -> tuple[ImageInfo, bytes]:
    """Check that bytes from a provider are a whole image; describe them and make the WebP thumbnail.

    The image is decoded once for both: decoding is most of the cost of storing an image.
    """
    try:
        with strict_decoding(), Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated or corrupt file fails here
            fmt = image.format or ""
            width, height = image.size
            thumb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise PermanentProviderError(f"The provider returned something that is not a readable image ({exc}).") from exc
    # reducing_gap: a cheap integer reduce first, then LANCZOS on the small image.
    thumb.thumbnail((thumbnail_width, thumbnail_width * 8), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80, method=2)
    info = ImageInfo(
        width=width,
        height=height,
        content_type=CONTENT_TYPES.get(fmt, "application/octet-stream"),
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
    )
    return info, buffer.getvalue()


def clean_upload(uploaded) -> tuple[bytes, str]:
    """Return ``(re-encoded bytes, content type)`` for an acceptable upload, else UploadRejected.

    ``uploaded`` is a Django ``UploadedFile`` or any object with ``read()`` and ``size``.
    """
    max_bytes = app_settings.UPLOAD_MAX_BYTES
    size = getattr(uploaded, "size", None)
    if size is not None and size > max_bytes:
        raise UploadRejected(f"The file is {size // 1024 // 1024} MB; the limit is {max_bytes // 1024 // 1024} MB.")
    data = uploaded.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadRejected(f"The file is larger than the {max_bytes // 1024 // 1024} MB limit.")
    if not data:
        raise UploadRejected("The file is empty.")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml", b"<!doctype", b"<html", b"<script")):
        raise UploadRejected("SVG, HTML and other text files are not accepted; upload a PNG, JPEG, WebP or GIF.")

    max_pixels = app_settings.UPLOAD_MAX_PIXELS
    # Pillow's own bomb guard works from the same limit; we check it ourselves first so
    # the message names our setting.
    try:
        with warnings.catch_warnings(), strict_decoding():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                if fmt not in app_settings.UPLOAD_FORMATS:
                    raise UploadRejected(
                        f"{fmt or 'This'} files are not accepted; upload one of "
                        f"{', '.join(app_settings.UPLOAD_FORMATS)}."
                    )
                width, height = image.size
                if width * height > max_pixels:
                    raise UploadRejected(
                        f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels in all."
                    )
                frames = getattr(image, "n_frames", 1)
                if frames > MAX_UPLOAD_FRAMES:
                    raise UploadRejected(f"The animation has {frames} frames; upload a still image.")
                image.seek(0)
                image.load()  # decodes every byte of the first frame: truncation fails here
                clean = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses at open() when the header claims far more than its own limit.
        raise UploadRejected(
            f"The image is too large to decode safely; the limit is {max_pixels:,} pixels in all."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"The file is not a complete, readable image ({exc}).") from exc

    # Re-encoding drops anything appended to the image and every metadata chunk.
    out_format = "PNG" if fmt in ("PNG", "GIF") or clean.mode == "RGBA" else fmt
    buffer = io.BytesIO()
    save_kwargs = {"quality": 92} if out_format in ("JPEG", "WEBP") else {}
    clean.save(buffer, format=out_format, **save_kwargs)
    return buffer.getvalue(), CONTENT_TYPES[out_format]
