"""The JSON API: auth (session + CSRF, bearer tokens), permissions, validation, the
queue outage, history filters with constant queries, prompt example CRUD, per-post
generation and ComfyUI status. Jobs run on a real RQ worker against real Redis."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openapi_schema_validator import OAS31Validator

from blogimages import services
from blogimages.api.openapi import build_document
from blogimages.models import (
    ImageFormat,
    ImageGenerationResult,
    ImagePromptExample,
    ImageSetting,
    ImageStyle,
    ResultStatus,
)
from blogimages.providers import BaseProvider, ProviderHealth

pytestmark = pytest.mark.django_db

GENERATE = "/api/v1/images/generate"
RESULTS = "/api/v1/images/results"
EXAMPLES = "/api/v1/prompt-examples"
TOKEN = "tok-3f9a1c0d2b7e4e55a9e1"
CSRF = "A" * 32


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the OpenAPI document, checked on every answer ------------------------------------------------

DOCUMENT = build_document("http://testserver")
#: ``(operationId, status)`` of every answer checked against the document in this process.
SEEN: set[tuple[str, int]] = set()


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


OPERATIONS = [
    (_template_regex(template), method, op)
    for template, item in DOCUMENT["paths"].items()
    for method, op in item.items()
]


def document_operation(method: str, path: str) -> dict | None:
    path = urlsplit(path).path
    for regex, op_method, op in OPERATIONS:
        if op_method == method.lower() and regex.match(path):
            return op
    return None


def check_against_document(method: str, path: str, response) -> None:
    """Fail unless ``response`` is what the OpenAPI document says ``method path`` answers:
    a documented status, and a JSON body valid against its schema."""
    if response.status_code == 405:  # a method the path does not take has no operation to describe it
        return
    op = document_operation(method, path)
    assert op is not None, f"{method} {path} is not in the OpenAPI document"
    spec = op["responses"].get(str(response.status_code))
    assert spec is not None, (
        f"{method} {path}: status {response.status_code} is not documented ({response.content[:300]!r})"
    )
    SEEN.add((op["operationId"], response.status_code))
    content = spec.get("content")
    if not content:
        assert not response.content, f"{method} {path}: {response.status_code} should have no body"
        return
    media = response["Content-Type"].split(";")[0]
    assert media in content, f"{method} {path}: {media} is not documented for {response.status_code}"
    if media != "application/json":
        return
    schema = {**content[media]["schema"], "components": DOCUMENT["components"]}
    validator = OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(json.loads(response.content)), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
    )


class Api:
    """The Django test client speaking JSON, with CSRF checks switched on as in production.
    Every answer is checked against the OpenAPI document (``check=False`` to skip)."""

    def __init__(self, user=None, token: str | None = None, csrf: bool = True):
        self.client = Client(enforce_csrf_checks=True)
        self.headers = {}
        if user is not None:
            self.client.force_login(user)
        if csrf:
            self.client.cookies["csrftoken"] = CSRF
            self.headers["HTTP_X_CSRFTOKEN"] = CSRF
        if token is not None:
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, raw: str | bytes | None = None, **extra):
        if method == "GET":
            return self.get(path)
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = getattr(self.client, method.lower())(
            path, data=data, content_type="application/json", **{**self.headers, **extra}
        )
        check_against_document(method, path, response)
        return response

    def get(self, path, **params):
        response = self.client.get(path, params, **self.headers)
        check_against_document("GET", path, response)
        return response

    def upload(self, path, fields: dict, **extra):
        """A multipart/form-data POST (files as ``SimpleUploadedFile`` values)."""
        response = self.client.post(path, data=fields, **{**self.headers, **extra})
        check_against_document("POST", path, response)
        return response

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)


@pytest.fixture
def api(admin_user):
    return Api(admin_user)


@pytest.fixture
def two_providers(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "placeholder2": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}},
    }


# --- authentication and permissions ---------------------------------------------------

ENDPOINTS = [
    ("POST", GENERATE),
    ("GET", RESULTS),
    ("GET", f"{RESULTS}/1"),
    ("GET", EXAMPLES),
    ("POST", EXAMPLES),
    ("GET", f"{EXAMPLES}/1"),
    ("PATCH", f"{EXAMPLES}/1"),
    ("DELETE", f"{EXAMPLES}/1"),
    ("POST", "/api/v1/posts/1/generate"),
    ("GET", "/api/v1/comfyui/status"),
    *[("POST", f"{RESULTS}/1/{action}") for action in ("approve", "reject", "cancel", "requeue", "regenerate")],
    ("GET", "/api/v1/posts/1/sections"),
    ("GET", "/api/v1/posts/1/sections/1"),
    ("PATCH", "/api/v1/posts/1/sections/1"),
    ("POST", "/api/v1/posts/1/sections/1/reject"),
    ("POST", "/api/v1/posts/1/sections/1/comments"),
    ("POST", "/api/v1/posts/1/sections/1/upload"),
]


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_anonymous_gets_401(method, path):
    response = Api().call(method, path, {"prompt": "x"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Log in" in response.json()["error"]


def test_permissions_match_admin(make_editor):
    viewer = Api(make_editor("viewer"))
    assert viewer.post(GENERATE, {"prompt": "a cat"}).status_code == 403
    assert "blogimages.generate_images" in viewer.post(GENERATE, {"prompt": "a cat"}).json()["error"]
    assert viewer.get(RESULTS).status_code == 200  # view permission is enough to read
    assert viewer.get(EXAMPLES).status_code == 403
    assert viewer.post(EXAMPLES, {"name": "x"}).status_code == 403
    assert ImageGenerationResult.objects.count() == 0 and ImagePromptExample.objects.count() == 0

    curator = Api(make_editor("curator", perms=["view_imagepromptexample", "add_imagepromptexample"]))
    created = curator.post(EXAMPLES, {"name": "Harbour"})
    assert created.status_code == 201
    path = f"{EXAMPLES}/{created.json()['id']}"
    assert curator.call("PATCH", path, {"notes": "x"}).status_code == 403
    assert curator.call("DELETE", path).status_code == 403
    assert ImagePromptExample.objects.get().notes == ""

    outsider = get_user_model().objects.create_user("outsider", password="x")  # not staff
    response = Api(outsider).get(RESULTS)
    assert response.status_code == 403 and "staff" in response.json()["error"]


def test_session_requests_need_the_csrf_token(admin_user, django_capture_on_commit_callbacks):
    no_csrf = Api(admin_user, csrf=False)
    response = no_csrf.post(GENERATE, {"prompt": "a cat"})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert no_csrf.get(RESULTS).status_code == 200  # safe methods need no token
    assert ImageGenerationResult.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert Api(admin_user).post(GENERATE, {"prompt": "a cat"}).status_code == 202


def test_bearer_tokens(settings, make_editor, django_capture_on_commit_callbacks):
    robot = make_editor("robot", perms=["generate_images"])
    get_user_model().objects.create_user("plain", password="x")
    settings.BLOGIMAGES_API_TOKENS = {TOKEN: "robot", "tok-plain": "plain", "tok-ghost": "ghost"}

    with django_capture_on_commit_callbacks(execute=True):
        response = Api(token=TOKEN, csrf=False).post(GENERATE, {"prompt": "a cat"})  # no CSRF for tokens
    assert response.status_code == 202
    assert ImageGenerationResult.objects.get().requested_by == robot

    assert Api(token=TOKEN + "x", csrf=False).get(RESULTS).status_code == 401
    assert Api(token="tok-ghost", csrf=False).get(RESULTS).status_code == 401
    assert Api(token="tok-plain", csrf=False).get(RESULTS).status_code == 403
    basic = Api(csrf=False)
    basic.headers["HTTP_AUTHORIZATION"] = f"Basic {TOKEN}"
    assert basic.get(RESULTS).status_code == 401
    robot.is_active = False
    robot.save()
    assert Api(token=TOKEN, csrf=False).get(RESULTS).status_code == 401


def test_wrong_method_is_405(api):
    response = api.get(GENERATE)
    assert response.status_code == 405 and response["Allow"] == "POST"
    response = api.call("DELETE", "/api/v1/posts/1/sections/1")
    assert response.status_code == 405 and response["Allow"] == "GET, PATCH"


def test_any_other_path_is_a_json_404(api):
    for method, path in (("GET", "/api/v1/images/results/abc"), ("POST", "/api/v1/nothing/here")):
        response = api.client.generic(method, path, **api.headers)
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        assert response.json() == {"error": f"There is no API endpoint at {path}."}


# --- generating --------------------------------------------------------------------------


def test_generate_several_providers_and_follow_the_results(
    api, two_providers, run_worker, django_capture_on_commit_callbacks
):
    body = {
        "prompt": "A lighthouse at dusk",
        "providers": ["placeholder", "placeholder2"],
        "settings": {"width": 512, "height": 384, "steps": 20, "seed": 7, "negative_prompt": "blurry"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(GENERATE, body)
    assert response.status_code == 202, response.json()
    data = response.json()
    assert [r["status"] for r in data["results"]] == ["queued", "queued"]
    assert {r["provider"] for r in data["results"]} == {"placeholder", "placeholder2"}
    assert uuid.UUID(data["group"])

    queued = api.get(data["results"][0]["url"]).json()
    assert queued["status"] == "queued" and queued["image_url"] is None and queued["progress"] == 0

    assert run_worker() == 2
    for item in data["results"]:
        result = api.get(item["url"]).json()
        assert result["status"] == "succeeded" and result["error"] is None
        assert result["progress"] == 100 and result["progress_message"]
        assert (result["width"], result["height"], result["seed"]) == (512, 384, 7)
        assert result["provider"] == result["provider_used"] == item["provider"]
        assert result["group"] == data["group"]
        row = ImageGenerationResult.objects.get(pk=item["id"])
        assert result["image_url"].endswith(row.image.name) and result["thumbnail_url"].endswith(row.thumbnail.name)
        assert row.params["steps"] == 20 and row.negative_prompt == "blurry"


def test_generate_from_the_library(api, run_worker, django_capture_on_commit_callbacks):
    style = ImageStyle.objects.create(name="Watercolour", prompt_template="{prompt}, watercolour")
    fmt = ImageFormat.objects.create(name="Hero", width=640, height=320)
    setting = ImageSetting.objects.create(name="Quick", steps=12)
    example = ImagePromptExample.objects.create(
        name="Harbour", prompt="boats in a harbour", style=style, image_format=fmt, setting=setting
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(GENERATE, {"prompt_example": example.pk, "height": 448})
    assert response.status_code == 202, response.json()
    run_worker()
    result = api.get(response.json()["results"][0]["url"]).json()
    assert result["final_prompt"] == "boats in a harbour, watercolour"
    assert (result["width"], result["height"]) == (640, 448) and result["params"]["steps"] == 12
    assert result["prompt_example"] == example.pk


def test_invalid_input_names_each_field(api, make_post):
    section = make_post(sections=1).sections.get()
    response = api.post(
        GENERATE,
        {
            "prompt": 5,
            "width": "wide",
            "guidance_scale": True,
            "provider": "nope",
            "style": 999,
            "format": "hero",
            "colour": "red",
            "settings": {"width": 512, "sharpness": 3},
            "section": str(section.pk),
        },
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "prompt",
        "width",
        "guidance_scale",
        "provider",
        "style",
        "format",
        "colour",
        "settings.sharpness",
    }
    assert "No provider 'nope'" in errors["provider"][0] and "No style with id 999." == errors["style"][0]

    # Range checks come from the service layer and land in the same shape.
    response = api.post(GENERATE, {"prompt": "x", "steps": 0, "guidance_scale": 99, "width": 10})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"steps", "guidance_scale", "width"}

    assert api.post(GENERATE, {"providers": ["placeholder", 3], "prompt": "x"}).json()["errors"].keys() == {"providers"}
    assert set(api.post(GENERATE, {}).json()["errors"]) == {"prompt"}
    assert set(api.post(GENERATE, {"prompt": "x" * 4001}).json()["errors"]) == {"prompt"}
    assert ImageGenerationResult.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "", '"text"'])
def test_malformed_body_is_400(api, raw):
    response = api.call("POST", GENERATE, raw=raw)
    assert response.status_code == 400
    assert response.json()["errors"]["__all__"]


@pytest.mark.django_db(transaction=True)
def test_queue_outage_is_503_and_keeps_the_rows(settings):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "x")
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        "down": {"URL": f"redis://127.0.0.1:{closed_port()}/0?socket_connect_timeout=1&socket_timeout=1"},
    }
    settings.BLOGIMAGES_QUEUE = "down"
    response = Api(admin).post(GENERATE, {"prompt": "a cat"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"].startswith("Could not reach the job queue")
    row = ImageGenerationResult.objects.get()
    assert [r["id"] for r in body["results"]] == [row.pk]
    assert row.status == ResultStatus.QUEUED and row.error_message == body["error"]


# --- history ---------------------------------------------------------------------------


def make_results(count, **fields):
    defaults = {"prompt": "p", "final_prompt": "p", "provider": "placeholder", "params": {}}
    return [ImageGenerationResult.objects.create(**{**defaults, **fields}) for _ in range(count)]


def count_queries(api, path, **params):
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path, **params)
    assert response.status_code == 200, response.json()
    return len(queries), response.json()


def test_history_queries_do_not_grow_with_results(api, make_post):
    post = make_post(sections=1)
    review = services.review_for(post.sections.get())
    make_results(3, review=review, status=ResultStatus.SUCCEEDED, image="blogimages/a.png")
    few, data = count_queries(api, RESULTS)
    assert data["count"] == 3
    make_results(40, review=review, status=ResultStatus.SUCCEEDED, image="blogimages/b.png")
    many, data = count_queries(api, RESULTS, page_size=200)
    assert data["count"] == 43 and len(data["results"]) == 43
    assert few == many


def test_history_filters_and_pages(api, make_post):
    post = make_post(sections=2)
    first, second = post.sections.all()
    group = uuid.uuid4()
    old = make_results(1, status=ResultStatus.FAILED, provider="placeholder2")[0]
    ImageGenerationResult.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    make_results(2, review=services.review_for(first), status=ResultStatus.SUCCEEDED, group=group)
    make_results(3, review=services.review_for(second), status=ResultStatus.QUEUED)

    def ids(**params):
        data = api.get(RESULTS, **params).json()
        return data["count"]

    assert ids() == 6
    assert ids(status="succeeded") == 2 and ids(status="succeeded,failed") == 3
    assert ids(provider="placeholder2") == 1
    # Posts and sections are named by their reference as text: the post's pk, the section's key.
    assert ids(post=str(post.pk)) == 5 and ids(section=str(second.pk)) == 3
    assert ids(post="999999") == 0 and ids(section="999999") == 0
    assert ids(group=str(group)) == 2
    assert ids(since=(timezone.now() - timedelta(days=1)).isoformat()) == 5
    assert ids(since=(timezone.now() - timedelta(days=4)).date().isoformat()) == 6

    page1 = api.get(RESULTS, page_size=4).json()
    assert page1["pages"] == 2 and len(page1["results"]) == 4 and page1["previous"] is None
    page2 = api.get(page1["next"]).json()
    assert len(page2["results"]) == 2 and page2["next"] is None
    seen = [r["id"] for r in page1["results"] + page2["results"]]
    assert len(set(seen)) == 6 and seen[-1] == old.pk  # newest first

    # A post id is text now (any key type), so post="first" is a valid filter that matches nothing.
    assert ids(post="first") == 0
    bad = api.get(RESULTS, status="done", post="first", since="yesterday", group="g", page="0", colour="red")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"status", "since", "group", "page", "colour"}


def test_result_not_found(api):
    response = api.get(f"{RESULTS}/424242")
    assert response.status_code == 404 and response.json()["error"] == "No result with id 424242."


# --- prompt examples ---------------------------------------------------------------------


def test_prompt_example_crud(api, admin_user):
    style = ImageStyle.objects.create(name="Ink", prompt_template="{prompt}, ink")
    fmt = ImageFormat.objects.create(name="Square", width=512, height=512)
    created = api.post(
        EXAMPLES, {"name": "Harbour", "prompt": "boats", "style": style.pk, "format": fmt.pk, "provider": "placeholder"}
    )
    assert created.status_code == 201, created.json()
    item = created.json()
    assert created["Location"] == item["url"]
    assert (item["style"], item["format"], item["setting"], item["created_by"]) == (style.pk, fmt.pk, None, "admin")

    assert api.get(EXAMPLES).json()["results"] == [item]
    assert api.get(item["url"]).json() == item

    patched = api.call("PATCH", item["url"], {"notes": "for the coast series", "format": None}).json()
    assert (patched["notes"], patched["format"], patched["prompt"], patched["style"]) == (
        "for the coast series",
        None,
        "boats",
        style.pk,
    )

    put = api.call("PUT", item["url"], {"name": "Harbour at night"}).json()
    assert (put["name"], put["prompt"], put["style"], put["notes"]) == ("Harbour at night", "", None, "")

    api.post(EXAMPLES, {"name": "Other"})
    clash = api.call("PATCH", item["url"], {"name": "Other", "style": 999, "provider": "nope", "notes": 3})
    assert clash.status_code == 400
    errors = clash.json()["errors"]
    assert set(errors) == {"name", "style", "provider", "notes"}
    assert "already exists" in errors["name"][0] and "nope" in errors["provider"][0]
    assert api.post(EXAMPLES, {"prompt": "no name"}).json()["errors"].keys() == {"name"}
    assert ImagePromptExample.objects.get(pk=item["id"]).name == "Harbour at night"

    assert api.call("DELETE", item["url"]).status_code == 204
    assert api.get(item["url"]).status_code == 404
    assert ImagePromptExample.objects.count() == 1


# --- per-post generation ------------------------------------------------------------------


def test_generate_for_post(api, make_post, run_worker, django_capture_on_commit_callbacks):
    post = make_post(sections=3)
    first, second, empty = post.sections.all()
    empty.body = ""
    empty.save()
    path = f"/api/v1/posts/{post.pk}/generate"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(path)
    assert response.status_code == 202, response.json()
    data = response.json()
    # The post and sections are named as text: the post's pk, each section's key.
    assert data["post"] == str(post.pk)
    assert sorted(r["section"] for r in data["results"]) == sorted([str(first.pk), str(second.pk)])
    assert [s["section"] for s in data["skipped"]] == [str(empty.pk)] and "no text" in data["skipped"][0]["reason"]
    assert run_worker() == 2

    services.approve(ImageGenerationResult.objects.get(review=services.find_review(first)))
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(path, {"only_missing": True, "provider": "placeholder"}).json()
    assert [r["section"] for r in again["results"]] == [str(second.pk)]
    assert {s["section"]: s["reason"] for s in again["skipped"]}[str(first.pk)] == "already has an approved image"

    assert api.post("/api/v1/posts/999999/generate").status_code == 404
    bad = api.post(path, {"provider": "nope", "only_missing": "yes"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"provider", "only_missing"}


# --- ComfyUI status --------------------------------------------------------------------------


class ComfyLikeProvider(BaseProvider):
    """A provider that says it runs ComfyUI workflows, whose health check asks a server over HTTP."""

    label = "GPU box (test)"
    kind = "comfyui"
    runs_comfyui = True
    default_options = {"url": ""}

    def health(self) -> ProviderHealth:
        with urllib.request.urlopen(f"{self.options['url']}/system_stats", timeout=2) as response:
            stats = json.load(response)
        return ProviderHealth(ok=True, detail="reachable", info=stats)


class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"system": {"comfyui_version": "0.3.40"}, "devices": [{"vram_free": 1, "vram_total": 2}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_comfyui_status(api, settings, thread_server):
    server = thread_server(ThreadingHTTPServer(("127.0.0.1", 0), StatsHandler))
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "gpu-up": {
            "BACKEND": "tests.test_api.ComfyLikeProvider",
            "OPTIONS": {"url": f"http://127.0.0.1:{server.server_address[1]}"},
        },
        "gpu-down": {
            "BACKEND": "tests.test_api.ComfyLikeProvider",
            "OPTIONS": {"url": f"http://127.0.0.1:{closed_port()}"},
        },
    }
    response = api.get("/api/v1/comfyui/status")
    assert response.status_code == 200
    statuses = response.json()["providers"]
    assert set(statuses) == {"gpu-up", "gpu-down"}  # the placeholder is no ComfyUI
    assert statuses["gpu-up"] == {
        "ok": True,
        "detail": "reachable",
        "info": {"system": {"comfyui_version": "0.3.40"}, "devices": [{"vram_free": 1, "vram_total": 2}]},
    }
    assert statuses["gpu-down"]["ok"] is False and "URLError" in statuses["gpu-down"]["detail"]


# --- over a real socket ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_token_client_over_http(live_server, settings, rq_queue, run_worker):
    user = get_user_model().objects.create_user("script", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(codename__in=["generate_images", "view_imagegenerationresult"]))
    settings.BLOGIMAGES_API_TOKENS = {TOKEN: "script"}

    def call(path, body=None):
        request = urllib.request.Request(
            f"{live_server.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    status, data = call(GENERATE, {"prompt": "a lighthouse", "width": 320, "height": 256})
    assert status == 202, data
    assert run_worker() == 1
    status, result = call(f"{RESULTS}/{data['results'][0]['id']}")
    assert status == 200 and result["status"] == "succeeded" and (result["width"], result["height"]) == (320, 256)
    assert call(GENERATE, {"prompt": "x", "steps": -1})[0] == 400


def test_results_say_what_the_caller_may_do_with_them(api, make_post, make_editor):
    """The same answer as the review page's buttons (services.result_actions), per caller."""
    post = make_post(sections=1)
    review = services.review_for(post.sections.get())
    (done,) = make_results(1, review=review, status=ResultStatus.SUCCEEDED, image="blogimages/a.png", seed=3)
    (running,) = make_results(1, review=review, status=ResultStatus.RUNNING)
    (played,) = make_results(1, status=ResultStatus.FAILED)  # a playground image: no section
    by_id = {r["id"]: r["actions"] for r in api.get(RESULTS).json()["results"]}
    assert by_id[done.pk] == ["approve", "regenerate", "regenerate-same-seed", "reject"]
    assert by_id[running.pk] == ["cancel"]
    assert by_id[played.pk] == ["regenerate", "requeue"]
    services.approve(done)
    assert api.get(f"{RESULTS}/{done.pk}").json()["actions"] == ["regenerate", "regenerate-same-seed", "reject"]
    viewer = Api(make_editor("viewer"))
    assert viewer.get(f"{RESULTS}/{done.pk}").json()["actions"] == []
