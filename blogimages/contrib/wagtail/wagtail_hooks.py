"""blogimages in Wagtail's admin: URLs, the "Image generation" menu, the library viewsets and
the "Images" entry of configured pages (page header, page listing and the editor's action menu).

Wagtail imports this module itself (``wagtail_hooks`` discovery); nothing here runs on import
but the registrations Wagtail asks for.
"""

from __future__ import annotations

from django.urls import include, path, reverse
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from wagtail import hooks
from wagtail.admin.action_menu import ActionMenuItem
from wagtail.admin.menu import MenuItem
from wagtail.admin.ui.tables import Column
from wagtail.admin.views import generic
from wagtail.admin.viewsets.model import ModelViewSet, ModelViewSetGroup
from wagtail.admin.widgets.button import Button
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import policy_registry, register_permission_policy

from ... import services
from ...models import ImageFormat, ImagePromptExample, ImageSetting, ImageStyle, SectionReview
from . import views
from .conf import wagtail_settings

#: Submenu items of "Image generation" besides the viewsets (playground, status).
MENU_HOOK = "register_blogimages_menu_item"


# --- URLs ------------------------------------------------------------------------------------


@hooks.register("register_admin_urls")
def register_admin_urls():
    patterns = [
        path("pages/<int:page_id>/images/", views.review, name="review"),
        path("pages/<int:page_id>/images/status/", views.review_status, name="review_status"),
        path("pages/<int:page_id>/images/section/<str:section_key>/", views.review_section, name="review_section"),
        path("playground/", views.playground, name="playground"),
        path("playground/status/", views.playground_status, name="playground_status"),
        path("playground/models/", views.playground_models, name="playground_models"),
        path("status/", views.status, name="status"),
        path("results/", views.results_index, name="results"),
        path("gallery/", views.gallery, name="gallery"),
        path("results/viewer/posts/", views.viewer_posts, name="viewer_posts"),
        path("results/viewer/sections/", views.viewer_sections, name="viewer_sections"),
        path("results/viewer/<int:pk>/options/", views.viewer_options, name="viewer_options"),
        path("results/viewer/<int:pk>/refine/", views.viewer_refine, name="viewer_refine"),
        path("results/viewer/<int:pk>/attach/", views.viewer_attach, name="viewer_attach"),
        path("results/<int:pk>/change/", views.result, name="result"),
        path(
            "reviews/",
            RedirectView.as_view(pattern_name="blogimages_section_reviews:index", permanent=False),
            name="reviews",
        ),
        path("reviews/<int:pk>/change/", views.review_edit, name="review_edit"),
    ]
    return [path("blogimages/", include((patterns, views.NAMESPACE), namespace=views.NAMESPACE))]


# --- the "Images" entry of a page ----------------------------------------------------------------


def review_url_for(page, user) -> str:
    """The page's review URL if it is a configured page the user may see images of, else ""."""
    model = page.specific_class
    if model is None or wagtail_settings.page_config(model) is None:
        return ""
    if not services.can(user, "view", page):
        return ""
    return reverse(f"{views.NAMESPACE}:review", args=[page.pk])


@hooks.register("register_page_header_buttons")
def page_header_images_button(page, user, view_name=None, next_url=None):
    target = review_url_for(page, user)
    if target:
        yield Button(_("Images"), target, icon_name="image", priority=40, attrs={"data-blogimages-review": "header"})


@hooks.register("register_page_listing_more_buttons")
def page_listing_images_button(page, user, next_url=None):
    target = review_url_for(page, user)
    if target:
        yield Button(_("Images"), target, icon_name="image", priority=45, attrs={"data-blogimages-review": "listing"})


class ImagesActionMenuItem(ActionMenuItem):
    """ "Images" in the page editor's save/publish menu (a link, not a form action)."""

    label = _("Images")
    name = "action-blogimages"
    icon_name = "image"

    def is_shown(self, context):
        return context["view"] == "edit" and bool(review_url_for(context["page"], context["request"].user))

    def get_url(self, parent_context):
        return reverse(f"{views.NAMESPACE}:review", args=[parent_context["page"].pk])


@hooks.register("register_page_action_menu_item")
def register_images_action_menu_item():
    return ImagesActionMenuItem(order=90)


# --- menu: playground and status ---------------------------------------------------------------


class ToolMenuItem(MenuItem):
    def is_shown(self, request):
        return views.may_use_tools(request.user)


@hooks.register(MENU_HOOK)
def playground_menu_item():
    return ToolMenuItem(_("Prompt playground"), reverse(f"{views.NAMESPACE}:playground"), icon_name="draft", order=10)


@hooks.register(MENU_HOOK)
def gallery_menu_item():
    return ToolMenuItem(_("Gallery"), reverse(f"{views.NAMESPACE}:gallery"), icon_name="image", order=15)


@hooks.register(MENU_HOOK)
def status_menu_item():
    return ToolMenuItem(_("Status"), reverse(f"{views.NAMESPACE}:status"), icon_name="pick", order=20)


# --- the library -------------------------------------------------------------------------------


def excerpt(field: str, chars: int = 70):
    def accessor(obj) -> str:
        return Truncator(getattr(obj, field) or "").chars(chars)

    return accessor


class StyleViewSet(ModelViewSet):
    model = ImageStyle
    name = "blogimages_styles"
    url_prefix = "blogimages/styles"
    icon = "palette"
    menu_label = _("Styles")
    add_to_reference_index = False
    list_display = [
        "name",
        Column("prompt_template", label=_("prompt template"), accessor=excerpt("prompt_template")),
        "updated_at",
    ]
    search_fields = ["name", "prompt_template", "negative_prompt", "description"]
    form_fields = ["name", "prompt_template", "negative_prompt", "loras", "description"]


class FormatViewSet(ModelViewSet):
    model = ImageFormat
    name = "blogimages_formats"
    url_prefix = "blogimages/formats"
    icon = "crop"
    menu_label = _("Formats")
    add_to_reference_index = False
    list_display = ["name", "width", "height", "description"]
    search_fields = ["name", "description"]
    form_fields = ["name", "width", "height", "description"]


class SettingViewSet(ModelViewSet):
    model = ImageSetting
    name = "blogimages_settings"
    url_prefix = "blogimages/settings"
    icon = "cogs"
    menu_label = _("Settings")
    add_to_reference_index = False
    list_display = ["name", "provider", "model", "width", "height", "steps", "sampler"]
    list_filter = ["provider"]
    search_fields = ["name", "model", "sampler", "negative_prompt"]
    # The legacy text stays read-only (Django admin shows it); blogimages_migrate_settings parses it.
    form_fields = ["name", "provider", *ImageSetting.STRUCTURED_FIELDS, "extra_settings"]


class PromptExampleCreateView(generic.CreateView):
    def save_instance(self):
        self.form.instance.created_by = self.request.user
        return super().save_instance()


class PromptExampleViewSet(ModelViewSet):
    model = ImagePromptExample
    name = "blogimages_prompt_examples"
    url_prefix = "blogimages/prompt-examples"
    icon = "doc-full"
    menu_label = _("Prompt examples")
    add_to_reference_index = False
    add_view_class = PromptExampleCreateView
    list_display = [
        "name",
        Column("prompt", label=_("prompt"), accessor=excerpt("prompt", 60)),
        "style",
        "image_format",
        "setting",
        "provider",
    ]
    list_filter = ["style", "image_format", "setting", "provider"]
    search_fields = ["name", "prompt", "notes", "model"]
    form_fields = ["name", "prompt", "style", "image_format", "setting", "provider", "model", "notes"]


class SectionReviewPolicy(ModelPermissionPolicy):
    """Review rows are made by the first image of a section, and deleting one would take the
    section's history with it: neither is offered (as in Django admin)."""

    def user_has_permission(self, user, action):
        return action not in {"add", "delete"} and super().user_has_permission(user, action)


class SectionReviewEditView(generic.EditView):
    def get_edit_url(self):
        # The form posts here: keep ``?next=`` (checked in views.with_next) so saving goes back.
        return views.with_next(self.request, super().get_edit_url())

    def get_success_url(self):
        return views.review_edit_done(self.request, self.object) or super().get_success_url()


class SectionReviewViewSet(ModelViewSet):
    """A section's prompt override, prompt example and alt text (the review page links here)."""

    model = SectionReview
    name = "blogimages_section_reviews"
    url_prefix = "blogimages/section-reviews"
    icon = "tasks"
    menu_label = _("Section reviews")
    add_to_reference_index = False
    copy_view_enabled = False
    edit_view_class = SectionReviewEditView
    list_display = ["section_title", "status", "reviewed_by", "reviewed_at"]
    list_filter = ["status"]
    search_fields = ["section_title", "comment", "prompt_override", "alt_text"]
    form_fields = ["prompt_example", "prompt_override", "alt_text"]

    def on_register(self):
        if policy_registry.get_by_type(SectionReview, fallback=False) is None:
            register_permission_policy(SectionReview, SectionReviewPolicy(SectionReview))
        super().on_register()


class ImageGenerationGroup(ModelViewSetGroup):
    menu_label = _("Image generation")
    menu_icon = "image"
    menu_name = "blogimages"
    menu_order = 350
    submenu_hook = MENU_HOOK
    items = (StyleViewSet, FormatViewSet, SettingViewSet, PromptExampleViewSet, SectionReviewViewSet)

    def get_submenu_items(self):
        # The viewsets after the playground and status (orders 10, 20 from MENU_HOOK).
        return [registerable.get_menu_item(order=100 + index) for index, registerable in enumerate(self.registerables)]


@hooks.register("register_admin_viewset")
def register_library():
    return ImageGenerationGroup()
