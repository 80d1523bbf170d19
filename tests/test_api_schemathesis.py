"""schemathesis against a live server: for every operation of the OpenAPI document, requests
generated from the document (a bounded number, derandomized so a run is repeatable) must
never get a 5xx, and every answer must conform to the document: its status, content type,
body schema and headers. Authenticated with a Bearer token of a superuser, on a site with a
post, sections, results and a prompt example, so that generated ids sometimes hit real rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from blogimages.api.openapi import build_document
from blogimages.hosts import get_host
from blogimages.models import ImagePromptExample
from blogimages.prompts import resolve_params

pytestmark = pytest.mark.slow

# Hypothesis keeps caches (the project's constants, Unicode tables) in ./.hypothesis unless
# told otherwise: keep them with the test run's other files, out of the checkout.
set_hypothesis_home_dir(Path(os.environ["BLOGIMAGES_VAR_DIR"]) / "hypothesis")

TOKEN = "tok-schemathesis-5c1e0a"
#: Examples per operation: enough to walk each schema's branches, few enough that the whole
#: run stays far under a minute on two cores.
EXAMPLES = 10
NEGATIVE_EXAMPLES = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def site(transactional_db, settings, rq_queue, make_post, make_result):
    """A superuser with a token, and rows for generated ids to find (ids 1, 2, 3 ...)."""
    get_user_model().objects.create_superuser("robot", "robot@example.com", "x")
    settings.BLOGIMAGES_API_TOKENS = {TOKEN: "robot"}
    post = make_post(sections=3)
    for section in get_host().sections(post):
        result = make_result(section)
        result.params, result.seed = resolve_params(), 1
        result.save(update_fields=["params", "seed"])
    ImagePromptExample.objects.create(name="Harbour", prompt="A harbour at dawn")
    return post


def run_schemathesis(live_server, mode: GenerationMode, examples: int, checks: list) -> tuple[list[str], int]:
    """Run every operation with ``examples`` generated cases; ``(failures, requests sent)``."""
    schema = schemathesis.openapi.from_dict(build_document(live_server.url))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    failures: list[str] = []
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    if mode == GenerationMode.NEGATIVE:  # an operation that takes nothing has nothing to break
        operations = [op for op in operations if list(op.iter_parameters()) or op.body]

    for operation in operations:

        @hypothesis_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=live_server.url, session=session, checks=checks)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    session.close()  # before the live server stops: no request thread outlives the test's database
    assert calls >= len(operations) * 2  # it really sent requests
    return failures, calls


def test_schemathesis_finds_no_server_error_and_no_drift(site, live_server):
    """Valid requests: no 5xx, and every answer as the document says."""
    failures, _ = run_schemathesis(live_server, GenerationMode.POSITIVE, EXAMPLES, CHECKS)
    assert not failures, "\n\n".join(failures)


def test_invalid_requests_get_json_errors_never_a_500(site, live_server):
    """Requests that break the document (wrong types, missing fields, unknown fields, strings
    where numbers go): a 4xx JSON error, never a 5xx."""
    failures, _ = run_schemathesis(
        live_server, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, [not_a_server_error, content_type_conformance]
    )
    assert not failures, "\n\n".join(failures)
