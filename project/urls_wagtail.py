"""URLs of the Wagtail example site: Wagtail's admin at ``admin/``, Django's at ``django-admin/``."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.documents import urls as wagtaildocs_urls

from blogimages import rq_dashboard

rq_dashboard.guard_admin_site(admin.site)

urlpatterns = [
    path("django-admin/rq/", include(rq_dashboard.urlpatterns())),  # needs the django_rq.admin permission
    path("django-admin/", admin.site.urls),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    # Before Wagtail's catch-all, which would otherwise answer every remaining path.
    path("", include("blogimages.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns.append(path("", include(wagtail_urls)))
