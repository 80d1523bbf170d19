from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from blogimages import rq_dashboard

rq_dashboard.guard_admin_site(admin.site)

urlpatterns = [
    path("admin/rq/", include(rq_dashboard.urlpatterns())),  # needs the django_rq.admin permission
    path("admin/", admin.site.urls),
    path("blog/", include("project.blog.urls")),
    path("", include("blogimages.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
