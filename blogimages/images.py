"""Image bytes: inspect what a provider returned, make thumbnails, vet uploads, and strip
what an image says about how it was made.

Uploads are decoded fully, capped in frames, pixels and bytes, and re-encoded before
anything is stored, because Django's ImageField alone lets through truncated files,
frame bombs, huge text chunks and HTML appended after the image data.

Every file blogimages stores goes through :func:`strip_metadata` (``storage.save_bytes``
calls it): a ComfyUI PNG carries its whole graph (prompts, negative prompt, seed, model
file names) in text chunks, an A1111 PNG its "parameters", a camera JPEG its GPS position;
the public page serves the stored file, so none of that may reach it. What was sent stays
in the database (the result's snapshot), where editors can see it.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .conf import app_settings
from .exceptions import PermanentProviderError, UploadRejected

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
THUMBNAIL_WIDTH = 320
MAX_UPLOAD_FRAMES = 100  # a short animation is flattened to its first frame; a longer one is refused


def _decoder_reason(exc: BaseException) -> str:
    """Pillow's reason for refusing a file, as `` (reason)`` for a sentence, without Python
    object names (``<_io.BytesIO object at 0x...>``); blank when nothing readable is left."""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip(" .:")
    if not text or "Traceback" in text or len(text) > 200:
        return ""
    return f" ({text})"


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


# --- what an image says about how it was made --------------------------------------------------


class MetadataError(ValueError):
    """The bytes are not a whole PNG, JPEG or WebP file, so their metadata cannot be taken out."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Ancillary PNG chunks kept because they say how the pixels look: transparency, colour
#: (ICC profile, sRGB, gamma, chromaticities, CICP, HDR levels), significant bits,
#: background, pixel density, and APNG's frames. Every other ancillary chunk goes:
#: tEXt/zTXt/iTXt (ComfyUI's "prompt" and "workflow", A1111's "parameters"), eXIf, tIME,
#: C2PA's caBX, and private chunks whose contents nobody here can vouch for.
PNG_KEPT = frozenset(
    {b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCv", b"cLLi", b"bKGD", b"pHYs"}
    | {b"acTL", b"fcTL", b"fdAT"}
)
#: JPEG APPn segments kept, by their identifier: JFIF (pixel density), the ICC profile
#: and Adobe's (which says how CMYK/YCCK samples are to be read). APP1 (EXIF, XMP), APP11
#: (C2PA/JUMBF), APP13 (IPTC), COM comments and everything else go.
JPEG_KEPT = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
#: WebP chunks kept: the image and its alpha, animation, and the ICC profile. EXIF, "XMP "
#: and anything else go.
WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
WEBP_EXIF_AND_XMP_FLAGS = 0x08 | 0x04


def strip_metadata(data: bytes) -> bytes:
    """``data`` (a PNG, JPEG or WebP file) without its metadata; raises :class:`MetadataError`
    for anything else or a file whose structure is broken.

    Chunks and segments are filtered at byte level; the compressed image data is copied
    as it is, so pixels are never re-encoded: a PNG stays lossless, a JPEG or WebP loses
    nothing more than it had. Kept: what decoding and colour need (``PNG_KEPT``,
    ``JPEG_KEPT``, ``WEBP_KEPT``). Dropped: text chunks, EXIF, XMP, IPTC, comments, C2PA
    manifests, private chunks and anything after the end of the image. The one exception:
    an EXIF orientation other than "upright" would be lost with the EXIF, turning the
    picture on its side, so such a file is re-encoded upright instead (PNG losslessly,
    JPEG and WebP at quality 95). Stripping a stripped file gives the same bytes.
    """
    if data.startswith(PNG_SIGNATURE):
        fmt, (clean, exif) = "PNG", _strip_png(data)
    elif data[:3] == b"\xff\xd8\xff":
        fmt, (clean, exif) = "JPEG", _strip_jpeg(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt, (clean, exif) = "WEBP", _strip_webp(data)
    else:
        raise MetadataError("Only PNG, JPEG and WebP files can be stored.")
    if _orientation(exif) != 1:
        return strip_metadata(_upright(data, fmt))
    return clean


def _strip_png(data: bytes) -> tuple[bytes, bytes | None]:
    out, pos, exif = [PNG_SIGNATURE], len(PNG_SIGNATURE), None
    while True:
        if pos + 12 > len(data):
            raise MetadataError("The PNG file ends before its IEND chunk.")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, data, CRC
        if not kind.isalpha() or end > len(data):
            raise MetadataError("The PNG file has a broken chunk.")
        if kind == b"eXIf":
            exif = data[pos + 8 : end - 4]
        # A critical chunk (upper-case first letter) is kept whatever it is: a decoder
        # needs it. Ancillary ones only when they say how the pixels look.
        if kind[:1].isupper() or kind in PNG_KEPT:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":  # whatever follows (an appended file, HTML) goes as well
            return b"".join(out), exif


def _strip_jpeg(data: bytes) -> tuple[bytes, bytes | None]:
    out, pos, size, exif = [b"\xff\xd8"], 2, len(data), None
    while pos + 1 < size:
        if data[pos] != 0xFF:
            raise MetadataError("The JPEG file has a broken segment.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        if marker == 0xD9:  # EOI: what follows (MPF's second images, appended data) goes
            out.append(b"\xff\xd9")
            return b"".join(out), exif
        if pos + 4 > size:
            raise MetadataError("The JPEG file ends inside a segment.")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > size or end < pos + 4:
            raise MetadataError("The JPEG file has a broken segment.")
        payload = data[pos + 4 : end]
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
                exif = payload
            keep = marker in JPEG_KEPT and payload.startswith(JPEG_KEPT[marker])
        else:
            keep = True  # tables, frame and scan headers
        if keep:
            out.append(data[pos:end])
        pos = end
        if marker == 0xDA:  # a scan's entropy-coded data runs to the next real marker
            scan_end = _jpeg_scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    raise MetadataError("The JPEG file ends before its EOI marker.")


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise MetadataError("The JPEG file ends inside its image data.")
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # a stuffed 0xFF, a restart marker
            pos = found + 2
            continue
        return found


def _strip_webp(data: bytes) -> tuple[bytes, bytes | None]:
    end_of_file = 8 + int.from_bytes(data[4:8], "little")
    if end_of_file > len(data) or end_of_file < 12:
        raise MetadataError("The WebP file is shorter than its header says.")
    chunks: list[bytes] = []
    pos, exif = 12, None
    while pos + 8 <= end_of_file:
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + length
        if end > end_of_file:
            raise MetadataError("The WebP file has a broken chunk.")
        if kind == b"EXIF":
            exif = data[pos + 8 : end]
        if kind in WEBP_KEPT:
            chunk = data[pos:end] + (b"\x00" if length % 2 else b"")  # chunks are padded to even lengths
            if kind == b"VP8X":  # the header's flags must not announce EXIF or XMP any more
                flags = chunk[8] & ~WEBP_EXIF_AND_XMP_FLAGS
                chunk = chunk[:8] + bytes([flags]) + chunk[9:]
            chunks.append(chunk)
        pos = end + length % 2
    if not any(chunk[:4] in (b"VP8 ", b"VP8L", b"ANMF") for chunk in chunks):
        raise MetadataError("The WebP file has no image data.")
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body, exif


def _orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    tags = Image.Exif()
    try:
        tags.load(exif)  # takes EXIF with or without its "Exif\0\0" prefix
    except (OSError, SyntaxError, ValueError, struct.error):
        return 1  # unreadable EXIF: no orientation a viewer would apply either
    orientation = tags.get(0x0112, 1)
    return orientation if orientation in range(1, 9) else 1


def _upright(data: bytes, fmt: str) -> bytes:
    """Re-encode a file whose EXIF turns it, with the turn applied to the pixels."""
    with strict_decoding(), Image.open(io.BytesIO(data)) as image:
        image.load()
        icc = image.info.get("icc_profile")
        upright = ImageOps.exif_transpose(image)
    options: dict = {"icc_profile": icc} if icc else {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    buffer = io.BytesIO()
    upright.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def prepare_output(data: bytes, provenance=None) -> tuple[bytes, ImageInfo, bytes]:
    """A provider's image made ready to store: ``(bytes to store, info, WebP thumbnail)``.

    Its metadata is stripped (:func:`strip_metadata`); an image in another format Pillow
    reads (a GIF, a TIFF) is re-encoded as a PNG, losslessly, since only PNG, JPEG and
    WebP can be stripped without decoding. With ``provenance`` (a
    :class:`blogimages.provenance.Provenance`), the image and its thumbnail are then marked
    as AI-made (and signed, with C2PA configured), the provider's file given as the
    manifest's parent. ``info`` describes the bytes that are stored.
    """
    try:
        clean = strip_metadata(data)
    except MetadataError:
        clean = _as_png(data)
    if provenance is not None:
        clean = provenance.apply(clean, parent=data)
    info, thumbnail = analyse(clean)
    if provenance is not None:
        thumbnail = provenance.apply(thumbnail, derived=True)
    return clean, info, thumbnail


def _as_png(data: bytes) -> bytes:
    try:
        with strict_decoding(), Image.open(io.BytesIO(data)) as image:
            image.load()
            icc = image.info.get("icc_profile")
            pixels = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PermanentProviderError(f"The provider returned something that is not a readable image ({exc}).") from exc
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG", **({"icc_profile": icc} if icc else {}))
    return buffer.getvalue()


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
            icc = image.info.get("icc_profile")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise PermanentProviderError(f"The provider returned something that is not a readable image ({exc}).") from exc
    # reducing_gap: a cheap integer reduce first, then LANCZOS on the small image.
    thumb.thumbnail((thumbnail_width, thumbnail_width * 8), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    # The ICC profile stays, so a wide-gamut image keeps its colours; no other metadata is written.
    # method=0: the encoder's fastest search, at the same quality (the same or a higher PSNR
    # than method=2 on photos), for files about 10 % larger: this runs in the worker for every
    # image, and the encode was most of the CPU storing a small one took (1.2 of 2 ms at 256 px).
    thumb.save(buffer, format="WEBP", quality=80, method=0, **({"icc_profile": icc} if icc else {}))
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
                icc = image.info.get("icc_profile")
                # The EXIF goes, so a phone photo's "turn me" tag must be applied to the pixels.
                upright = ImageOps.exif_transpose(image)
                clean = upright.convert("RGBA" if upright.mode in ("RGBA", "LA", "P") else "RGB")
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses at open() when the header claims far more than its own limit.
        raise UploadRejected(
            f"The image is too large to decode safely; the limit is {max_pixels:,} pixels in all."
        ) from exc
    except UnidentifiedImageError as exc:
        # Pillow's own words name the Python buffer ("<_io.BytesIO object at 0x...>"): not for editors.
        raise UploadRejected(
            "The file is not a complete, readable image (its contents are not a PNG, JPEG, WebP or GIF image)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"The file is not a complete, readable image{_decoder_reason(exc)}.") from exc

    # Re-encoding drops anything appended to the image and most metadata; Pillow carries a
    # JPEG's COM comment over from the decoded image, so strip_metadata has the last word.
    # The ICC profile is kept: it is colour, not provenance.
    out_format = "PNG" if fmt in ("PNG", "GIF") or clean.mode == "RGBA" else fmt
    buffer = io.BytesIO()
    save_kwargs: dict = {"quality": 92} if out_format in ("JPEG", "WEBP") else {}
    if icc:
        save_kwargs["icc_profile"] = icc
    clean.save(buffer, format=out_format, **save_kwargs)
    return strip_metadata(buffer.getvalue()), CONTENT_TYPES[out_format]


# --- edit masks (the contract's white = change, black = keep), for providers ---------------------------


def mask_size(mask: bytes) -> tuple[int, int] | None:
    """The width and height a mask's header claims; None when it is not a readable image."""
    try:
        with Image.open(io.BytesIO(mask)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def binary_mask(mask: bytes) -> Image.Image:
    """The mask as an "L" image of only 0 (keep) and 255 (change); a transparent pixel counts as keep."""
    with strict_decoding(), Image.open(io.BytesIO(mask)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            grey = Image.new("L", rgba.size, 0)
            grey.paste(rgba.convert("L"), mask=rgba.getchannel("A"))
        else:
            grey = image.convert("L")
    return grey.point(lambda value: 255 if value >= 128 else 0)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
