"""blogimages inside Wagtail's admin: a page's image review, the playground, the status page.

The review page is :class:`blogimages.admin_views.ReviewPage` with Wagtail's templates
and URLs; the playground and status page call the same context-building functions as
Django admin's. Every URL here is registered through ``register_admin_urls`` (see
``wagtail_hooks.py``), so Wagtail's ``require_admin_access`` guards it; permissions on
the page, the collection and blogimages' own are checked here, on the server.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from wagtail.admin.views.pages.utils import get_breadcrumbs_items_for_page
from wagtail.models import Page

from ... import admin_views, services
from ...admin_views import ReviewPage
from ...hosts import get_host
from ...models import ImageGenerationResult, SectionReview
from .conf import wagtail_settings

NAMESPACE = "blogimages_wagtail"
TEMPLATES = "blogimages_wagtail/admin/"
#: Django permissions that show the playground and status page (besides generating images).
TOOL_PERMISSIONS = ("blogimages.view_imagegenerationresult", "blogimages.change_imagegenerationresult")


def url(name: str, *args: Any) -> str:
    return reverse(f"{NAMESPACE}:{name}", args=args)


def may_use_tools(user) -> bool:
    """Whether ``user`` sees the playground and the status page (as Django admin's view
    permission on generated images, or the permission to generate)."""
    return any(user.has_perm(perm) for perm in TOOL_PERMISSIONS) or services.can(user, "generate")


def tool_urls() -> dict[str, str]:
    """Where the playground and status page live in Wagtail's admin (keys of ``admin_tool_urls``)."""
    return {
        "playground": url("playground"),
        "playground_status": url("playground_status"),
        "playground_models": url("playground_models"),
        "status_page": url("status"),
        "gallery": url("gallery"),
        # The result and section review links append "<pk>/change/" to these (as in Django admin).
        "results": url("results"),
        "reviews": url("reviews"),
    }


def home_crumb() -> dict[str, str]:
    return {"url": reverse("wagtailadmin_home"), "label": _("Home")}


def chrome(title: str, crumbs: list[dict[str, str]], icon: str = "image") -> dict[str, Any]:
    """The context ``wagtailadmin/generic/base.html`` renders its slim header and breadcrumbs from."""
    return {
        "header_title": title,
        "page_title": title,
        "header_icon": icon,
        "breadcrumbs_items": [*crumbs, {"url": "", "label": title}],
        "header_buttons": [],
    }


def is_configured_page(page: Any) -> bool:
    return isinstance(page, Page) and wagtail_settings.page_config(page) is not None


# --- the review page ---------------------------------------------------------------------------


class WagtailReviewPage(ReviewPage):
    """A page's image review in Wagtail's admin (pages of the models in ``BLOGIMAGES_WAGTAIL_PAGES``)."""

    template_name = TEMPLATES + "review.html"
    panel_template_name = "blogimages/admin/_section_panel.html"

    def get_post(self, request: HttpRequest, object_id: str):
        page = get_host().find_post(str(object_id))
        if not is_configured_page(page):
            raise Http404(_("No page with id “%(id)s” has sections for images.") % {"id": object_id})
        return page

    def check_post_permission(self, request: HttpRequest, post) -> None:
        # services.can asks the Wagtail adapter: the page's edit permission and, for
        # approving and uploading, adding images to the collection.
        if not services.can(request.user, "view", post):
            raise PermissionDenied

    def urls_for(self, post) -> dict[str, str]:
        tools = tool_urls()
        return {
            "review": url("review", post.pk),
            "status": url("review_status", post.pk),
            "section": url("review_section", post.pk, "0"),
            "change": reverse("wagtailadmin_pages:edit", args=[post.pk]),
            "reviews": tools["reviews"],
            "results": tools["results"],
            "playground": tools["playground"],
            "status_page": tools["status_page"],
        }

    def page_context(self, request: HttpRequest, post) -> dict[str, Any]:
        title = _("Images")
        crumbs = get_breadcrumbs_items_for_page(post, request.user)
        context = chrome(title, crumbs or [home_crumb()])
        context["header_title"] = _("Images for “%(page)s”") % {"page": get_host().post_title(post)}
        context["may_use_tools"] = may_use_tools(request.user)
        return context


review_page = WagtailReviewPage()


def review(request: HttpRequest, page_id: int) -> HttpResponse:
    return review_page.review_view(request, str(page_id))


def review_status(request: HttpRequest, page_id: int) -> JsonResponse:
    return review_page.status_view(request, str(page_id))


def review_section(request: HttpRequest, page_id: int, section_key: str) -> HttpResponse:
    return review_page.section_view(request, str(page_id), section_key)


# --- playground and status --------------------------------------------------------------------


def require_tools(request: HttpRequest) -> None:
    if not may_use_tools(request.user):
        raise PermissionDenied


def playground(request: HttpRequest) -> HttpResponse:
    require_tools(request)
    return admin_views.playground_page(
        request,
        urls=tool_urls(),
        example_url=lambda pk: reverse("blogimages_prompt_examples:edit", args=[pk]),
        template_name=TEMPLATES + "playground.html",
        base_context=lambda: chrome(_("Prompt playground"), [home_crumb()]),
    )


def playground_status(request: HttpRequest) -> JsonResponse:
    require_tools(request)
    return admin_views.playground_status(request, urls=tool_urls())


def playground_models(request: HttpRequest) -> JsonResponse:
    require_tools(request)
    return admin_views.playground_models(request)


def status(request: HttpRequest) -> HttpResponse:
    require_tools(request)
    context = {**admin_views.status_context(request, urls=tool_urls())}
    context.update(chrome(str(context["title"]), [home_crumb()], icon="pick"))
    return TemplateResponse(request, TEMPLATES + "status.html", context)


# --- one generated image, and the links the shared templates make ------------------------------


def result(request: HttpRequest, pk: int) -> HttpResponse:
    """One candidate, read-only: the image, how it was made, and where it belongs."""
    obj = get_object_or_404(
        ImageGenerationResult.objects.select_related("review", "style", "image_format", "setting"), pk=pk
    )
    page = None
    if obj.review_id:
        page = get_host().get_post(obj.review.post_type, obj.review.post_id)
        if page is None or not services.can(request.user, "view", page):
            raise PermissionDenied
    else:
        require_tools(request)
    title = _("Image #%(id)s") % {"id": obj.pk}
    crumbs = [home_crumb()]
    if page is not None:
        crumbs = [
            *(get_breadcrumbs_items_for_page(page, request.user) or crumbs),
            {"url": url("review", page.pk), "label": _("Images")},
        ]
    context = {
        **chrome(title, crumbs),
        "result": obj,
        "card": admin_views.playground_cards([obj])[0],
        "params": admin_views.render_info(obj.params) if obj.params else "",
        "page": page,
        "review_url": url("review", page.pk) + f"#bi-section-{obj.review.section_key}" if page is not None else "",
        "playground_url": url("playground"),
        "may_use_tools": may_use_tools(request.user),
    }
    return TemplateResponse(request, TEMPLATES + "result.html", context)


def results_index(request: HttpRequest) -> HttpResponse:
    """``results/`` itself: the playground lists recent comparisons."""
    return HttpResponseRedirect(url("playground"))


def review_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The panel's "Edit prompt and alt text" link (``reviews/<pk>/change/``): the review's edit
    view, carrying ``?next=`` (the review page at the section) when it points into this site."""
    review_row = get_object_or_404(SectionReview, pk=pk)
    return HttpResponseRedirect(with_next(request, reverse("blogimages_section_reviews:edit", args=[review_row.pk])))


def with_next(request: HttpRequest, target: str) -> str:
    """``target`` with the request's ``next`` appended, when that is a URL of this site
    (:func:`admin_views.common.back_url`); ``target`` unchanged otherwise."""
    from urllib.parse import urlencode

    from ...admin_views.common import back_url

    back = back_url(request)
    return f"{target}?{urlencode({'next': back})}" if back else target


def review_edit_done(request: HttpRequest, review_row: SectionReview) -> str:
    """Where saving a section's prompt or alt text goes (``SectionReviewEditView``): ``next``
    when it points into this site (the panel's link sends the review page at the section),
    else the page's review page; ``""`` when the page is gone."""
    from ...admin_views.common import back_url

    page = get_host().get_post(review_row.post_type, review_row.post_id)
    return back_url(request, url("review", page.pk) if page is not None else "")


# --- the gallery and the image viewer's endpoints (admin_views.gallery, admin_views.viewer) -----


def gallery(request: HttpRequest) -> HttpResponse:
    require_tools(request)
    return admin_views.gallery.gallery_page(
        request,
        urls=tool_urls(),
        template_name=TEMPLATES + "gallery.html",
        base_context=lambda: chrome(_("Gallery"), [home_crumb()]),
    )


def viewer_options(request: HttpRequest, pk: int) -> JsonResponse:
    return admin_views.viewer.edit_options(request, pk)  # checks the post's view permission


def viewer_refine(request: HttpRequest, pk: int) -> JsonResponse:
    return admin_views.viewer.refine(request, pk)  # checks generate on the post (and the service again)


def viewer_posts(request: HttpRequest) -> JsonResponse:
    require_tools(request)
    return admin_views.viewer.posts(request)


def viewer_sections(request: HttpRequest) -> JsonResponse:
    require_tools(request)
    return admin_views.viewer.sections(request)


def viewer_attach(request: HttpRequest, pk: int) -> JsonResponse:
    require_tools(request)
    return admin_views.viewer.attach(request, pk)
