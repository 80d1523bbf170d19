"""Recovery without an operator: scheduled retries, the heartbeat, and the recovery round
that RQ's cron scheduler runs on the workers (a real Redis, real RQ workers)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from blogimages import jobs, services
from blogimages.conf import app_settings
from blogimages.models import ImageGenerationResult, ResultStatus

from . import providers as test_providers
from .test_queue import generate, use_providers

pytestmark = pytest.mark.django_db


def flaky(**options):
    return {"BACKEND": "tests.providers.FlakyProvider", "OPTIONS": options}


def wait_until_due(queue, job_id):
    """Sleep until RQ's scheduler would move ``job_id`` to the queue (whole seconds)."""
    registry = ScheduledJobRegistry(queue=queue)
    due = registry.get_scheduled_time(job_id)
    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.05)


def test_a_transient_error_schedules_the_retry_and_the_worker_takes_other_work(
    settings, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    use_providers(settings, flaky=flaky(fail_times=1, retry_after=1))
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="flaky")
        (other,) = generate("another kite", provider="placeholder")
    assert run_worker() == 2  # the flaky job ends at once instead of sleeping through its retry

    result.refresh_from_db()
    other.refresh_from_db()
    assert other.status == ResultStatus.SUCCEEDED
    assert result.status == ResultStatus.QUEUED and result.attempts == 1
    assert result.progress_message == f"retry 2 of {app_settings.MAX_ATTEMPTS} in 1 s: server busy"
    assert result.job_id == f"blogimages-result-{result.pk}-1-attempt-2"
    assert result.job_id in ScheduledJobRegistry(queue=rq_queue)

    wait_until_due(rq_queue, result.job_id)
    run_worker(with_scheduler=True)
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED and result.attempts == 2
    assert test_providers.CALLS["flaky"] == 2
    # A retry is not a re-queue: BLOGIMAGES_MAX_REQUEUES still has all its turns.
    assert result.enqueue_count == 1 and "retry" not in result.progress_message


def test_the_last_attempt_fails_with_the_error_not_the_retry_line(
    settings, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    settings.BLOGIMAGES_MAX_ATTEMPTS = 2
    use_providers(settings, flaky=flaky(fail_times=5, retry_after=1))
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="flaky")
    run_worker()
    result.refresh_from_db()
    wait_until_due(rq_queue, result.job_id)
    run_worker(with_scheduler=True)
    result.refresh_from_db()
    assert result.status == ResultStatus.FAILED and result.attempts == 2
    assert result.error_message == "server busy" and result.progress_message == ""
    assert len(ScheduledJobRegistry(queue=rq_queue)) == 0


def test_cancelling_a_result_that_waits_for_its_retry(
    settings, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    use_providers(settings, flaky=flaky(fail_times=1, retry_after=1))
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate(provider="flaky")
    run_worker()
    result.refresh_from_db()
    job_id = result.job_id
    services.cancel(result)
    result.refresh_from_db()
    assert result.status == ResultStatus.CANCELLED
    assert job_id not in ScheduledJobRegistry(queue=rq_queue)
    assert test_providers.CALLS["flaky"] == 1


def test_the_recovery_round_is_scheduled_by_rq_cron_and_run_by_a_worker(
    settings, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    """``manage.py rqcron blogimages.cron``: RQ's cron scheduler enqueues the round and an
    ordinary worker runs it, so a result whose worker died is queued again with nobody
    watching (no editor's page, no operator's command)."""
    from rq.cron import CronScheduler

    use_providers(settings)
    (stuck,) = generate()
    old = timezone.now() - timezone.timedelta(seconds=app_settings.STUCK_AFTER + 1)
    stuck.move("start", started_at=old, heartbeat_at=old, attempts=1)
    # Redis lost the queued job of another result (a flush, or a restart without persistence).
    (lost,) = generate("a kite nobody queued")
    ImageGenerationResult.objects.filter(pk=lost.pk).update(
        job_id="blogimages-result-gone-1", queued_at=timezone.now() - timezone.timedelta(minutes=1)
    )
    rq_queue.connection.delete("blogimages:recover")

    scheduler = CronScheduler(connection=rq_queue.connection)
    scheduler.load_config_from_file("blogimages.cron")
    (cron_job,) = scheduler.get_jobs()
    assert cron_job.interval == services.RECOVER_EVERY and cron_job.queue_name == app_settings.QUEUE
    with django_capture_on_commit_callbacks(execute=True):
        scheduler.enqueue_jobs()
        assert run_worker() == 1  # the round: sweeps one, recovers the other
    assert run_worker() == 2
    stuck.refresh_from_db()
    lost.refresh_from_db()
    assert stuck.status == ResultStatus.SUCCEEDED and stuck.attempts == 2
    assert lost.status == ResultStatus.SUCCEEDED


def test_one_recovery_round_a_period_however_many_ask(rq_queue):
    rq_queue.connection.delete("blogimages:recover")
    assert services.recover_if_due(rq_queue.connection) == services.Recovery([], [])
    assert services.recover_if_due(rq_queue.connection) is None
    assert 0 < rq_queue.connection.ttl("blogimages:recover") < services.RECOVER_EVERY


def test_a_recent_queued_result_without_its_job_yet_is_left_alone(settings, rq_queue):
    use_providers(settings)
    (result,) = generate()  # committed a moment ago; its on-commit enqueue has not run
    ((examined, lost, reason),) = list(services.examine_active(rq_queue.connection, older_than=60))
    assert examined == result and not lost
    assert reason == "queued a moment ago, its enqueue may still be on its way"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_while_the_provider_is_silent(settings, monkeypatch):
    """A provider blocked in one long call reports nothing; the job's own heartbeat keeps
    its row from looking stuck, and stops with the job."""
    use_providers(settings)
    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", 0.05)
    (result,) = generate()
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    result.move("start", heartbeat_at=long_ago)
    beat = jobs._Heartbeat(result.pk)
    beat.start()
    try:
        deadline = time.monotonic() + 10
        while ImageGenerationResult.objects.get(pk=result.pk).heartbeat_at == long_ago:
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.05)
    finally:
        beat.stop()
    assert not beat.is_alive()
    assert not ImageGenerationResult.objects.stale(timezone.now() - timezone.timedelta(seconds=5)).exists()


def test_a_queued_result_whose_job_a_dead_worker_took_is_recovered(
    settings, rq_queue, django_capture_on_commit_callbacks
):
    """A work-horse SIGKILLed between taking the job and starting the row: RQ says "started"
    and the worker's key lives on for minutes, but the row never left queued (seen in
    ``make soak``)."""
    import datetime

    from rq import Worker
    from rq.job import Job, JobStatus

    use_providers(settings)
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = generate()
    result.refresh_from_db()
    worker = Worker([rq_queue], connection=rq_queue.connection, name="killed-with-its-horse")
    worker.register_birth()  # its key stays until its TTL runs out
    try:
        job = Job.fetch(result.job_id, connection=rq_queue.connection)
        job.set_status(JobStatus.STARTED)
        job.worker_name = worker.name
        job.started_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=app_settings.STUCK_AFTER + 1)
        job.save()
        ((_, lost, reason),) = list(services.examine_active(rq_queue.connection, older_than=app_settings.STUCK_AFTER))
        assert lost and reason == "its job was taken but never started it (the worker died)"
        # Just taken: the horse is about to start the row.
        job.started_at = datetime.datetime.now(datetime.UTC)
        job.save()
        ((_, lost, reason),) = list(services.examine_active(rq_queue.connection, older_than=app_settings.STUCK_AFTER))
        assert not lost and reason == "its job is started in Redis"
    finally:
        worker.register_death()
