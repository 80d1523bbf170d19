"""The host adapter for Wagtail: posts are pages, sections are StreamField blocks.

Set ``BLOGIMAGES_HOST_ADAPTER = "blogimages.contrib.wagtail.adapter.WagtailPageAdapter"``
and describe the page models in ``BLOGIMAGES_WAGTAIL_PAGES``.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.urls import NoReverseMatch, reverse
from wagtail.images import get_image_model
from wagtail.models import Collection, Page
from wagtail.permissions import policy_registry

from ...chunks import keyset
from ...hosts.base import ACTIONS, HostAdapter, Section
from ...text import plain_text
from . import publishing
from .conf import wagtail_settings
from .streams import section_blocks, stream_of, title_and_text

#: Actions that put an image into the image library, so need Wagtail's "add image" too.
IMAGE_ACTIONS = frozenset({"review", "upload"})


class WagtailPageAdapter(HostAdapter):
    """Sections are the configured blocks of a page's StreamField, keyed by block id.

    Text comes from the page's latest revision, so a draft's sections can be generated
    before the page is published; a block edited in place keeps its id, so its review and
    images follow it.
    """

    label = "Wagtail pages"

    # --- posts ----------------------------------------------------------------------------
    def post_for(self, obj: Any) -> Any:
        return obj.specific if isinstance(obj, Page) else obj

    def get_post(self, content_type, object_id):
        model = content_type.model_class()
        if model is None or not issubclass(model, Page):
            return None
        if not str(object_id).isdigit():
            return None
        # The stored content type is the specific page model: one query, no .specific hop.
        return self.post_for(model._default_manager.filter(pk=object_id).first())

    def find_post(self, object_id):
        """A configured page by id (the id in Wagtail's admin URLs)."""
        if not str(object_id).isdigit():
            return None
        page = Page.objects.filter(pk=object_id).first()
        if page is None:
            return None
        page = page.specific
        return page if wagtail_settings.page_config(page) is not None else None

    def posts(self):
        """Every page of a configured model, drafts included (editors generate before publishing)."""
        for model in self.page_models():
            yield from keyset(model._default_manager.all(), ("path",))

    def page_models(self) -> list[type[Page]]:
        models = []
        for label in wagtail_settings.PAGES:
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                continue  # blogimages_wagtail.E001 reports it
            if issubclass(model, Page):
                models.append(model)
        return models

    def post_title(self, post):
        return post.draft_title or post.title

    def post_admin_url(self, post):
        try:
            return reverse("wagtailadmin_pages:edit", args=[post.pk])
        except NoReverseMatch:
            return ""

    def post_public_url(self, post):
        return (post.get_url() or "") if post.live else ""

    # --- sections -------------------------------------------------------------------------
    def sections(self, post):
        page = self.post_for(post)
        config = wagtail_settings.page_config(page)
        if config is None:
            return []
        # The latest revision, not the live page: editors generate for a draft.
        draft = page.get_latest_revision_as_object()
        sections = []
        for position, child in enumerate(section_blocks(stream_of(draft, config), config)):
            title, text = title_and_text(child, config)
            sections.append(
                Section(post=page, key=str(child.id), title=plain_text(title), text=text, position=position, obj=child)
            )
        return sections

    # --- permissions ----------------------------------------------------------------------
    def has_permission(self, user, post, action):
        if action not in ACTIONS or user is None or not user.is_authenticated or not user.is_active:
            return False
        page = self.post_for(post)
        if not isinstance(page, Page) or not page.permissions_for_user(user).can_edit():
            return False
        if action in IMAGE_ACTIONS:
            return can_add_images(user)
        return True

    # --- the publish hook -----------------------------------------------------------------
    def image_approved(self, review, result, *, replaced=None, user=None):
        page = self.get_post(review.post_type, review.post_id)
        image = publishing.publish(review, result, page=page, user=user)
        if image is None:
            return
        config = wagtail_settings.page_config(page) if page is not None else None
        if config is not None and config.image_block:
            publishing.update_draft(page, config, review.section_key, image, user=user)
        if replaced is not None and replaced.pk != result.pk:
            publishing.retire(replaced)

    def alt_text_changed(self, review, result):
        publishing.update_alt_text(review, result)

    def image_unapproved(self, review, result, *, user=None):
        page = self.get_post(review.post_type, review.post_id)
        config = wagtail_settings.page_config(page) if page is not None else None
        review.refresh_from_db(fields=["approved_result"])
        if config is not None and config.image_block and review.approved_result_id is None:
            publishing.update_draft(page, config, review.section_key, None, user=user)
        publishing.retire(result)


def can_add_images(user: Any) -> bool:
    """Whether ``user`` may add images to the configured collection (or, while it does not
    exist yet, to the root collection it will be created under)."""
    collection = publishing.find_collection() or Collection.get_first_root_node()
    if collection is None:
        return False
    policy = policy_registry.get_by_type(get_image_model())
    return policy.collections_user_has_permission_for(user, "add").filter(pk=collection.pk).exists()
