"""django-rq's dashboard in the example projects needs the ``django_rq.admin`` permission,
not just ``is_staff``: both where the URLconf mounts it and where django-rq puts it in
Django's admin. Against the real queue (a job is really there, and really stays)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from blogimages.rq_dashboard import PERMISSION

# (ROOT_URLCONF, the dashboard's mount, Django's admin)
SITES = [
    ("project.urls", "/admin/rq/", "/admin/"),
    ("project.urls_wagtail", "/django-admin/rq/", "/django-admin/"),
]


@pytest.fixture(params=SITES, ids=["plain", "wagtail"])
def site(request, settings):
    urlconf, mount, admin = request.param
    settings.ROOT_URLCONF = urlconf
    return mount, admin


def _user(username: str, *, superuser: bool = False, perms: tuple[str, ...] = ()):
    user = get_user_model().objects.create_user(username, password="pass", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def job(rq_queue):
    return rq_queue.enqueue_call("blogimages.jobs.run_generation", args=(0,), job_id="blogimages-result-0-1")


def _pages(mount: str, admin: str, job_id: str) -> list[str]:
    return [
        mount,
        f"{mount}queues/0/",
        f"{mount}queues/0/{job_id}/",
        f"{admin}django_rq/dashboard/",
        f"{admin}django_rq/dashboard/queues/0/{job_id}/",
    ]


@pytest.mark.django_db
def test_plain_staff_user_is_refused_and_cannot_delete_a_job(client, site, job, rq_queue):
    mount, admin = site
    client.force_login(_user("staff"))
    for url in _pages(mount, admin, job.id):
        assert client.get(url).status_code == 403, url
    for url in (f"{mount}queues/0/{job.id}/delete/", f"{admin}django_rq/dashboard/queues/0/{job.id}/delete/"):
        assert client.post(url).status_code == 403, url
    assert job.id in rq_queue.job_ids
    assert rq_queue.fetch_job(job.id) is not None


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["superuser", "granted"])
def test_allowed_users_reach_the_dashboard_and_can_delete(client, site, job, rq_queue, who):
    mount, admin = site
    user = _user(who, superuser=True) if who == "superuser" else _user(who, perms=(PERMISSION,))
    client.force_login(user)
    for url in _pages(mount, admin, job.id):
        assert client.get(url).status_code == 200, url
    response = client.post(f"{mount}queues/0/{job.id}/delete/")
    assert response.status_code == 302
    assert job.id not in rq_queue.job_ids


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page(client, site):
    mount, _ = site
    response = client.get(mount)
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db
def test_admin_index_lists_the_dashboard_only_for_holders(client, site):
    _, admin = site
    client.force_login(_user("staff"))
    assert "django_rq/dashboard" not in client.get(admin).content.decode()
    client.force_login(_user("granted", perms=(PERMISSION,)))
    assert "django_rq/dashboard" in client.get(admin).content.decode()
