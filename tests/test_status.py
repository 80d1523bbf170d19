"""blogimages.status: the one place that gathers what the status page, the command and the API show."""

from __future__ import annotations

import threading
import time

import pytest

from blogimages import status
from blogimages.models import ResultStatus
from blogimages.providers import BaseProvider, ProviderHealth
from tests.conftest import free_port

SHIPPED = {
    "auto": "blogimages.providers.auto.AutoProvider",
    "automatic1111": "blogimages.providers.automatic1111.Automatic1111Provider",
    "comfyui": "blogimages.providers.comfyui.ComfyUIProvider",
    "diffusers": "blogimages.providers.diffusers.DiffusersProvider",
    "openai": "blogimages.providers.openai.OpenAIImagesProvider",
    "placeholder": "blogimages.providers.placeholder.PlaceholderProvider",
    "runpod": "blogimages.providers.runpod.RunPodProvider",
}

#: Released at the end of each test, so a health check left behind by the time limit ends.
RELEASE = threading.Event()


class HangingProvider(BaseProvider):
    label = "Hangs"

    def health(self) -> ProviderHealth:
        RELEASE.wait(10)
        return ProviderHealth(ok=True, detail="too late")


class ExplodingProvider(BaseProvider):
    kind = "exploding"

    def health(self) -> ProviderHealth:
        raise RuntimeError("socket exploded")


@pytest.fixture(autouse=True)
def release_hanging_checks():
    RELEASE.clear()
    yield
    RELEASE.set()


def test_each_shipped_provider_says_what_it_is(settings):
    settings.BLOGIMAGES_PROVIDERS = {alias: {"BACKEND": backend} for alias, backend in SHIPPED.items()}
    assert {alias: status.provider_class(alias).kind for alias in SHIPPED} == {alias: alias for alias in SHIPPED}
    assert status.aliases_where(kind="openai") == ["openai"]
    # ComfyUI servers and RunPod's ComfyUI worker run the same workflows: the ComfyUI status lists both.
    assert status.aliases_where(runs_comfyui=True) == ["comfyui", "runpod"]
    assert status.aliases_where(is_cloud=True) == ["openai", "runpod"]


def test_health_in_parallel_with_one_time_limit(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "slow-1": {"BACKEND": "tests.test_status.HangingProvider"},
        "placeholder": {"BACKEND": SHIPPED["placeholder"]},
        "slow-2": {"BACKEND": "tests.test_status.HangingProvider"},
        "broken": {"BACKEND": "tests.test_status.ExplodingProvider"},
    }
    started = time.monotonic()
    rows = status.provider_health(timeout=0.5)
    assert time.monotonic() - started < 2  # two hung servers cost one time limit, not one each
    assert [row.alias for row in rows] == ["slow-1", "placeholder", "slow-2", "broken"]  # settings order
    by_alias = {row.alias: row for row in rows}
    for alias in ("slow-1", "slow-2"):
        assert not by_alias[alias].ok and by_alias[alias].detail == "No answer within 0.5 seconds."
        assert by_alias[alias].label == "Hangs" and by_alias[alias].kind == "custom"
    placeholder = by_alias["placeholder"]
    assert placeholder.ok and placeholder.kind == "placeholder" and placeholder.default
    assert placeholder.seconds is not None and placeholder.seconds < 0.5
    assert by_alias["broken"].detail == "The health check failed: RuntimeError: socket exploded"
    assert by_alias["broken"].kind == "exploding"
    RELEASE.set()
    time.sleep(0.1)
    assert not by_alias["slow-1"].ok  # a late answer does not change the report


def test_a_provider_that_cannot_be_built_still_says_what_it_is(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "typo": {"BACKEND": SHIPPED["comfyui"], "OPTIONS": {"colour": "red"}},
        "missing": {"BACKEND": "tests.nowhere.Provider"},
    }
    typo, missing = status.provider_health(timeout=5)
    assert (typo.kind, typo.label, typo.runs_comfyui, typo.ok) == ("comfyui", "ComfyUI", True, False)
    assert typo.detail.startswith("ImproperlyConfigured: ") and "unknown option(s) colour" in typo.detail
    assert (missing.kind, missing.ok) == ("", False) and "cannot import 'tests.nowhere.Provider'" in missing.detail
    assert typo.seconds is None  # no health check ran


def test_openai_status_reads_the_key_without_calling_the_api(settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_AUTH_TOKEN", raising=False)
    settings.BLOGIMAGES_PROVIDERS = {"placeholder": {"BACKEND": SHIPPED["placeholder"]}}
    assert status.openai_status() == status.OpenAIStatus(aliases=[], key=False, cloud_enabled=False)
    settings.BLOGIMAGES_PROVIDERS = {
        "dalle": {"BACKEND": SHIPPED["openai"], "OPTIONS": {"api_key": "sk-test"}},
    }
    assert status.openai_status() == status.OpenAIStatus(aliases=["dalle"], key=True, cloud_enabled=False)


def test_queue_status_counts_jobs_and_workers(rq_queue):
    from rq import Worker

    rq_queue.enqueue("blogimages.jobs.recover_results")
    worker = Worker([rq_queue], connection=rq_queue.connection, name="status-module-worker")
    worker.register_birth()
    try:
        queues = status.queue_status()
    finally:
        worker.register_death()
    ours = queues.ours
    assert ours.is_ours and ours.ok and ours.jobs == 1 and ours.started == 0 and not queues.error
    assert [w.name for w in ours.workers] == ["status-module-worker"]
    assert [q.name for q in status.queue_status(only_ours=True).queues] == [ours.name]


def test_queue_status_when_redis_is_down(settings):
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"}}
    queues = status.queue_status()
    assert not queues.ours.ok and queues.ours.error.startswith("ConnectionError") and queues.error


def test_queue_status_without_our_queue(settings):
    settings.BLOGIMAGES_QUEUE = "no-such-queue"
    assert status.queue_status(only_ours=True).ours is None


@pytest.mark.django_db
def test_result_counts_has_every_status():
    counts = status.result_counts()
    assert counts.by_status == dict.fromkeys(ResultStatus.values, 0)
    assert (counts.stuck, counts.failed_transient) == (0, 0)


def test_local_comfyui_not_configured(settings):
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = ""
    assert status.local_comfyui_state() == status.LocalComfyUIState(configured=False)


@pytest.mark.django_db
def test_queue_status_says_when_no_scheduler_or_recovery_round_runs(rq_queue):
    """Scheduled retries need a worker running RQ's scheduler; recovery needs rqcron."""
    import datetime

    from rq.scheduler import RQScheduler

    from blogimages import services

    connection = rq_queue.connection
    connection.delete(services.LAST_RECOVERY_KEY, RQScheduler.get_locking_key(rq_queue.name))
    rq_queue.enqueue_in(datetime.timedelta(minutes=5), "blogimages.jobs.recover_results")
    ours = status.queue_status().ours
    assert ours.scheduled == 1 and not ours.scheduler and ours.last_recovery is None
    assert ours.recovery_warnings == [
        "1 job(s) are scheduled (retries) but no worker runs RQ's scheduler: start the workers with --with-scheduler.",
        "No recovery round has run in the last day: run python manage.py rqcron blogimages.cron beside the "
        "workers, or results whose worker dies stay running until a worker picks up another job.",
    ]

    services.recover(connection)  # what rqcron's job runs
    connection.set(RQScheduler.get_locking_key(rq_queue.name), "a-worker", ex=60)  # a --with-scheduler worker
    try:
        ours = status.queue_status().ours
    finally:
        connection.delete(RQScheduler.get_locking_key(rq_queue.name))
        for job_id in rq_queue.scheduled_job_registry.get_job_ids():
            rq_queue.scheduled_job_registry.remove(job_id, delete_job=True)
    assert ours.scheduler and ours.last_recovery is not None and ours.recovery_warnings == []
