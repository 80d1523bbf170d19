"""Queue behaviour against a real Redis and real RQ workers."""

from __future__ import annotations

import socket
import time

import pytest
from django.db import transaction
from django.utils import timezone

from blogimages import services
from blogimages.conf import app_settings
from blogimages.exceptions import ConcurrentTransition, InvalidTransition
from blogimages.jobs import run_generation
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus
from blogimages.storage import get_storage

from . import providers as test_providers

pytestmark = pytest.mark.django_db

PLACEHOLDER = {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider", "OPTIONS": {}}


def use_providers(settings, **extra):
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": PLACEHOLDER, **extra}
    test_providers.CALLS.clear()


def generate(prompt="a red kite over a hill", provider=None):
    spec = services.GenerationSpec(prompt=prompt, providers=[provider] if provider else ())
    return services.request_generation(spec)


def test_job_is_enqueued_only_after_commit(rq_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            (result,) = generate()
    assert rq_queue.count == 0 and len(callbacks) == 1  # the row exists; the job waits for commit
    callbacks[0]()
    assert rq_queue.job_ids == [f"blogimages-result-{result.pk}-1"]


@pytest.mark.parametrize("sections", [3, 12])
def test_a_posts_sections_reach_the_queue_together_in_order_in_constant_queries(
    sections, make_post, rq_queue, django_capture_on_commit_callbacks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    post = make_post(sections=sections)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = services.generate_for_post(post)
    assert len(callbacks) == 1 and rq_queue.count == 0  # one send for the whole post, after commit
    with CaptureQueriesContext(connection) as queries:
        callbacks[0]()
    assert len(queries) == 2  # the rows, then their job ids: whatever the post's length
    pks = [result.pk for result in outcome.results]
    assert rq_queue.job_ids == [f"blogimages-result-{pk}-1" for pk in pks]  # in section order
    rows = ImageGenerationResult.objects.filter(pk__in=pks)
    assert {(row.job_id, row.enqueue_count) for row in rows} == {(f"blogimages-result-{pk}-1", 1) for pk in pks}
    assert all(result.queue_error is None for result in outcome.results)


def test_a_section_rolled_back_inside_the_post_sends_no_job(make_post, rq_queue, django_capture_on_commit_callbacks):
    post = make_post(sections=2)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic(), services.enqueue_together():
            (kept,) = services.generate_for_section(services.as_section(post.sections.all()[0]))
            with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint that fails
                (lost,) = services.generate_for_section(services.as_section(post.sections.all()[1]))
                raise RuntimeError("the second section's work failed")
    assert not ImageGenerationResult.objects.filter(pk=lost.pk).exists()
    assert rq_queue.job_ids == [f"blogimages-result-{kept.pk}-1"]


def test_a_job_enqueued_twice_generates_once(rq_queue, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    # A second job for the same result, as a double click on "re-queue" would make.
    rq_queue.enqueue_call("blogimages.jobs.run_generation", args=(result.pk,), job_id="duplicate")
    assert run_worker() == 2
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED and result.attempts == 1
    assert rq_queue.fetch_job("duplicate").return_value() == "skipped (succeeded)"
    assert len(get_storage().listdir(result.image.name.rsplit("/", 1)[0])[1]) == 1


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hung_redis(silent_port):
    """A port that accepts connections and never answers, like a stuck Redis."""
    return silent_port


@pytest.mark.parametrize("kind", ["refused", "hung"])
def test_unreachable_redis_is_a_clear_error_and_the_result_stays_requeueable(
    kind, settings, hung_redis, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    port = _closed_port() if kind == "refused" else hung_redis
    good_queues = settings.RQ_QUEUES
    settings.RQ_QUEUES = {
        **good_queues,
        "default": {"URL": f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1&socket_timeout=1"},
    }
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    elapsed = time.monotonic() - started
    assert elapsed < 5, "an unreachable Redis must fail fast, not after redis-py's default waits"
    result.refresh_from_db()
    assert result.status == ResultStatus.QUEUED and result.error_kind == ErrorKind.TRANSIENT
    assert result.error_message.startswith("Could not reach the job queue")
    assert services.queue_errors([result]) == [result.error_message]

    settings.RQ_QUEUES = good_queues  # Redis is back
    with django_capture_on_commit_callbacks(execute=True):
        services.requeue(result)
    assert run_worker() == 1
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED and result.error_message == ""


def test_a_post_sent_while_redis_is_unreachable_keeps_every_row_queued_with_the_reason(
    settings, make_post, django_capture_on_commit_callbacks
):
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        "default": {"URL": f"redis://127.0.0.1:{_closed_port()}/0?socket_connect_timeout=1&socket_timeout=1"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.generate_for_post(make_post(sections=3))
    rows = list(ImageGenerationResult.objects.filter(pk__in=[result.pk for result in outcome.results]))
    assert len(rows) == 3 and all(row.status == ResultStatus.QUEUED for row in rows)
    assert all(row.job_id == "" and row.enqueue_count == 0 for row in rows)  # nothing sent counts as no send
    assert all(row.error_message.startswith("Could not reach the job queue") for row in rows)
    assert [result.queue_error for result in outcome.results] == [rows[0].error_message] * 3


def test_transient_errors_are_retried_then_succeed(settings, run_worker, django_capture_on_commit_callbacks):
    use_providers(settings, flaky={"BACKEND": "tests.providers.FlakyProvider", "OPTIONS": {"fail_times": 2}})
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="flaky")
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED
    assert result.attempts == 3 and test_providers.CALLS["flaky"] == 3


def test_transient_errors_fail_after_max_attempts(settings, run_worker, django_capture_on_commit_callbacks):
    use_providers(settings, flaky={"BACKEND": "tests.providers.FlakyProvider", "OPTIONS": {"fail_times": 99}})
    settings.BLOGIMAGES_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="flaky")
    run_worker()
    result.refresh_from_db()
    assert (result.status, result.error_kind, result.error_message) == (
        ResultStatus.FAILED,
        ErrorKind.TRANSIENT,
        "server busy",
    )
    assert test_providers.CALLS["flaky"] == 2


def test_permanent_errors_are_not_retried(settings, run_worker, django_capture_on_commit_callbacks):
    use_providers(
        settings,
        strict={
            "BACKEND": "tests.providers.FlakyProvider",
            "OPTIONS": {"permanent": True, "message": "No such model."},
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="strict")
    run_worker()
    result.refresh_from_db()
    assert (result.status, result.error_kind, result.error_message) == (
        ResultStatus.FAILED,
        ErrorKind.PERMANENT,
        "No such model.",
    )
    assert test_providers.CALLS["strict"] == 1


@pytest.mark.parametrize(
    "backend, message",
    [
        ("tests.providers.GarbageProvider", "The provider returned something that is not a readable image"),
        ("tests.providers.ExplodingProvider", "Unexpected error in provider 'odd': ValueError: division by cucumber"),
    ],
)
def test_broken_providers_fail_with_a_sentence_and_store_nothing(
    backend, message, settings, run_worker, django_capture_on_commit_callbacks
):
    use_providers(settings, odd={"BACKEND": backend})
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="odd")
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED and result.error_message.startswith(message)
    assert not result.image and not get_storage().exists("blogimages")


def test_cancel_while_running_stops_the_job(settings, run_worker, django_capture_on_commit_callbacks):
    use_providers(settings, selfcancel={"BACKEND": "tests.providers.SelfCancellingProvider"})
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="selfcancel")
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.CANCELLED and not result.image


def test_cancel_a_queued_result_cancels_its_job(rq_queue, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    result.refresh_from_db()
    services.cancel(result)
    assert rq_queue.fetch_job(result.job_id).get_status() == "canceled"
    assert run_worker() == 0
    result.refresh_from_db()
    assert result.status == ResultStatus.CANCELLED
    with pytest.raises(InvalidTransition, match="only queued or running results can be cancelled"):
        services.cancel(result)


def test_a_stuck_running_result_is_swept_back_to_the_queue(settings, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    # A worker took it and died: running, with a heartbeat older than STUCK_AFTER.
    old = timezone.now() - timezone.timedelta(seconds=app_settings.STUCK_AFTER + 5)
    result.refresh_from_db()
    result.transition(ResultStatus.RUNNING, started_at=old, heartbeat_at=old, attempts=1)
    fresh = generate("another")[0]
    ImageGenerationResult.objects.filter(pk=fresh.pk).update(status=ResultStatus.RUNNING, heartbeat_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        swept = services.sweep_stuck()
    assert swept == [result.pk]  # the one with a live heartbeat is left alone
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED and result.attempts == 2


def test_a_result_stuck_too_often_fails(settings, django_capture_on_commit_callbacks):
    (result,) = generate()
    old = timezone.now() - timezone.timedelta(hours=1)
    result.transition(ResultStatus.RUNNING, heartbeat_at=old, attempts=3)
    assert services.sweep_stuck() == [result.pk]
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED
    assert result.error_message == "The worker stopped responding after 3 attempts."


def test_transitions_follow_the_table_and_lose_races_cleanly():
    (result,) = generate()
    with pytest.raises(InvalidTransition, match="A queued result cannot become succeeded"):
        result.transition(ResultStatus.SUCCEEDED)
    stale = ImageGenerationResult.objects.get(pk=result.pk)
    result.transition(ResultStatus.RUNNING)
    with pytest.raises(ConcurrentTransition):
        stale.transition(ResultStatus.CANCELLED)  # a worker took it first
    assert run_generation(result.pk) == "skipped (running)"


def test_a_worker_sweeps_stuck_results_as_it_picks_up_a_job_once_a_period(
    rq_queue, run_worker, django_capture_on_commit_callbacks
):
    (stuck,) = generate()
    old = timezone.now() - timezone.timedelta(seconds=app_settings.STUCK_AFTER + 5)
    stuck.transition(ResultStatus.RUNNING, started_at=old, heartbeat_at=old, attempts=1)
    rq_queue.connection.delete("blogimages:recover")
    with django_capture_on_commit_callbacks(execute=True):
        (fresh,) = generate("a new one")
    with django_capture_on_commit_callbacks(execute=True):
        run_worker()  # picks up the new job: sweeps first, which re-queues the stuck one
    run_worker()
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert fresh.status == ResultStatus.SUCCEEDED
    assert stuck.status == ResultStatus.SUCCEEDED and stuck.attempts == 2
    ttl = rq_queue.connection.ttl("blogimages:recover")
    assert 0 < ttl <= services.RECOVER_EVERY  # the next worker within the period does not sweep again
    again = generate("stuck again")[0]
    again.transition(ResultStatus.RUNNING, started_at=old, heartbeat_at=old, attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        generate("one more")
    run_worker()
    again.refresh_from_db()
    assert again.status == ResultStatus.RUNNING  # left for the next period's sweep


def test_a_job_that_fails_during_the_send_keeps_its_reason(settings, django_capture_on_commit_callbacks):
    # RQ's synchronous mode runs the job inside enqueue: the row must not be written after the
    # send, or the job's failure is overwritten (a worker that fails a job at once races the same way).
    settings.RQ_QUEUES = {"default": {**settings.RQ_QUEUES["default"], "ASYNC": False}}
    use_providers(settings, odd={"BACKEND": "tests.providers.ExplodingProvider"})
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="odd")
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED
    assert result.error_message.startswith("Unexpected error in provider 'odd': ValueError: division by cucumber")
    assert result.job_id == f"blogimages-result-{result.pk}-1" and result.enqueue_count == 1
