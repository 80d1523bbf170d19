"""What every published file of an AI-made image says about where it came from, in the
standard ways: an XMP packet with IPTC's Digital Source Type and a credit line, and,
when the operator configures a signing certificate, a signed C2PA manifest.

IPTC's Photo Metadata User Guide ("Guidance for using Digital Source Type") recommends
that "software creating images using trained AI algorithms" adds the Digital Source Type
value ``trainedAlgorithmicMedia`` to the XMP packet of the files it makes; the property is
``Iptc4xmpExt:DigitalSourceType`` (IPTC Photo Metadata Standard, Extension schema), its
value a URI of the vocabulary http://cv.iptc.org/newscodes/digitalsourcetype/:
``trainedAlgorithmicMedia`` is "digital media created algorithmically using a model
derived from sampled content", ``compositeWithTrainedAlgorithmicMedia`` a composite made
with such a model (inpainting, outpainting: a refined upload). IPTC's "Credit Line" is
XMP ``photoshop:Credit``.

One place, one order: :func:`images.strip_metadata` takes out everything a file says
about how it was made (the generator's graph, prompts, an incoming C2PA manifest, any
XMP, ours included); :meth:`Provenance.apply` then strips and writes the mark from the
row's facts and today's settings. The mark is never "kept" through a strip: re-marking
after stripping means no XMP from anywhere else can pass as ours, and a changed credit
line reaches every copy made from then on. Bytes that went through ``apply`` come back
as :class:`Marked`, which ``storage.save_bytes`` stores as they are (as Django's
``escape`` leaves a ``SafeString`` alone), so the checksum recorded for them is the
stored file's.

Nothing else is written: no prompt, no graph, no file name, no provider internals.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from .conf import app_settings
from .images import PNG_SIGNATURE, MetadataError, strip_metadata

if TYPE_CHECKING:
    from .models import ImageGenerationResult

logger = logging.getLogger("blogimages.provenance")

DIGITAL_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: Made by a generative model from a prompt.
TRAINED_ALGORITHMIC_MEDIA = DIGITAL_SOURCE_TYPES + "trainedAlgorithmicMedia"
#: An image (an upload) edited with a generative model: inpainting, outpainting, a refine.
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = DIGITAL_SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia"

#: XMP's namespace for IPTC's extension schema, and Photoshop's (Credit Line).
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
PHOTOSHOP_NS = "http://ns.adobe.com/photoshop/1.0/"

#: Where each format keeps XMP (XMP Specification Part 3): a PNG iTXt chunk with this
#: keyword, a JPEG APP1 segment starting with this namespace, a WebP "XMP " chunk.
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
WEBP_XMP_FLAG = 0x04
WEBP_ALPHA_FLAG = 0x10


class Marked(bytes):
    """Bytes that were stripped and marked by :meth:`Provenance.apply`: stored as they are."""


# --- XMP ---------------------------------------------------------------------------------------


def xmp_packet(source_type: str, credit: str) -> bytes:
    """The XMP packet: the Digital Source Type and, if any, the credit line; nothing else."""
    credit_attr = f"\n   photoshop:Credit={quoteattr(credit)}" if credit else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT_NS}" xmlns:photoshop="{PHOTOSHOP_NS}"\n'
        f"   Iptc4xmpExt:DigitalSourceType={quoteattr(source_type)}{credit_attr}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    ).encode()


def mark(data: bytes, *, ai_generated: bool, composite: bool = False, credit: str | None = None) -> bytes:
    """``data`` (a PNG, JPEG or WebP file without metadata: ``strip_metadata``'s output) with
    the XMP packet saying it is AI-made; unchanged when ``ai_generated`` is false (an upload
    is not marked). ``composite``: an upload edited with a model. ``credit`` defaults to
    ``BLOGIMAGES_CREDIT_LINE``. The image data is copied byte for byte, never re-encoded."""
    if not ai_generated:
        return data
    source_type = COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA if composite else TRAINED_ALGORITHMIC_MEDIA
    packet = xmp_packet(source_type, app_settings.CREDIT_LINE if credit is None else credit)
    if data.startswith(PNG_SIGNATURE):
        return _png_with_xmp(data, packet)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_with_xmp(data, packet)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_with_xmp(data, packet)
    raise MetadataError("Only PNG, JPEG and WebP files can be marked.")


def _png_with_xmp(data: bytes, packet: bytes) -> bytes:
    # iTXt: keyword, NUL, compression flag 0 and method 0, empty language tag and translated
    # keyword (each NUL-ended), then the UTF-8 text. Before the first IDAT, as XMP asks.
    body = b"iTXt" + PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    at = data.find(b"IDAT") - 4
    if at < len(PNG_SIGNATURE):
        raise MetadataError("The PNG file has no image data.")
    return data[:at] + chunk + data[at:]


def _jpeg_with_xmp(data: bytes, packet: bytes) -> bytes:
    payload = JPEG_XMP_HEADER + packet
    if len(payload) + 2 > 0xFFFF:
        raise MetadataError("The XMP packet is too long for one JPEG segment.")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    # After SOI and the JFIF APP0 segment, which must come first.
    pos = 2
    while data[pos : pos + 2] == b"\xff\xe0":
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return data[:pos] + segment + data[pos:]


def _webp_with_xmp(data: bytes, packet: bytes) -> bytes:
    """The extended format (VP8X) announces its XMP chunk with a flag; a simple file (a lone
    VP8 or VP8L chunk) is first made extended, with the canvas size and the alpha flag read
    from its bitstream header (WebP Container Specification, "Extended File Format")."""
    body = data[12 : 8 + int.from_bytes(data[4:8], "little")]
    kind = body[:4]
    if kind == b"VP8X":
        flags = body[8] | WEBP_XMP_FLAG
        body = body[:8] + bytes([flags]) + body[9:]
    elif kind in (b"VP8 ", b"VP8L"):
        width, height, alpha = _webp_canvas(kind, body[8:])
        flags = WEBP_XMP_FLAG | (WEBP_ALPHA_FLAG if alpha else 0)
        payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = b"VP8X" + len(payload).to_bytes(4, "little") + payload + body
    else:
        raise MetadataError("The WebP file has no image header.")
    chunk = b"XMP " + len(packet).to_bytes(4, "little") + packet + (b"\x00" if len(packet) % 2 else b"")
    body = b"WEBP" + body + chunk  # XMP after the image data, as the specification orders it
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _webp_canvas(kind: bytes, bitstream: bytes) -> tuple[int, int, bool]:
    if kind == b"VP8 ":
        # Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height (+2 bits of scale).
        if bitstream[3:6] != b"\x9d\x01\x2a":
            raise MetadataError("The WebP file's VP8 header is broken.")
        width, height = struct.unpack("<HH", bitstream[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    # VP8L: signature 0x2f, then 14 bits width-1, 14 bits height-1, 1 bit "alpha is used".
    if bitstream[:1] != b"\x2f":
        raise MetadataError("The WebP file's VP8L header is broken.")
    bits = int.from_bytes(bitstream[1:5], "little")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


# --- what to mark a result's files with ---------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    """The facts a result's files carry: how the image was made and by which provider kind
    (``agent``, e.g. ``"blogimages/openai"``, named only in the signed C2PA manifest)."""

    composite: bool = False
    agent: str = "blogimages"

    @property
    def digital_source_type(self) -> str:
        return COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA if self.composite else TRAINED_ALGORITHMIC_MEDIA

    def apply(self, data: bytes, *, derived: bool = False, parent: bytes | None = None) -> Marked:
        """``data`` stripped of its metadata, then marked (XMP) and, with ``BLOGIMAGES_C2PA``,
        signed. ``derived``: a thumbnail or rendition (the manifest says it was resized).
        ``parent``: the provider's file as delivered; a C2PA manifest in it becomes the
        signed manifest's ingredient (see :func:`sign`)."""
        marked = mark(strip_metadata(data), ai_generated=True, composite=self.composite)
        if c2pa_configured():
            marked = sign(marked, self, derived=derived, parent=parent)
        return Marked(marked)


def for_result(result: ImageGenerationResult) -> Provenance | None:
    """What ``result``'s files say about it; ``None`` for an upload, which carries no mark."""
    if not result.ai_generated:
        return None
    from .status import provider_class

    alias = result.provider_used or result.provider
    kind = getattr(provider_class(alias), "kind", "") if alias in app_settings.PROVIDERS else ""
    return Provenance(agent=f"blogimages/{kind or 'custom'}")


def finish(data: bytes, provenance: Provenance | None, **kwargs) -> bytes:
    """``data`` as it may be stored or published: stripped, then marked when ``provenance`` says so."""
    return provenance.apply(data, **kwargs) if provenance is not None else strip_metadata(data)


# --- C2PA ----------------------------------------------------------------------------------------

C2PA_SETTING = "BLOGIMAGES_C2PA"
C2PA_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")


def c2pa_configured() -> bool:
    return bool(app_settings.C2PA)


def c2pa_problems() -> list[str]:
    """Why ``BLOGIMAGES_C2PA`` cannot sign, one sentence each (system check E043)."""
    config = app_settings.C2PA
    if not config:
        return []
    if not isinstance(config, dict):
        return [f"{C2PA_SETTING} must be a dict with CERTIFICATE and PRIVATE_KEY, not {type(config).__name__}."]
    problems = []
    unknown = sorted(set(config) - {"CERTIFICATE", "PRIVATE_KEY", "ALGORITHM", "TSA_URL"})
    if unknown:
        problems.append(f"{C2PA_SETTING} has unknown keys: {', '.join(unknown)}.")
    for key in ("CERTIFICATE", "PRIVATE_KEY"):
        path = config.get(key)
        if not path:
            problems.append(f"{C2PA_SETTING}['{key}'] is not set.")
        elif not os.path.isfile(path):
            problems.append(f"{C2PA_SETTING}['{key}'] names {path}, which is not a file.")
    if str(config.get("ALGORITHM", "es256")).lower() not in C2PA_ALGORITHMS:
        problems.append(
            f"{C2PA_SETTING}['ALGORITHM'] is {config['ALGORITHM']!r}; use one of {', '.join(C2PA_ALGORITHMS)}."
        )
    try:
        import c2pa  # noqa: F401
    except ImportError:
        problems.append(f"{C2PA_SETTING} is set but c2pa-python is not installed (pip install 'blogimages[c2pa]').")
    return problems


def _content_type(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise MetadataError("Only PNG, JPEG and WebP files can be signed.")


def has_c2pa_manifest(data: bytes) -> bool:
    """Whether a PNG, JPEG or WebP file carries a C2PA manifest store (caBX chunk, APP11 JUMBF, C2PA chunk)."""
    if data.startswith(PNG_SIGNATURE):
        return b"caBX" in data
    if data[:3] == b"\xff\xd8\xff":
        return b"\xff\xeb" in data and b"jumb" in data
    return data[:4] == b"RIFF" and b"C2PA" in data


def _readable_manifest(c2pa, data: bytes) -> bool:
    """Whether ``data`` carries a C2PA manifest c2pa can read (it need not be trusted here:
    the ingredient records its own validation status). One it cannot read is left out,
    and logged: signing must not fail because a provider's credentials are broken."""
    if not has_c2pa_manifest(data):
        return False
    try:
        with c2pa.Reader(_content_type(data), io.BytesIO(data)) as reader:
            return reader.get_active_manifest() is not None
    except (c2pa.C2paError, MetadataError) as exc:
        logger.warning("The provider's C2PA manifest could not be read (%s); signed without it", exc)
        return False


def sign(data: bytes, provenance: Provenance, *, derived: bool = False, parent: bytes | None = None) -> bytes:
    """``data`` with a C2PA manifest signed with the operator's certificate
    (``BLOGIMAGES_C2PA``): a ``c2pa.actions`` assertion saying it was created by a trained
    model (``digitalSourceType``) with ``provenance.agent`` as the software agent, and
    ``c2pa.resized`` for a thumbnail or rendition.

    A ``parent`` carrying a manifest of its own that c2pa can read (OpenAI signs its
    images) is added as a ``componentOf`` ingredient, so its credentials travel with ours inside the signed
    store: the provider's manifest cannot stay valid in the file itself, whose bytes
    changed (metadata out, XMP in), and a broken manifest would tell verifiers the image
    was tampered with. Without a certificate configured no manifest is written at all.
    """
    import c2pa

    config = app_settings.C2PA
    with open(config["CERTIFICATE"], "rb") as handle:
        certificate = handle.read()
    with open(config["PRIVATE_KEY"], "rb") as handle:
        key = handle.read()
    content_type = _content_type(data)
    created = {"action": "c2pa.created", "digitalSourceType": provenance.digital_source_type}
    created["softwareAgent"] = {"name": provenance.agent}
    actions = [created]
    if derived:
        actions.append({"action": "c2pa.resized", "softwareAgent": {"name": "blogimages"}})
    manifest = {
        "claim_generator_info": [{"name": "blogimages"}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
    }
    settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    info = c2pa.C2paSignerInfo(
        str(config.get("ALGORITHM") or "es256").lower(), certificate, key, config.get("TSA_URL") or None
    )
    with c2pa.Context(settings=settings) as context, c2pa.Signer.from_info(info) as signer:
        with c2pa.Builder(manifest, context) as builder:
            if parent is not None and _readable_manifest(c2pa, parent):
                ingredient = {"title": "provider output", "relationship": "componentOf"}
                builder.add_ingredient(ingredient, _content_type(parent), io.BytesIO(parent))
            out = io.BytesIO()
            builder.sign(signer, content_type, io.BytesIO(data), out)
    return out.getvalue()
