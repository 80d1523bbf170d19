"""The admin status page: provider health, OpenAI, the RQ queues and workers, and local ComfyUI's state."""

from __future__ import annotations

import sys
import tempfile

import pytest
from django.urls import NoReverseMatch, reverse

from blogimages.providers.base import BaseProvider, ProviderHealth
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

URL = "/admin/blogimages/imagegenerationresult/status/"
CONTROL = URL + "comfyui/"  # the start/stop URL this page used to have
GIB = 1024**3


class ServersProvider(BaseProvider):
    """Reports health the way the ComfyUI provider does: one row per server."""

    label = "GPU farm"
    default_options = {"ok": True}

    def health(self):
        servers = [
            {
                "url": "http://gpu-1:8188",
                "ok": True,
                "version": "0.3.10",
                "vram_free": 6 * GIB,
                "vram_total": 24 * GIB,
                "queue_pending": 3,
            },
            {"url": "http://gpu-2:8188", "ok": False, "error": "connection refused"},
        ]
        return ProviderHealth(ok=self.options["ok"], detail="1 of 2 servers reachable", info={"servers": servers})


class ExplodingHealthProvider(BaseProvider):
    def health(self):
        raise RuntimeError("socket exploded")


@pytest.fixture
def providers(settings):
    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider"},
        "gpu": {"BACKEND": "tests.test_admin_status.ServersProvider"},
        "broken": {"BACKEND": "tests.test_admin_status.ExplodingHealthProvider"},
        "missing": {"BACKEND": "tests.nowhere.Provider"},
    }


def test_provider_health_with_server_details(client, admin_user, providers, rq_queue):
    client.force_login(admin_user)
    html = client.get(URL).content.decode()
    row = html[html.index('data-alias="gpu"') : html.index('data-alias="broken"')]
    assert "GPU farm" in row and "1 of 2 servers reachable" in row and "OK" in row
    assert '<th scope="col">vram free</th>' in row and "6.0\xa0GB" in row and "24.0\xa0GB" in row
    assert "0.3.10" in row and "http://gpu-2:8188" in row and "connection refused" in row
    broken = html[html.index('data-alias="broken"') : html.index('data-alias="missing"')]
    assert "Unavailable" in broken and "RuntimeError: socket exploded" in broken
    missing = html[html.index('data-alias="missing"') :]
    assert "cannot import &#x27;tests.nowhere.Provider&#x27;" in missing
    placeholder = html[html.index('data-alias="placeholder"') : html.index('data-alias="gpu"')]
    assert "(default)" in placeholder and "offline placeholder, always available" in placeholder


def test_openai_configured_or_not(client, admin_user, settings, monkeypatch, rq_queue):
    client.force_login(admin_user)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_AUTH_TOKEN", raising=False)
    html = client.get(URL).content.decode()
    assert "not configured" in html[html.index("bi-openai") :]

    settings.BLOGIMAGES_PROVIDERS = {
        "placeholder": {"BACKEND": "blogimages.providers.placeholder.PlaceholderProvider"},
        "openai": {
            "BACKEND": "blogimages.providers.openai.OpenAIImagesProvider",
            # A closed local port: the health check fails fast without leaving the machine.
            "OPTIONS": {"api_key": "sk-test", "base_url": f"http://127.0.0.1:{free_port()}/v1", "health_timeout": 1},
        },
    }
    html = client.get(URL).content.decode()
    section = html[html.index("bi-openai") :]
    assert "configured" in section and "as provider openai" in section and "no API key" not in section
    row = html[html.index('data-alias="openai"') :]
    assert "Unavailable" in row and "unreachable" in row


def test_queues_workers_and_dashboard_link(client, admin_user, rq_queue):
    from rq import Worker

    rq_queue.enqueue("blogimages.jobs.recover_results")
    worker = Worker([rq_queue], connection=rq_queue.connection, name="status-page-worker")
    worker.register_birth()
    try:
        client.force_login(admin_user)
        html = client.get(URL).content.decode()
    finally:
        worker.register_death()
    row = html[html.index('data-queue="default"') :]
    assert "(blogimages)" in row and "status-page-worker" in row
    assert row.index("<td>1</td>") < row.index("status-page-worker")  # one job waiting
    assert 'href="/admin/rq/"' in html


def test_no_worker_is_pointed_out(client, admin_user, rq_queue):
    client.force_login(admin_user)
    html = client.get(URL).content.decode()
    assert "no worker" in html and "python manage.py rqworker default" in html


def test_redis_unreachable_is_explained(client, admin_user, settings):
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"}}
    client.force_login(admin_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert "Redis cannot be reached: ConnectionError" in response.content.decode()


def test_comfyui_public_url_is_linked_and_embedded(client, admin_user, settings, rq_queue):
    client.force_login(admin_user)
    assert "ComfyUI web UI" not in client.get(URL).content.decode()
    settings.BLOGIMAGES_COMFYUI_PUBLIC_URL = "http://gpu-box.local:8188/"
    html = client.get(URL).content.decode()
    assert 'href="http://gpu-box.local:8188/"' in html
    assert '<iframe src="http://gpu-box.local:8188/"' in html


@pytest.fixture
def comfy_state(tmp_path, monkeypatch):
    """A private state folder for blogimages.local_comfyui (it lives under the temp dir)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path
    from blogimages import local_comfyui

    local_comfyui.stop(timeout=5)


def test_local_comfyui_state_and_the_command_to_run(client, admin_user, settings, comfy_state, rq_queue):
    from blogimages import local_comfyui

    client.force_login(admin_user)
    assert "Local ComfyUI" not in client.get(URL).content.decode()  # no start command: nothing to show
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "exec sleep 60"
    html = client.get(URL).content.decode()
    section = html[html.index("bi-local") :]
    assert "Local ComfyUI" in section and "Not running." in section and "exec sleep 60" in section
    assert "python manage.py blogimages_comfyui start|stop|status" in section
    assert "<form" not in section and 'value="start"' not in section  # the page starts nothing

    info = local_comfyui.start(wait=0.2)
    section = client.get(URL).content.decode()
    assert "Running as pid" in section and str(info.pid) in section and "comfyui.log" in section
    local_comfyui.stop(timeout=5)
    assert "Not running" in client.get(URL).content.decode()


def test_the_start_and_stop_url_is_gone(client, admin_user, settings, comfy_state, rq_queue):
    from blogimages import local_comfyui

    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "exec sleep 60"
    client.force_login(admin_user)
    with pytest.raises(NoReverseMatch):
        reverse("admin:blogimages_status_comfyui")
    client.post(CONTROL, {"op": "start"})  # now the admin's "object not found" redirect
    assert not local_comfyui.status().running


def test_a_viewer_sees_the_state_too(client, make_editor, settings, comfy_state, rq_queue):
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "exec sleep 60"
    client.force_login(make_editor("viewer"))
    html = client.get(URL).content.decode()
    assert "Local ComfyUI" in html and "blogimages_comfyui start|stop|status" in html


def test_without_the_local_comfyui_module_the_page_says_so(client, admin_user, settings, monkeypatch, rq_queue):
    settings.BLOGIMAGES_COMFYUI_START_COMMAND = "exec sleep 60"
    monkeypatch.setitem(sys.modules, "blogimages.local_comfyui", None)  # as if it were not installed
    client.force_login(admin_user)
    html = client.get(URL).content.decode()
    assert "Starting a local ComfyUI is not available in this installation" in html
    assert "blogimages_comfyui start|stop|status" not in html  # the command needs the module too


def test_status_page_needs_staff_view_permission(client, make_editor, rq_queue):
    outsider = make_editor("outsider")
    outsider.user_permissions.clear()
    client.force_login(outsider)
    assert client.get(URL).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302


def test_the_status_page_says_when_no_recovery_round_runs(client, admin_user, rq_queue):
    from blogimages import services

    rq_queue.connection.delete(services.LAST_RECOVERY_KEY)
    client.force_login(admin_user)
    html = client.get(URL).content.decode()
    assert "data-recovery-warning>No recovery round has run in the last day: run python manage.py rqcron" in html
    services.recover(rq_queue.connection)
    assert "data-recovery-warning" not in client.get(URL).content.decode()
