"""Every published file of an AI-made image says so in the standard ways; uploads do not.

Each provider's real output goes through the job path (real local servers, a real
worker; the helpers of tests/test_image_metadata.py), and the XMP is read back from the
stored original, its thumbnail, every rendition and the copy a CMS gets. With an
operator's certificate (made here with ``cryptography``: an ES256 CA and a signing
certificate), every file also carries a C2PA manifest that c2pa-python verifies.
"""

# ruff: noqa: F811 - ``generate`` is the fixture of tests/test_image_metadata.py, used by name
from __future__ import annotations

import datetime
import io
import sys
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from django.template import Context, Template
from django.test import RequestFactory
from PIL import Image

from blogimages import provenance, renditions, services
from blogimages.api.results import result_json
from blogimages.checks import check_settings
from blogimages.hosts import publishing
from blogimages.images import strip_metadata
from blogimages.provenance import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA, TRAINED_ALGORITHMIC_MEDIA, Provenance
from tests.servers.a1111 import A1111Server
from tests.servers.openai_server import OpenAIImagesServer
from tests.test_image_metadata import (  # noqa: F401 - generate is a fixture
    PROMPT,
    assert_clean,
    camera_jpeg,
    check_stored,
    comfyui_result,
    generate,
    providers_setting,
    stored_files,
)

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
SOURCE_TYPE = f"{{{provenance.IPTC_EXT_NS}}}DigitalSourceType"
CREDIT = f"{{{provenance.PHOTOSHOP_NS}}}Credit"
#: What no mark may say: the prompt, the graph, file names, provider internals.
NOT_IN_A_MARK = (PROMPT.lower(), "lighthouse", "prompt", "seed", "workflow", "comfyui", "openai", ".png", "sdxl")


def xmp_of(data: bytes) -> dict[str, str] | None:
    """The attributes of the file's XMP description, read with Pillow; ``None`` without XMP."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet:
        return None
    packet = packet if isinstance(packet, bytes) else packet.encode()
    for word in NOT_IN_A_MARK:
        assert word.encode() not in packet.lower(), word
    root = ET.fromstring(packet[packet.index(b"<x:xmpmeta") : packet.index(b"</x:xmpmeta>") + 12])
    [description] = root.iter(f"{RDF}Description")
    return dict(description.attrib)


def assert_marked(data: bytes, *, credit: str = "Image generated with AI", label: str = "") -> None:
    attributes = xmp_of(data)
    assert attributes is not None, f"{label}: no XMP"
    assert attributes[SOURCE_TYPE] == TRAINED_ALGORITHMIC_MEDIA, label
    assert attributes.get(CREDIT) == credit, label
    assert set(attributes) == {f"{RDF}about", SOURCE_TYPE, CREDIT}, label  # and nothing else


def check_published(result, served: bytes | None = None, **kwargs) -> dict[str, bytes]:
    """Every file of the result, and the copy a CMS gets, is marked; pixels as served."""
    files = stored_files(result)
    assert len(files) == 4  # image, thumbnail, two renditions
    files["published copy"] = publishing.read_image(result)
    for label, data in files.items():
        assert_marked(data, label=label, **kwargs)
        assert_clean(data)  # nothing but the mark
    assert files["published copy"] == files["image"]  # marked again, the same bytes
    if served is not None:
        check_stored(result, served)
    return files


# --- each provider's format ---------------------------------------------------------------------


def test_comfyui_png_is_marked_in_every_file(settings, generate):
    result, served = comfyui_result(settings, generate)
    assert result.ai_generated
    check_published(result, served)


def test_automatic1111_png_is_marked_in_every_file(settings, thread_server, generate):
    server = thread_server(A1111Server(step_delay=0.001))
    providers_setting(
        settings,
        "a1111",
        "blogimages.providers.automatic1111.Automatic1111Provider",
        base_url=server.url,
        poll_interval=0.02,
    )
    check_published(generate("a1111", width=320, height=200, steps=2))


def test_placeholder_png_is_marked_with_the_configured_credit_line(settings, generate):
    settings.BLOGIMAGES_CREDIT_LINE = 'Illustration: AI & "Studio" <Blog>'
    result = generate("placeholder", width=320, height=256)
    check_published(result, credit='Illustration: AI & "Studio" <Blog>')
    settings.BLOGIMAGES_CREDIT_LINE = ""
    attributes = xmp_of(publishing.read_image(result))  # today's setting reaches new copies
    assert attributes[SOURCE_TYPE] == TRAINED_ALGORITHMIC_MEDIA and CREDIT not in attributes


@pytest.fixture
def openai_provider(settings, thread_server, monkeypatch):
    pytest.importorskip("openai")
    for name in ("OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    server = thread_server(OpenAIImagesServer(api_key="sk-test"))
    providers_setting(
        settings, "openai", "blogimages.providers.openai.OpenAIImagesProvider", api_key="sk-test", base_url=server.url
    )
    return server


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_openai_files_are_marked_in_every_format(openai_provider, generate, output_format):
    result = generate("openai", extra={"output_format": output_format})
    [served] = openai_provider.images
    files = check_published(result, served)
    expected = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[output_format]
    assert Image.open(io.BytesIO(files["image"])).format == expected
    if output_format == "webp":
        flags = files["image"][20]
        assert files["image"][12:16] == b"VP8X" and flags & provenance.WEBP_XMP_FLAG


# --- uploads and the flag -----------------------------------------------------------------------


def test_an_upload_carries_no_ai_mark(make_post, admin_user, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.BLOGIMAGES_RENDITION_WIDTHS = (64,)
    section = make_post(sections=1).sections.get()
    result = services.upload(section, SimpleUploadedFile("photo.jpg", camera_jpeg(), "image/jpeg"), user=admin_user)
    renditions.make_renditions(result.pk)
    result.refresh_from_db()
    assert not result.ai_generated
    files = {**stored_files(result), "published copy": publishing.read_image(result)}
    assert len(files) == 4
    for data in files.values():
        assert xmp_of(data) is None
        assert_clean(data)
    payload = result_json(RequestFactory().get("/"), result)
    assert payload["ai_generated"] is False


def test_the_api_says_a_generated_result_is_ai_generated(generate):
    result = generate("placeholder", width=320, height=256)
    assert result_json(RequestFactory().get("/"), result)["ai_generated"] is True


def test_the_composite_type_for_a_refined_upload():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, format="JPEG")
    marked = Provenance(composite=True).apply(buffer.getvalue())
    assert xmp_of(marked)[SOURCE_TYPE] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert provenance.mark(buffer.getvalue(), ai_generated=False) == buffer.getvalue()  # an upload: unmarked


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("lossless", [False, True])
def test_a_webp_gets_the_extended_header_with_its_pixels_untouched(mode, lossless):
    """A simple file (a lone VP8 or VP8L chunk) is made extended, its canvas and alpha read
    from the bitstream; an extended one (lossy with alpha: VP8X, ALPH, VP8) keeps its flags."""
    image = Image.new(mode, (33, 17), (10, 200, 30, 128)[: len(mode)])
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=lossless, quality=80)
    original = buffer.getvalue()
    marked = provenance.mark(original, ai_generated=True)
    if original[12:16] == b"VP8X":
        assert original[30:] in marked  # the chunks after the header, copied as they were
    else:
        assert original[12:16] in (b"VP8 ", b"VP8L") and original[12:] in marked
    flags = marked[20]
    assert marked[12:16] == b"VP8X" and flags & provenance.WEBP_XMP_FLAG
    assert bool(flags & provenance.WEBP_ALPHA_FLAG) == (mode == "RGBA")
    assert (int.from_bytes(marked[24:27], "little") + 1, int.from_bytes(marked[27:30], "little") + 1) == (33, 17)
    with Image.open(io.BytesIO(marked)) as read, Image.open(io.BytesIO(original)) as before:
        assert read.tobytes() == before.tobytes()
    assert_marked(marked)
    assert provenance.mark(strip_metadata(marked), ai_generated=True) == marked


# --- the visible label ----------------------------------------------------------------------------


def approved(section, *, generated: bool):
    from tests.conftest import generated_result

    result = generated_result(section, prompt="A lighthouse at dusk")
    if not generated:
        result.source = "uploaded"
        result.save(update_fields=["source"])
    services.approve(result)
    return result


def render(template: str, **context) -> str:
    return Template("{% load blogimages %}" + template).render(Context(context))


def test_the_tag_labels_ai_images_only_when_asked(make_post, settings):
    first, second = make_post(sections=2).sections.order_by("position", "pk")
    approved(first, generated=True)
    approved(second, generated=False)
    plain = render("{% blogimage section %}", section=first)
    assert plain.startswith("<img ") and "figcaption" not in plain  # unchanged by default
    labelled = render("{% blogimage section label=True %}", section=first)
    assert labelled.startswith('<figure class="blogimage-figure"><img ')
    assert labelled.endswith('<figcaption class="blogimage-ai-label">AI-generated image</figcaption></figure>')
    own = render("{% blogimage section label=text %}", section=first, text="Made with <AI>")
    assert "Made with &lt;AI&gt;</figcaption>" in own
    assert "figcaption" not in render("{% blogimage section label=True %}", section=second)  # an upload

    settings.BLOGIMAGES_AI_LABEL = "Generated by a machine"
    assert "Generated by a machine</figcaption>" in render("{% blogimage section %}", section=first)
    assert "figcaption" not in render("{% blogimage section label=False %}", section=first)
    assert "figcaption" not in render("{% blogimage section %}", section=second)


# --- C2PA -----------------------------------------------------------------------------------------


def make_certificates(directory) -> dict[str, str]:
    """An ES256 CA and a signing certificate with the key usages C2PA asks for; the chain
    (signing certificate first) and the key as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name):
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "blogimages tests"),
            ]
        )

    def usage(*, sign, certs):
        return x509.KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=certs, crl_sign=certs, encipher_only=False, decipher_only=False,
        )  # fmt: skip

    def builder(subject, issuer, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder(name("blogimages test CA"), name("blogimages test CA"), ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=False, certs=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        builder(name("blogimages test signer"), ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = directory / "chain.pem"
    chain.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    private = directory / "key.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {"CERTIFICATE": str(chain), "PRIVATE_KEY": str(private), "ALGORITHM": "es256", "TSA_URL": ""}


@pytest.fixture
def c2pa_settings(settings, tmp_path):
    pytest.importorskip("c2pa")
    settings.BLOGIMAGES_C2PA = make_certificates(tmp_path)
    return settings.BLOGIMAGES_C2PA


CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def verified_manifest(data: bytes) -> dict:
    """The file's active C2PA manifest, its signature and hashes checked by c2pa-python; the
    test CA is on no trust list, which is the only failure allowed."""
    import c2pa

    with Image.open(io.BytesIO(data)) as image:
        content_type = CONTENT_TYPES[image.format]
    with c2pa.Reader(content_type, io.BytesIO(data)) as reader:
        results = reader.get_validation_results()["activeManifest"]
        manifest = reader.get_active_manifest()
    passed = {item["code"] for item in results["success"]}
    assert {"claimSignature.validated", "claimSignature.insideValidity", "assertion.dataHash.match"} <= passed
    assert {item["code"] for item in results["failure"]} <= {"signingCredential.untrusted"}
    assert manifest["signature_info"]["common_name"] == "blogimages test signer"
    return manifest


def actions_of(manifest: dict) -> list[dict]:
    [assertion] = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    return assertion["data"]["actions"]


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_with_a_certificate_every_file_is_signed(c2pa_settings, openai_provider, generate, output_format):
    result = generate("openai", extra={"output_format": output_format})
    files = stored_files(result)
    files["published copy"] = publishing.read_image(result)
    for label, data in files.items():
        assert_marked(data, label=label)  # the XMP survives signing
        manifest = verified_manifest(data)
        created = actions_of(manifest)[0]
        assert created["action"] == "c2pa.created"
        assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
        assert created["softwareAgent"]["name"] == "blogimages/openai"
        derived = label.startswith(("thumbnail", "rendition"))
        assert [a["action"] for a in actions_of(manifest)[1:]] == (["c2pa.resized"] if derived else [])
        assert PROMPT.encode() not in data and b"lighthouse" not in data
    stored = files["image"]
    assert (len(stored), result.file_size) == (result.file_size, len(stored))  # the checksum is the signed file's
    with Image.open(io.BytesIO(stored)) as mine, Image.open(io.BytesIO(openai_provider.images[0])) as theirs:
        assert mine.tobytes() == theirs.tobytes()


def test_a_providers_own_manifest_is_kept_as_an_ingredient(c2pa_settings, tmp_path):
    """A provider's signed file (signed here as a provider would, with another certificate)
    becomes the ingredient of the operator's manifest, its own manifest inside."""
    import c2pa

    (tmp_path / "provider").mkdir()
    provider_certs = make_certificates(tmp_path / "provider")
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (90, 20, 200)).save(buffer, format="PNG")
    info = c2pa.C2paSignerInfo(
        "es256",
        open(provider_certs["CERTIFICATE"], "rb").read(),
        open(provider_certs["PRIVATE_KEY"], "rb").read(),
        None,
    )
    delivered = io.BytesIO()
    manifest = {
        "claim_generator_info": [{"name": "a provider"}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]},
            }
        ],
    }
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/png", io.BytesIO(buffer.getvalue()), delivered)
    delivered = delivered.getvalue()

    stored = Provenance(agent="blogimages/openai").apply(delivered, parent=delivered)
    ours = verified_manifest(stored)
    [ingredient] = ours["ingredients"]
    assert ingredient["relationship"] == "componentOf"
    assert ingredient.get("active_manifest")  # the provider's manifest travels inside ours
    assert_marked(stored)


def test_a_manifest_c2pa_cannot_read_is_left_out(c2pa_settings, openai_provider, generate):
    """The local OpenAI server's Content Credentials are a stand-in c2pa cannot parse: the
    image is signed all the same, without an ingredient."""
    result = generate("openai", extra={"output_format": "png"})
    assert b"caBX" in openai_provider.images[0]
    assert not verified_manifest(stored_files(result)["image"]).get("ingredients")


def test_without_a_certificate_nothing_is_signed(generate):
    result = generate("placeholder", width=320, height=256)
    for data in stored_files(result).values():
        assert b"caBX" not in data and b"c2pa" not in data


# --- the system check ---------------------------------------------------------------------------


def e043(settings) -> list[str]:
    return [error.msg for error in check_settings() if error.id == "blogimages.E043"]


def test_e043_names_missing_files_and_a_missing_library(settings, tmp_path, monkeypatch):
    assert e043(settings) == []
    settings.BLOGIMAGES_C2PA = {"CERTIFICATE": str(tmp_path / "nope.pem"), "PRIVATE_KEY": ""}
    assert e043(settings) == [
        f"BLOGIMAGES_C2PA['CERTIFICATE'] names {tmp_path / 'nope.pem'}, which is not a file.",
        "BLOGIMAGES_C2PA['PRIVATE_KEY'] is not set.",
    ]
    settings.BLOGIMAGES_C2PA = make_certificates(tmp_path)
    assert e043(settings) == []
    monkeypatch.setitem(sys.modules, "c2pa", None)  # as if c2pa-python were not installed
    [message] = e043(settings)
    assert "c2pa-python is not installed" in message
    with pytest.raises(Exception, match="E043"):
        call_command("check")


# --- the copy Wagtail gets ------------------------------------------------------------------------


def test_the_wagtail_image_published_from_a_generated_result_is_marked(
    settings, generate, django_capture_on_commit_callbacks
):
    """The Wagtail image an approval makes (tests/contrib/wagtail/test_publishing.py's
    path); django CMS's filer image is made from the same ``publishing.read_image``."""
    from wagtail.images import get_image_model
    from wagtail.models import Site

    from blogimages.hosts import get_host
    from project.wagtailblog.models import BlogPage
    from tests.conftest import use_wagtail_host
    from tests.contrib.wagtail.conftest import PAGES, section_value

    use_wagtail_host(settings, PAGES)
    page = BlogPage(
        title="A walk by the sea", slug="walk-provenance", body=[("section", section_value("One", "<p>x</p>"))]
    )
    Site.objects.get(is_default_site=True).root_page.add_child(instance=page)
    page.save_revision().publish()
    [section] = get_host().sections(page)
    result = generate("placeholder", width=320, height=256)
    result.review = services.review_for(section)
    result.save(update_fields=["review"])
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(result)
    image = get_image_model().objects.get(blogimages_source__result=result)
    with image.file.open("rb") as handle:
        assert_marked(handle.read(), label="Wagtail image")
