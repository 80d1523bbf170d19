"""URLs of the django CMS example site: Django's admin (the CMS's too) at ``admin/``, then
blogimages' JSON API, then django CMS's catch-all for pages and apphooks (the stories blog)."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from blogimages import rq_dashboard

rq_dashboard.guard_admin_site(admin.site)

urlpatterns = [
    path("admin/rq/", include(rq_dashboard.urlpatterns())),  # needs the django_rq.admin permission
    path("admin/", admin.site.urls),
    path("", include("blogimages.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns.append(path("", include("cms.urls")))
