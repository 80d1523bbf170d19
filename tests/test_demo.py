"""The demo as `make demo` sets it up: its fixtures, and the example project's provider
settings with and without COMFYUI_URLS, through a real worker."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command

from blogimages import services
from blogimages.models import ImageGenerationResult, ResultStatus
from tests.servers.comfyui import FakeComfyUI
from tests.servers.openai_server import OpenAIImagesServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def demo_post():
    from project.blog.models import Post

    call_command("loaddata", str(ROOT / "fixtures" / "demo.json"), verbosity=0)
    return Post.objects.get(slug="cornish-coast")


def project_settings(monkeypatch, **environ) -> dict:
    """What project/settings.py configures for this environment (read, never imported)."""
    for name in ("COMFYUI_URLS", "COMFYUI_API_URL", "OPENAI_API_KEY", "OPENAI_AUTH_TOKEN", "ENABLE_CLOUD_APIS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "project" / "settings.py"))


def use_providers(settings, demo: dict) -> None:
    """The project's providers and default, with the test settings' instant placeholder."""
    settings.BLOGIMAGES_PROVIDERS = {
        **demo["BLOGIMAGES_PROVIDERS"],
        "placeholder": settings.BLOGIMAGES_PROVIDERS["placeholder"],
    }
    settings.BLOGIMAGES_DEFAULT_PROVIDER = demo["BLOGIMAGES_DEFAULT_PROVIDER"]


def generate_all(post, run_worker, capture, **options) -> list[ImageGenerationResult]:
    with capture(execute=True):
        outcome = services.generate_for_post(post, **options)
    assert len(outcome.results) == post.sections.count() == 4
    assert run_worker() == 4
    return list(ImageGenerationResult.objects.order_by("pk"))


def test_the_demo_post_generates_with_the_placeholder(
    monkeypatch, settings, run_worker, django_capture_on_commit_callbacks
):
    demo = project_settings(monkeypatch)
    assert demo["BLOGIMAGES_DEFAULT_PROVIDER"] == "placeholder"
    use_providers(settings, demo)
    for result in generate_all(demo_post(), run_worker, django_capture_on_commit_callbacks):
        assert result.status == ResultStatus.SUCCEEDED, result.error_message
        assert result.provider_used == "placeholder"
        # The post's prompt example: its watercolour style, without the text's full stop before it.
        assert result.final_prompt == result.prompt.rstrip(".") + ", loose watercolour painting, soft paper texture"


def test_with_comfyui_urls_the_demo_post_generates_through_comfyui(
    monkeypatch, settings, run_worker, django_capture_on_commit_callbacks
):
    cache.clear()  # the skip-a-failing-server state is keyed by URL, and ports get reused
    with FakeComfyUI(run_time=0.1) as server:
        demo = project_settings(monkeypatch, COMFYUI_URLS=server.url)
        assert demo["BLOGIMAGES_DEFAULT_PROVIDER"] == "auto"
        use_providers(settings, demo)
        results = generate_all(demo_post(), run_worker, django_capture_on_commit_callbacks)
        for result in results:
            assert result.status == ResultStatus.SUCCEEDED, result.error_message
            assert result.provider_used == "comfyui"
            graph = server.prompts[result.remote_id]
            # The demo's setting ("SD3.5 Large Turbo, fast") picks the shipped turbo workflow.
            assert graph["4"]["inputs"]["ckpt_name"] == "sd3.5_large_turbo.safetensors"
    cache.clear()


def test_with_an_openai_key_the_editor_can_pick_openai(
    monkeypatch, settings, thread_server, run_worker, django_capture_on_commit_callbacks
):
    server = thread_server(OpenAIImagesServer(api_key="sk-test"))
    demo = project_settings(monkeypatch, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.url)
    # Cloud APIs join `auto` only with ENABLE_CLOUD_APIS; editors can still choose openai.
    assert demo["BLOGIMAGES_DEFAULT_PROVIDER"] == "auto"
    assert demo["BLOGIMAGES_PROVIDERS"]["auto"]["OPTIONS"]["order"] == ["openai", "placeholder"]
    use_providers(settings, demo)
    results = generate_all(demo_post(), run_worker, django_capture_on_commit_callbacks, provider="openai")
    for result in results:
        assert result.status == ResultStatus.SUCCEEDED, result.error_message
        assert result.provider_used == "openai"
    sent = [request["json"] for request in server.generations]
    assert len(sent) == 4 and {body["prompt"] for body in sent} == {result.final_prompt for result in results}
