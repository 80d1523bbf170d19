"""The helpers every provider shares: Retry-After, connection errors, size steps, sampler names,
blocking calls, the prepared request, and the layering between ``providers`` and ``comfyui``."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from blogimages.contract import GenerationRequest, ModelChoice, PreparedRequest, snap_to_multiple
from blogimages.providers.openai import OpenAIImagesProvider
from blogimages.providers.placeholder import PlaceholderProvider
from blogimages.remote import BlockingCall, connection_reason, image_type, parse_retry_after, retry_after
from blogimages.samplers import comfyui_sampler
from tests.conftest import free_port

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date in the past: retry now
        ("-5", None),
        ("1.5", None),  # RFC 9110 delta-seconds are whole numbers
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP date
        (None, None),
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_prefers_openais_milliseconds_header_and_ignores_case():
    assert retry_after(CaseInsensitiveDict({"Retry-After-Ms": "1500", "Retry-After": "9"})) == 1.5
    assert retry_after(CaseInsensitiveDict({"RETRY-AFTER": "9"})) == 9.0
    assert retry_after(CaseInsensitiveDict({"retry-after-ms": "-1", "retry-after": "2"})) == 2.0
    assert retry_after(CaseInsensitiveDict()) is None


def test_connection_errors_read_as_one_short_reason():
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert connection_reason(caught.value) == "connection refused"
    assert connection_reason(requests.ReadTimeout("slow")) == "timed out"
    assert connection_reason(ValueError("odd")) == "ValueError: odd"


def test_image_types_are_told_from_their_first_bytes():
    assert image_type(b"\x89PNG\r\n") == "image/png"
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"<html>") == ""


@pytest.mark.parametrize(("value", "multiple", "expected"), [(1000, 16, 1008), (1001, 8, 1000), (3, 8, 8)])
def test_sizes_snap_half_up_to_the_step(value, multiple, expected):
    assert snap_to_multiple(value, multiple) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("dpmpp_2m", "dpmpp_2m"), ("Euler a", "euler_ancestral"), ("DPM++ SDE", "dpmpp_sde"), ("deis", "deis")],
)
def test_a1111_sampler_labels_map_onto_comfyui_names(name, expected):
    assert comfyui_sampler(name) == expected


def test_a_blocking_call_is_watched_until_it_returns_or_raises():
    call = BlockingCall(lambda: time.sleep(0.2) or "done", name="test-call")
    assert call.wait(0.01) is False
    assert call.wait(5) is True and call.result() == "done"
    failing = BlockingCall(lambda: 1 / 0, name="test-fail")
    assert failing.wait(5)
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_a_request_is_prepared_once_per_provider(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider"},
    }
    placeholder = PlaceholderProvider("placeholder")
    prepared, adjustments = placeholder.prepare(GenerationRequest(prompt="x", model="m"))
    assert isinstance(prepared, PreparedRequest) and adjustments == []
    assert (prepared.provider, prepared.choice) == ("placeholder", ModelChoice("m"))
    assert placeholder.prepare(prepared) == (prepared, [])  # the job's prepared request is not resolved again

    pytest.importorskip("openai")
    openai = OpenAIImagesProvider("openai", api_key="sk-test")
    again, notes = openai.prepare(prepared)  # another provider's preparation does not count
    assert (again.provider, again.choice.name, again.model) == ("openai", "gpt-image-2", "gpt-image-2")
    assert notes == ["model 'm' is not an OpenAI image model; used gpt-image-2"]
    assert again.adjustments == tuple(notes)


def test_comfyui_and_the_contract_do_not_import_the_providers_package():
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'\n"
        "import blogimages.comfyui.client, blogimages.comfyui.servers, blogimages.comfyui.workflows\n"
        "import blogimages.contract, blogimages.remote, blogimages.samplers\n"
        "print(sorted(m for m in sys.modules if m.startswith('blogimages.providers')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
