"""The OpenAPI 3.1 document (``GET /api/v1/openapi.json``) is valid, describes every route
under ``api/v1/`` with exactly the methods it takes, and is true: every operation is called
with a success and with errors, and each answer is validated against the document
(tests.test_api.Api checks every answer it gets)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

from blogimages import refining, services
from blogimages.api.openapi import build_document
from blogimages.hosts import get_host
from blogimages.models import ImageGenerationResult
from blogimages.prompts import resolve_params
from blogimages.providers import providers
from blogimages.providers.hosted import webhook_token
from blogimages.providers.placeholder import PlaceholderProvider
from tests.conftest import png_bytes
from tests.servers.chat_completions import ChatCompletionsServer
from tests.test_api import DOCUMENT, SEEN, Api, check_against_document

pytestmark = pytest.mark.django_db

RESULTS = "/api/v1/images/results"
EXAMPLES = "/api/v1/prompt-examples"


class EditingPlaceholder(PlaceholderProvider):
    """The placeholder, able to upscale and vary, so refine has a provider to queue for."""

    operations = frozenset({"upscale", "variations"})


def test_the_document_is_valid_openapi_3_1():
    validate(build_document("https://example.com"))  # raises on any error
    assert DOCUMENT["openapi"] == "3.1.0"


def test_it_is_served_to_anyone(settings):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    document = response.json()
    assert document["servers"] == [{"url": "http://testserver"}]
    assert document["paths"] == json.loads(json.dumps(DOCUMENT["paths"]))
    validate(document)


def _routes(resolver=None, prefix=""):
    for entry in (resolver or get_resolver("blogimages.urls")).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, pattern)
        elif isinstance(entry, URLPattern):
            yield pattern, entry.callback


def test_every_route_is_documented_with_its_methods():
    documented = {}
    for template, item in DOCUMENT["paths"].items():
        documented[template] = {method.upper() for method in item}
    found = {}
    for pattern, view in _routes():
        if not pattern.startswith("api/v1/"):
            continue
        template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", pattern)
        methods = set(getattr(view, "api_methods", ()))
        if not methods:  # not an @endpoint: the webhook receiver (POST) and this document (GET)
            methods = {"POST"} if "webhooks" in template else {"GET"}
        found[template] = methods
    assert found == documented


def test_the_checker_refuses_a_false_answer(api_client):
    """check_against_document is no rubber stamp: an undocumented status or a wrong body fails."""

    class Fake:
        def __init__(self, status, body):
            self.status_code, self.content = status, json.dumps(body).encode()

        def __getitem__(self, name):
            return "application/json"

    with pytest.raises(AssertionError, match="not documented"):
        check_against_document("GET", RESULTS, Fake(418, {"error": "teapot"}))
    with pytest.raises(AssertionError, match="'results' is a required property"):
        check_against_document("GET", RESULTS, Fake(200, {"count": 0}))
    with pytest.raises(AssertionError, match="Additional properties"):
        check_against_document("GET", f"{RESULTS}/1", Fake(404, {"error": "x", "detail": "y"}))
    with pytest.raises(AssertionError, match="is not in the OpenAPI document"):
        check_against_document("GET", "/api/v1/nowhere", Fake(200, {}))


@pytest.fixture
def api_client(admin_user):
    return Api(admin_user)


@pytest.fixture
def everything(settings, thread_server, rq_queue, make_post, make_result, make_editor):
    """A site where every operation can succeed: an editing provider, a writer, a hosted
    provider taking webhooks, a post with sections and finished results."""
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "editing": {"BACKEND": "tests.test_api_openapi.EditingPlaceholder", "OPTIONS": {"delay": 0.0}},
        "bfl": {
            "BACKEND": "blogimages.providers.bfl.BFLProvider",
            "OPTIONS": {"api_key": "bfl-test", "base_url": "http://127.0.0.1:9"},
        },
    }
    writer = thread_server(ChatCompletionsServer(api_key="sk-writer"))
    settings.BLOGIMAGES_WRITER = {"BASE_URL": writer.url, "API_KEY": "sk-writer", "MODEL": "m", "TIMEOUT": 10}
    post = make_post(sections=3)
    sections = get_host().sections(post)
    results = [make_result(sections[0]), make_result(sections[0]), make_result(sections[1])]
    # A generated result's snapshot of what was sent, as request_generation stores it.
    ImageGenerationResult.objects.filter(pk__in=[r.pk for r in results]).update(params=resolve_params(), seed=7)
    ImageGenerationResult.objects.filter(pk=results[0].pk).update(provider="editing", provider_used="editing")
    playground = make_result(sections[2])
    ImageGenerationResult.objects.filter(pk=playground.pk).update(review=None)
    return {
        "post": post,
        "sections": sections,
        "results": results,
        "playground": playground,
        "viewer": Api(make_editor("viewer")),
    }


def test_every_operation_answers_as_documented(api_client, everything, django_capture_on_commit_callbacks):
    api, viewer, anonymous = api_client, everything["viewer"], Api()
    post, sections, (first, second, third) = everything["post"], everything["sections"], everything["results"]
    SEEN.clear()

    def expect(status, response):
        assert response.status_code == status, (status, response.status_code, response.content[:400])
        return response

    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    # the document
    response = Client().get("/api/v1/openapi.json")
    check_against_document("GET", "/api/v1/openapi.json", response)

    # generation
    expect(202, run(lambda: api.post("/api/v1/images/generate", {"prompt": "a cat", "candidates": 1})))
    expect(400, api.post("/api/v1/images/generate", {"prompt": 5}))
    expect(401, anonymous.post("/api/v1/images/generate", {"prompt": "a cat"}))
    expect(403, viewer.post("/api/v1/images/generate", {"prompt": "a cat"}))
    expect(202, run(lambda: api.post(f"/api/v1/posts/{post.pk}/generate", {"only_missing": True})))
    expect(404, api.post("/api/v1/posts/999999/generate"))
    expect(400, api.post(f"/api/v1/posts/{post.pk}/generate", {"only_missing": "yes"}))

    # results
    expect(200, api.get(RESULTS, decision="undecided"))
    expect(400, api.get(RESULTS, status="sleeping"))
    expect(401, anonymous.get(RESULTS))
    expect(200, api.get(f"{RESULTS}/{first.pk}"))
    expect(404, api.get(f"{RESULTS}/999999"))
    refining.store_preview([first.pk], png_bytes())
    preview = expect(200, api.get(f"{RESULTS}/{first.pk}/preview"))
    assert preview["Content-Type"] == "image/webp"
    expect(404, api.get(f"{RESULTS}/{second.pk}/preview"))

    # the candidates' actions
    expect(200, run(lambda: api.post(f"{RESULTS}/{first.pk}/approve", {"alt_text": "A cat", "replaces": None})))
    expect(409, api.post(f"{RESULTS}/{second.pk}/approve", {"replaces": None}))
    expect(404, api.post(f"{RESULTS}/999999/approve"))
    expect(403, viewer.post(f"{RESULTS}/{second.pk}/approve"))
    expect(200, run(lambda: api.post(f"{RESULTS}/{second.pk}/reject", {"comment": "Too dark"})))
    expect(200, run(lambda: api.post(f"{RESULTS}/decide", {"decision": "reject", "ids": [second.pk], "comment": "No"})))
    expect(400, api.post(f"{RESULTS}/decide", {"decision": "reject", "ids": [second.pk]}))
    expect(400, api.post(f"{RESULTS}/{second.pk}/reject", {"comment": ""}))
    expect(202, run(lambda: api.post(f"{RESULTS}/{first.pk}/regenerate", {"same_seed": False})))
    expect(400, api.post(f"{RESULTS}/{first.pk}/regenerate", {"same_seed": 1}))
    queued = ImageGenerationResult.objects.filter(status="queued").order_by("-pk").first()
    expect(200, api.post(f"{RESULTS}/{queued.pk}/cancel"))
    expect(409, api.post(f"{RESULTS}/{queued.pk}/cancel"))
    expect(202, run(lambda: api.post(f"{RESULTS}/{queued.pk}/requeue")))
    expect(409, api.post(f"{RESULTS}/{third.pk}/requeue"))
    playground = everything["playground"]
    expect(200, api.post(f"{RESULTS}/{playground.pk}/attach", {"post": post.pk, "section": sections[2].key}))
    expect(400, api.post(f"{RESULTS}/{playground.pk}/attach", {"post": post.pk, "section": sections[2].key}))
    expect(202, run(lambda: api.post(f"{RESULTS}/{first.pk}/refine", {"operation": "upscale", "scale": 2})))
    expect(400, api.post(f"{RESULTS}/{first.pk}/refine", {"operation": "paint"}))

    # sections
    path = f"/api/v1/posts/{post.pk}/sections/{sections[0].key}"
    expect(200, api.get(f"/api/v1/posts/{post.pk}/sections"))
    expect(404, api.get("/api/v1/posts/999999/sections"))
    expect(200, api.get(path))
    expect(404, api.get(f"/api/v1/posts/{post.pk}/sections/nope"))
    expect(200, run(lambda: api.call("PATCH", path, {"prompt": "A cat on a wall", "alt_text": "A cat"})))
    expect(400, api.call("PATCH", path, {"title": "x"}))
    expect(201, api.post(f"{path}/comments", {"comment": "Nice"}))
    expect(400, api.post(f"{path}/comments", {}))
    upload_path = f"/api/v1/posts/{post.pk}/sections/{sections[2].key}/upload"

    def upload_file():
        return SimpleUploadedFile("cat.png", png_bytes(), content_type="image/png")

    expect(201, run(lambda: api.upload(upload_path, {"file": upload_file()}, HTTP_IDEMPOTENCY_KEY="u1")))
    expect(200, run(lambda: api.upload(upload_path, {"file": upload_file()}, HTTP_IDEMPOTENCY_KEY="u1")))
    expect(400, api.upload(upload_path, {"file": SimpleUploadedFile("x.png", b"no", content_type="image/png")}))
    expect(200, run(lambda: api.post(f"{path}/reject", {"comment": "Start again"})))
    expect(400, api.post(f"{path}/reject", {"comment": 3}))

    # the library
    created = expect(201, api.post(EXAMPLES, {"name": "Harbour", "prompt": "A harbour"})).json()
    expect(400, api.post(EXAMPLES, {"name": ""}))
    expect(200, api.get(EXAMPLES))
    expect(400, api.get(EXAMPLES, page="0"))
    one = f"{EXAMPLES}/{created['id']}"
    expect(200, api.get(one))
    expect(404, api.get(f"{EXAMPLES}/999999"))
    expect(200, api.call("PUT", one, {**created, "notes": "calm"}))
    expect(400, api.call("PUT", one, {"name": 7}))
    expect(200, api.call("PATCH", one, {"notes": "stormy"}))
    expect(400, api.call("PATCH", one, {"style": "blue"}))
    expect(204, api.call("DELETE", one))
    expect(404, api.call("DELETE", one))

    # drafts, status
    expect(200, api.post("/api/v1/drafts/prompt", {"post": post.pk, "section": sections[1].key}))
    expect(400, api.post("/api/v1/drafts/prompt", {"post": post.pk}))
    expect(200, api.post("/api/v1/drafts/alt-text", {"result": first.pk}))
    expect(400, api.post("/api/v1/drafts/alt-text", {"result": "first"}))
    expect(200, api.get("/api/v1/comfyui/status"))
    expect(400, api.call("GET", "/api/v1/comfyui/status?verbose=%00"))

    # webhooks (a hosted provider's signed call; a URL this site did not make)
    hook = "/api/v1/webhooks/bfl/n1/{}"
    secret = providers["bfl"].webhook_secret().encode()
    signature = "sha256=" + hmac.new(secret, b"{}", hashlib.sha256).hexdigest()
    for status, url, extra in (
        (200, hook.format(webhook_token("bfl", "n1")), {"HTTP_X_BFL_SIGNATURE": signature}),
        (403, hook.format("0" * 40), {}),
        (404, f"/api/v1/webhooks/placeholder/n1/{webhook_token('placeholder', 'n1')}", {}),
    ):
        response = Client().post(url, data=b"{}", content_type="application/json", **extra)
        assert response.status_code == status, response.content
        check_against_document("POST", "/api/v1/webhooks/a/b/c", response)

    # every operation was seen succeeding and failing (this document needs no failure)
    operations = {op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()}
    succeeded = {op for op, status in SEEN if status < 300}
    failed = {op for op, status in SEEN if status >= 400}
    assert succeeded == operations
    assert failed == operations - {"openapi"}
    assert not services.queue_errors(ImageGenerationResult.objects.all())
