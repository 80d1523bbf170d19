"""django-rq's dashboard behind a permission (check blogimages.W046 when it is not).

django-rq only asks for ``is_staff``: any staff user could delete or requeue jobs there,
including blogimages' generation jobs. Here every dashboard view also needs
:data:`PERMISSION` (superusers have it; grant "django_rq | Django-RQ | Access admin page"
to others), both where the URLconf mounts ``urlpatterns()`` and where django-rq registers
itself in Django's admin (``admin/django_rq/dashboard/``, see :func:`guard_admin_site`).
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import URLPattern
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

#: The permission a user needs to reach the dashboard; django-rq defines it.
PERMISSION = "django_rq.admin"


def dashboard_permission_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403) a signed-in user without :data:`PERMISSION`; an anonymous request goes on
    to the view, which sends it to the login page (or checks its API token)."""

    @wraps(view)
    def guarded(request, *args: Any, **kwargs: Any):
        user = request.user
        if user.is_authenticated and not user.has_perm(PERMISSION):
            raise PermissionDenied(f"The job queue dashboard needs the {PERMISSION!r} permission.")
        return view(request, *args, **kwargs)

    guarded.blogimages_guarded = True  # what check W046 looks for
    return guarded


def open_dashboards() -> list[str]:
    """Where django-rq's dashboard answers any staff user: "URLconf" (``django_rq.urls``
    included bare) and/or "admin" (its admin entry without :func:`guard_admin_site`)."""
    from django.urls import NoReverseMatch, resolve, reverse

    found = []
    try:
        match = resolve(reverse("django_rq:home"))
    except NoReverseMatch:
        match = None
    if match is not None and not getattr(match.func, "blogimages_guarded", False):
        found.append("URLconf")
    if admin.site.is_registered(Dashboard) and not isinstance(admin.site.get_model_admin(Dashboard), GuardedQueueAdmin):
        found.append("admin")
    return found


def _guard(patterns: list[URLPattern]) -> list[URLPattern]:
    for pattern in patterns:
        pattern.callback = dashboard_permission_required(pattern.callback)
    return patterns


def urlpatterns() -> tuple[list[URLPattern], str]:
    """django-rq's URLs with every view guarded, for ``include()`` (namespace ``django_rq``)."""
    from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

    return _guard(get_api_urlpatterns() + get_admin_urlpatterns()), "django_rq"


class GuardedQueueAdmin(QueueAdmin):
    """django-rq's admin entry, shown to and reachable by holders of :data:`PERMISSION` only."""

    def has_module_permission(self, request) -> bool:
        return request.user.has_perm(PERMISSION)

    def get_urls(self) -> list[URLPattern]:
        return _guard(super().get_urls())


def guard_admin_site(site: admin.AdminSite = admin.site) -> None:
    """Put the same guard on the copy of the dashboard django-rq registers in the admin
    (unless ``RQ_SHOW_ADMIN_LINK = False``). Idempotent; call before ``site.urls``."""
    if not site.is_registered(Dashboard) or isinstance(site.get_model_admin(Dashboard), GuardedQueueAdmin):
        return
    site.unregister(Dashboard)
    site.register(Dashboard, GuardedQueueAdmin)
