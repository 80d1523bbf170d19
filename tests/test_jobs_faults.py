"""Faults while a job stores its image or an editor uploads one, against real components:
moto's S3 server over HTTP, a closed port (refused) and a TCP server that accepts and never
answers (stalled). The storage options bound botocore's waits, so each test takes seconds."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from blogimages import services
from blogimages.exceptions import StorageUnavailable
from blogimages.jobs import short
from blogimages.models import ErrorKind, ImageGenerationResult, ResultStatus

from . import providers as test_providers
from .conftest import free_port, png_bytes

pytestmark = pytest.mark.django_db

SAVE_FAILED = "The image could not be saved to file storage ("


@pytest.fixture
def stalled_port(silent_port):
    """A port that accepts connections and never answers, like a stalled S3."""
    return silent_port


def use_s3(settings, endpoint: str, bucket: str = "blogimages-faults") -> None:
    """S3 through django-storages at ``endpoint``, with the bounded waits production should use."""
    from botocore.config import Config

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "client_config": Config(
                    s3={"addressing_style": "path"},
                    connect_timeout=1,
                    read_timeout=1,
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
            },
        },
    }


@pytest.fixture
def unreachable_s3(request, settings, stalled_port):
    """S3 that refuses connections, or one that accepts them and never answers."""
    port = free_port() if request.param == "refused" else stalled_port
    use_s3(settings, f"http://127.0.0.1:{port}")
    return request.param


@pytest.mark.parametrize("unreachable_s3", ["refused", "stalled"], indirect=True)
def test_storage_failing_while_a_job_saves_fails_the_result_with_a_sentence(
    unreachable_s3, s3_server, settings, rq_queue, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.request_generation(services.GenerationSpec(prompt="a kestrel hovering"))
    started = time.monotonic()
    assert run_worker() == 1
    assert time.monotonic() - started < 10, "a stalled S3 must not hold a worker for botocore's default waits"
    result.refresh_from_db()
    assert (result.status, result.error_kind) == (ResultStatus.FAILED, ErrorKind.TRANSIENT)
    reason = "connection refused" if unreachable_s3 == "refused" else "it did not answer in time"
    assert result.error_message == f"{SAVE_FAILED}{reason}); try again in a few minutes."
    # No half-written row: no file names, no "done", no progress line left behind.
    assert (result.image.name, result.thumbnail.name, result.progress_message) == ("", "", "")
    # The job itself ended normally, so RQ does not count it as crashed.
    assert rq_queue.fetch_job(result.job_id).return_value() == "failed"

    # Storage is back: re-queued, it succeeds and leaves exactly its two objects.
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    bucket = f"faults-{result.pk}-{unreachable_s3}"
    client.create_bucket(Bucket=bucket)
    use_s3(settings, s3_server, bucket)
    with django_capture_on_commit_callbacks(execute=True):
        services.requeue(result)
    run_worker()
    result.refresh_from_db()
    assert result.status == ResultStatus.SUCCEEDED, result.error_message
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == sorted([result.image.name, result.thumbnail.name])


def test_a_storage_that_cannot_write_fails_the_job_and_leaves_no_file(
    settings, tmp_path, run_worker, django_capture_on_commit_callbacks
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = blocker / "media"
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.request_generation(services.GenerationSpec(prompt="a kestrel hovering"))
    run_worker()
    result.refresh_from_db()
    assert (result.status, result.error_kind) == (ResultStatus.FAILED, ErrorKind.TRANSIENT)
    assert result.error_message.startswith(SAVE_FAILED) and not result.image
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]


@pytest.mark.parametrize("unreachable_s3", ["refused", "stalled"], indirect=True)
def test_upload_with_storage_unreachable_is_a_clear_error_within_seconds(unreachable_s3, make_post, admin_user):
    section = make_post(sections=1).sections.get()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="^The image could not be saved to file storage") as caught:
        services.upload(section, SimpleUploadedFile("mine.png", png_bytes()), user=admin_user)
    assert time.monotonic() - started < 5
    assert str(caught.value).count(".") == 1 and "Traceback" not in str(caught.value)
    assert ImageGenerationResult.objects.count() == 0


def test_a_failed_row_does_not_keep_its_retrying_message(settings, run_worker, django_capture_on_commit_callbacks):
    long_message = "Could not reach the server at " + "http://gpu.example.com/" + "a" * 300 + " after a while"
    settings.BLOGIMAGES_PROVIDERS = {
        **settings.BLOGIMAGES_PROVIDERS,
        "flaky": {"BACKEND": "tests.providers.FlakyProvider", "OPTIONS": {"fail_times": 99, "message": long_message}},
    }
    settings.BLOGIMAGES_MAX_ATTEMPTS = 2
    test_providers.CALLS.clear()
    spec = services.GenerationSpec(prompt="a heron at dawn", providers=["flaky"])
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = services.request_generation(spec)
    run_worker()
    result.refresh_from_db()
    assert (result.status, result.error_message) == (ResultStatus.FAILED, long_message)
    assert result.progress_message == ""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("retrying: could not reach example.com", "retrying: could not reach example.com"),
        ("retrying: could not reach http://example.com/" + "a" * 40, "retrying: could not reach\u2026"),
        ("retrying:   two\n lines  ", "retrying: two lines"),
        ("x" * 60, "x" * 39 + "\u2026"),
    ],
)
def test_progress_lines_are_cut_between_words(text, expected):
    assert short(text, 40) == expected
    assert len(short(text, 40)) <= 40
