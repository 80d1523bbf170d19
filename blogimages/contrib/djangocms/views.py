"""A post's image review inside django CMS: Django admin's review page for a CMS grouper.

django CMS runs on Django's admin, and its toolbar opens admin pages in the sideframe; so
the review page is :class:`blogimages.admin_views.ReviewPage` at an admin URL (wired by
:class:`~blogimages.contrib.djangocms.admin.PublishedImageAdmin`, wrapped in
``admin_site.admin_view``), next to blogimages' own playground and status page. The CMS's
page and placeholder permissions are checked through the host adapter, on the server.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from ...admin_views import ReviewPage
from ...hosts import get_host
from ...models import SectionReview


def post_ref(post: Any) -> str:
    """How a review URL names a post: ``"<content type id>-<pk>"``."""
    return f"{ContentType.objects.get_for_model(post).pk}-{post.pk}"


def review_url(post: Any, site: str = "admin") -> str:
    return reverse(f"{site}:blogimages_djangocms_review", args=[post_ref(post)])


def tool_urls(site: str = "admin") -> dict[str, str]:
    """blogimages' own admin pages (playground, status, the libraries)."""
    return {
        "reviews": reverse(f"{site}:blogimages_sectionreview_changelist"),
        "results": reverse(f"{site}:blogimages_imagegenerationresult_changelist"),
        "playground": reverse(f"{site}:blogimages_playground"),
        "status_page": reverse(f"{site}:blogimages_status"),
        "gallery": reverse(f"{site}:blogimages_gallery"),
    }


class CMSReviewPage(ReviewPage):
    """The review views of one CMS post or page (``admin/blogimages_djangocms/publishedimage/review/<ref>/``)."""

    template_name = "blogimages_djangocms/review.html"

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site.name

    def get_post(self, request: HttpRequest, object_id: str):
        type_id, _sep, pk = str(object_id).partition("-")
        post = None
        if type_id.isdigit() and pk:
            try:
                content_type = ContentType.objects.get_for_id(int(type_id))
            except ContentType.DoesNotExist:
                content_type = None
            if content_type is not None:
                post = get_host().get_post(content_type, pk)
        if post is None:
            raise Http404(_("No post or page “%(id)s”.") % {"id": object_id})
        return post

    def urls_for(self, post) -> dict[str, str]:
        ref = post_ref(post)
        name = f"{self.site}:blogimages_djangocms_review"
        return {
            "review": reverse(name, args=[ref]),
            "status": reverse(f"{name}_status", args=[ref]),
            "section": reverse(f"{name}_section", args=[ref, "0"]),
            "change": get_host().post_admin_url(post),
            **tool_urls(self.site),
        }

    def page_context(self, request: HttpRequest, post) -> dict[str, Any]:
        request.current_app = self.site
        return {
            **self.model_admin.admin_site.each_context(request),
            "opts": SectionReview._meta,
            "has_view_permission": False,
        }
