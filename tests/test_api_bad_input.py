"""Bad input anywhere in the API is a 400 naming the field, never a 500: NUL characters, lone
surrogates, over-long text, deeply nested JSON, non-finite numbers, huge page numbers and
impossible dates, in bodies, query strings, path segments, headers and form fields. Each of
these gave a 500 on PostgreSQL before (NUL and surrogates cannot be stored, an offset past
2**63 or a 300-character model overflow their columns, json.loads recursed until Python
stopped it); the suite runs on SQLite and PostgreSQL, and nothing may be stored."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from blogimages.api.framework import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_PAGE
from blogimages.hosts import get_host
from blogimages.limits import TEXT_MAX
from blogimages.models import ImageGenerationResult, ImagePromptExample, RequestKey, ReviewEvent, SectionReview
from tests.conftest import png_bytes
from tests.test_api import Api

pytestmark = pytest.mark.django_db

GENERATE = "/api/v1/images/generate"
RESULTS = "/api/v1/images/results"
EXAMPLES = "/api/v1/prompt-examples"


@pytest.fixture
def api(admin_user, rq_queue):
    return Api(admin_user)


@pytest.fixture
def target(make_post, make_result):
    post = make_post(sections=1)
    section = get_host().sections(post)[0]
    result = make_result(section)
    return {"post": post.pk, "key": section.key, "result": result.pk}


def stored() -> tuple[int, ...]:
    return (
        ImageGenerationResult.objects.count(),
        ImagePromptExample.objects.count(),
        ReviewEvent.objects.count(),
        RequestKey.objects.count(),
        SectionReview.objects.exclude(alt_text="").count(),
        SectionReview.objects.exclude(prompt_override="").count(),
    )


def refused(response, field: str, *words: str) -> dict:
    """Assert a 400 whose ``errors`` names ``field`` and whose sentence says ``words``."""
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert field in body["errors"], body
    sentence = " ".join(body["errors"][field])
    for word in words:
        assert word in sentence, sentence
    return body


NUL, SURROGATE = "NUL character", "lone surrogate"

# (method, path, raw JSON body, field named, words of the sentence)
BODIES = [
    ("POST", GENERATE, json.dumps({"prompt": "a\u0000b"}), "prompt", [NUL]),
    ("POST", GENERATE, '{"prompt": "a\\ud800b"}', "prompt", [SURROGATE, "\\ud800"]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "negative_prompt": "\u0000"}), "negative_prompt", [NUL]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "settings": {"sampler": "e\u0000"}}), "settings.sampler", [NUL]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "providers": ["a", "\u0000"]}), "providers.1", [NUL]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "pro\u0000mpt": "x"}), "pro\\x00mpt", ["field name", NUL]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "model": "m" * 300}), "model", ["300 characters", "200"]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "sampler": "s" * 65}), "sampler", ["65 characters"]),
    ("POST", GENERATE, json.dumps({"prompt": "x" * 4001}), "prompt", ["4001 characters"]),
    ("POST", GENERATE, json.dumps({"prompt": "x", "section": "y" * (TEXT_MAX + 1)}), "section", ["limit"]),
    ("POST", GENERATE, '{"prompt": "x", "guidance_scale": NaN}', "__all__", ["NaN is not a JSON number"]),
    ("POST", GENERATE, '{"prompt": "x", "guidance_scale": 1e400}', "__all__", ["too large"]),
    ("POST", GENERATE, '{"prompt": "x", "seed": ' + "9" * 5000 + "}", "__all__", ["not valid JSON"]),
    ("POST", GENERATE, "[" * 100_000 + "]" * 100_000, "__all__", ["nested more than"]),
    (
        "POST",
        GENERATE,
        json.dumps({"prompt": "x", "settings": json.loads('{"a":' * 20 + "1" + "}" * 20)}),
        "settings",
        ["nested more than"],
    ),
    ("POST", EXAMPLES, json.dumps({"name": "a\u0000"}), "name", [NUL]),
    ("POST", EXAMPLES, '{"name": "a\\udc00"}', "name", [SURROGATE]),
    ("POST", EXAMPLES, json.dumps({"name": "n", "notes": "m" * (TEXT_MAX + 1)}), "notes", ["limit is 20000"]),
    ("POST", EXAMPLES, json.dumps({"name": "n", "model": "m" * 201}), "model", ["at most 200"]),
    ("POST", "{results}/{result}/regenerate", '{"same_seed": "\\ud83d"}', "same_seed", [SURROGATE]),
    ("POST", "{results}/{result}/reject", '{"comment": "no\\u0000"}', "comment", [NUL]),
    ("POST", "{results}/{result}/approve", '{"alt_text": "\\udfff"}', "alt_text", [SURROGATE]),
    ("POST", "{results}/{result}/approve", json.dumps({"comment": "c" * (TEXT_MAX + 1)}), "comment", ["limit"]),
    ("POST", "/api/v1/posts/{post}/sections/{key}/comments", '{"comment": "\\u0000"}', "comment", [NUL]),
    ("PATCH", "/api/v1/posts/{post}/sections/{key}", '{"prompt": "a\\ud800"}', "prompt", [SURROGATE]),
    ("POST", "/api/v1/posts/{post}/generate", '{"provider": "\\u0000"}', "provider", [NUL]),
]


@pytest.mark.parametrize("method,path,raw,field,words", BODIES)
def test_bad_json_bodies(api, target, method, path, raw, field, words):
    before = stored()
    path = path.format(results=RESULTS, **target)
    refused(api.call(method, path, raw=raw.encode("utf-8", "surrogatepass")), field, *words)
    assert stored() == before


def test_a_body_over_the_limit_is_413(api):
    response = api.call("POST", GENERATE, raw=json.dumps({"prompt": "x", "notes": "n" * MAX_BODY_BYTES}))
    assert response.status_code == 413 and "larger than 1024 KiB" in response.json()["error"]
    assert not ImageGenerationResult.objects.exists()


def test_depth_up_to_the_limit_is_fine(api):
    nested = json.loads('{"a":' * (MAX_JSON_DEPTH - 2) + "1" + "}" * (MAX_JSON_DEPTH - 2))
    response = api.post(EXAMPLES, {"name": "n", "extra": nested})
    assert list(response.json()["errors"]) == ["extra"]  # an unknown field, not a nesting error


QUERIES = [
    (RESULTS, {"provider": "\x00"}, "provider", [NUL]),
    (RESULTS, {"post": "1\x00"}, "post", [NUL]),
    (RESULTS, {"section": "s" * 1001}, "section", ["1001 characters", "1000"]),
    (RESULTS, {"mo\x00del": "x"}, "mo\\x00del", [NUL]),
    (RESULTS, {"page": "99999999999999999999"}, "page", [f"from 1 to {MAX_PAGE}"]),
    (RESULTS, {"page": str(MAX_PAGE + 1)}, "page", [f"from 1 to {MAX_PAGE}"]),
    (RESULTS, {"page": "-1"}, "page", ["whole number"]),
    (RESULTS, {"page": "١٢"}, "page", ["whole number"]),  # Arabic-Indic digits: int() takes them, we do not
    (RESULTS, {"page_size": "1e3"}, "page_size", ["from 1 to 200"]),
    (EXAMPLES, {"page": "99999999999999999999"}, "page", [f"from 1 to {MAX_PAGE}"]),
    (RESULTS, {"since": "2025-02-30"}, "since", ["not a real date", "day is out of range"]),
    (RESULTS, {"since": "2025-13-01"}, "since", ["not a real date"]),
    (RESULTS, {"since": "2025-01-01T25:00:00"}, "since", ["not a real date"]),
    (RESULTS, {"since": "0000-01-01"}, "since", ["not a real date"]),
    (RESULTS, {"since": "0001-01-01T00:00:00+14:00"}, "since", ["between 1900-01-01 and 9998-12-31"]),
    (RESULTS, {"until": "9999-12-31T23:59:59-14:00"}, "until", ["between 1900-01-01 and 9998-12-31"]),
    (RESULTS, {"until": "yesterday"}, "until", ["ISO 8601"]),
    (RESULTS, {"style": "99999999999999999999999"}, "style", ["whole number"]),
    (RESULTS, {"decision": "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace")}, "decision", []),
]


@pytest.mark.parametrize("path,params,field,words", QUERIES)
def test_bad_query_parameters(api, path, params, field, words):
    refused(api.get(path, **params), field, *words)


def test_bad_path_segments_and_headers(api, target):
    refused(api.get(f"/api/v1/posts/{target['post']}/sections/a%00b"), "key", NUL)
    refused(api.get(f"/api/v1/posts/{target['post']}/sections/{'k' * 1001}"), "key", "1001 characters")
    huge = api.get(f"{RESULTS}/99999999999999999999")
    assert huge.status_code == 404
    assert api.post(f"/api/v1/posts/{10**25}/generate").status_code == 404
    before = stored()
    refused(api.post(GENERATE, {"prompt": "x"}, HTTP_IDEMPOTENCY_KEY="k\x00"), "idempotency_key", NUL)
    refused(api.post(GENERATE, {"prompt": "x"}, HTTP_IDEMPOTENCY_KEY="k" * 65), "idempotency_key", "limit is 64")
    assert stored() == before


def test_bad_form_fields(api, target, media_root):
    path = f"/api/v1/posts/{target['post']}/sections/{target['key']}/upload"
    before = stored()

    def upload(**fields):
        data = {"file": SimpleUploadedFile("a.png", png_bytes(), content_type="image/png"), **fields}
        return api.upload(path, data)

    refused(upload(alt_text="A\x00dog", approve_now="1"), "alt_text", NUL)
    refused(upload(approve_now="x" * (TEXT_MAX + 1)), "approve_now", "limit")
    refused(upload(alt_text="d" * 301, approve_now="1"), "alt_text", "301 characters")
    refused(upload(**{"x\x00": "1"}), "x\\x00", NUL)
    assert stored() == before
    assert not [p for p in media_root.rglob("*") if p.is_file() and "upload" in str(p)]


def test_sound_input_still_passes(api, target, django_capture_on_commit_callbacks):
    """The same endpoints with good values: the checks refuse only what they should."""
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(GENERATE, {"prompt": "A lighthouse — at dusk, 東京 🌅", "model": "m" * 200})
    assert response.status_code == 202
    assert api.get(RESULTS, since="2025-02-28", until="9998-12-31T00:00:00+02:00").status_code == 200
    assert api.get(RESULTS, page=str(MAX_PAGE)).json()["results"] == []
    assert api.post(EXAMPLES, {"name": "Emoji 🌅", "notes": "n" * TEXT_MAX}).status_code == 201


def test_form_data_where_json_is_expected(api):
    response = api.upload(GENERATE, {"prompt": "a cat"})
    refused(response, "__all__", "not form data")
    urlencoded = api.call("POST", GENERATE, raw="prompt=a+cat", CONTENT_TYPE="application/x-www-form-urlencoded")
    refused(urlencoded, "__all__", "not valid JSON")
    assert not ImageGenerationResult.objects.exists()
