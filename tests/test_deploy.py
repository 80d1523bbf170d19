"""Production settings and the commands' exit statuses, as the README promises them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import ManagementUtility

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "blog.example.com",
}


def manage(*args: str, settings: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Not the test process's own switches (the browser tests allow async-unsafe calls).
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environ.update(DJANGO_SETTINGS_MODULE=settings, **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", ["project.settings", "project.settings_wagtail", "project.settings_djangocms"])
def test_check_deploy_is_clean_with_the_production_environment(module):
    done = manage("check", "--deploy", "--fail-level", "WARNING", settings=module, env=PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key():
    done = manage("check", settings="project.settings", env={**PRODUCTION, "DJANGO_SECRET_KEY": ""})
    assert done.returncode == 1
    assert "DJANGO_DEBUG=0 needs DJANGO_SECRET_KEY: 50 or more random characters" in done.stderr


COMMANDS = [
    ["blogimages_status"],
    ["blogimages_generate", "--all-missing"],
    ["blogimages_requeue", "--dry-run"],
    ["blogimages_cleanup"],
    ["blogimages_migrate_settings", "--dry-run"],
]


@pytest.mark.django_db
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_bad_configuration_exits_2_with_its_message(command, settings, capsys):
    """The README's table: 2 is bad arguments or configuration (Django's own default is 1)."""
    settings.BLOGIMAGES_PROVIDERS = {"broken": {"BACKEND": "no.such.Provider"}}
    settings.BLOGIMAGES_DEFAULT_PROVIDER = "broken"
    with pytest.raises(SystemExit) as exit_:
        ManagementUtility(["manage.py", *command]).execute()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot import 'no.such.Provider'" in err and "Traceback" not in err
