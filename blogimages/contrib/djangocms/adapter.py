"""The host adapter for django CMS 5: posts are groupers (a djangocms-stories ``Post``, a
CMS ``Page``), sections are the text plugins of their content's placeholder.

Set ``BLOGIMAGES_HOST_ADAPTER = "blogimages.contrib.djangocms.adapter.DjangoCMSAdapter"``
and, if the defaults do not fit, ``BLOGIMAGES_DJANGOCMS_CONTENT``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.utils import translation

from ...chunks import keyset
from ...hosts.base import ACTIONS, HostAdapter, Section
from . import publishing
from .conf import djangocms_settings
from .sections import bodies, contents_of, key_language, placeholders_of, text_rows, title_and_text

logger = logging.getLogger("blogimages.djangocms")

#: Actions that put an image into django-filer, so need filer's permissions too.
IMAGE_ACTIONS = frozenset({"review", "upload"})


class SectionRef:
    """What ``Section.obj`` holds: the content, placeholder and text plugin a section is read from."""

    __slots__ = ("content", "placeholder", "plugin_id", "language", "html")

    def __init__(self, content, placeholder, plugin_id: int, language: str, html: str):
        self.content, self.placeholder, self.plugin_id = content, placeholder, plugin_id
        self.language, self.html = language, html

    def __repr__(self) -> str:
        return f"<SectionRef plugin #{self.plugin_id} ({self.language})>"


class DjangoCMSAdapter(HostAdapter):
    """Sections are the text plugins of the configured placeholder of each current content
    (the draft where djangocms-versioning has one), in document order, for every language
    the post has; keyed by the plugin's creation date, which versioning's copies keep
    (see :mod:`blogimages.contrib.djangocms.sections`)."""

    label = "django CMS"

    # --- posts ----------------------------------------------------------------------------
    def post_for(self, obj: Any) -> Any:
        from cms.models import Placeholder

        if isinstance(obj, Placeholder):
            obj = obj.source
        if obj is None:
            return None
        config = djangocms_settings.config_for_content(type(obj))
        if config is not None and config.grouper_field:
            return getattr(obj, config.grouper_field)
        return obj

    def get_post(self, content_type, object_id):
        model = content_type.model_class()
        if model is None or not djangocms_settings.configs_for_grouper(model):
            return None
        try:
            return model._base_manager.filter(pk=object_id).first()
        except (ValueError, TypeError, ValidationError):
            return None

    def find_post(self, object_id):
        """A post by ``"app_label.model:pk"`` (``"cms.page:3"``), or by primary key alone in the
        first configured content model's groupers (djangocms-stories' posts by default)."""
        label, _sep, pk = str(object_id).rpartition(":")
        for config in djangocms_settings.configs():
            model = config.grouper_model
            if model is None or (label and model._meta.label_lower != label.lower()):
                continue
            return self.get_post(ContentType.objects.get_for_model(model), pk)
        return None

    def posts(self):
        """Every grouper with a current content, drafts included."""
        from .sections import content_queryset

        for config in djangocms_settings.configs():
            model = config.grouper_model
            if model is None:
                continue
            ids = content_queryset(config).values(config.grouper_field)
            yield from keyset(model._base_manager.filter(pk__in=ids))

    def current_content(self, post: Any, language: str | None = None):
        """The content an editor works on in ``language`` (else the active language, else the first)."""
        contents = [content for _config, content in contents_of(post)]
        language = language or translation.get_language()
        return next(
            (c for c in contents if getattr(c, "language", None) == language), contents[0] if contents else None
        )

    def post_title(self, post):
        content = self.current_content(post)
        title = getattr(content, "title", "") if content is not None else ""
        return str(title or post)

    def post_admin_url(self, post):
        """The content's edit-mode URL (the CMS's frontend editor)."""
        from cms.toolbar.utils import get_object_edit_url

        content = self.current_content(post)
        if content is None:
            return ""
        try:
            return get_object_edit_url(content, language=getattr(content, "language", None))
        except Exception:  # noqa: BLE001 - a model without frontend editing has no such URL
            return ""

    def post_public_url(self, post):
        """The published content's URL; blank while nothing is published."""
        language = translation.get_language()
        for config in djangocms_settings.configs_for_grouper(type(post)):
            published = list(config.model._default_manager.filter(**{config.grouper_field: post}))
            content = next((c for c in published if getattr(c, "language", None) == language), None)
            content = content or (published[0] if published else None)
            if content is None:
                continue
            try:
                url = content.get_absolute_url(language=content.language)
            except TypeError:
                url = content.get_absolute_url()
            return url or ""
        return ""

    # --- sections -------------------------------------------------------------------------
    def sections(self, post, *, language: str | None = None) -> list[Section]:
        contents = contents_of(post, language=language)
        placeholders = placeholders_of(contents)
        multilingual = len({getattr(c, "language", "") for _cfg, c in contents}) > 1
        found = []
        for _config, content in contents:
            placeholder = placeholders.get((type(content), content.pk))
            if placeholder is None:
                continue
            rows = text_rows([placeholder.pk], content.language).get(placeholder.pk, [])
            found += [(content, placeholder, row) for row in rows]
        html = bodies(row for _content, _placeholder, row in found)
        sections = []
        for position, (content, placeholder, row) in enumerate(found):
            title, text = title_and_text(html.get(row.pk, ""))
            if multilingual:
                title = f"[{content.language}] {title}"
            ref = SectionRef(content, placeholder, row.pk, content.language, html.get(row.pk, ""))
            sections.append(Section(post=post, key=row.key, title=title, text=text, position=position, obj=ref))
        return sections

    def section(self, post, key):
        key = str(key)
        language = key_language(key)
        if not language:
            return None
        return next((s for s in self.sections(post, language=language) if s.key == key), None)

    def section_for(self, obj):
        """The section of a text plugin (any version's copy of it)."""
        if isinstance(obj, Section):
            return obj
        placeholder = getattr(obj, "placeholder", None)
        if placeholder is None or getattr(obj, "plugin_type", None) not in djangocms_settings.TEXT_PLUGINS:
            return None
        content = placeholder.source
        post = self.post_for(content)
        if post is None:
            return None
        rows = text_rows([placeholder.pk], obj.language).get(placeholder.pk, [])
        key = next((row.key for row in rows if row.pk == obj.pk), None)
        return self.section(post, key) if key else None

    # --- permissions ----------------------------------------------------------------------
    def has_permission(self, user, post, action):
        """The CMS's say: the user may change the post's content placeholder (page permissions
        for pages, the content model's change permission for posts); approving and uploading
        also need django-filer's "add image" and, with filer's folder permissions, the right to
        add to the configured folder."""
        if action not in ACTIONS or user is None or not user.is_authenticated or not user.is_active:
            return False
        if not self.can_change(user, post):
            return False
        if action in IMAGE_ACTIONS:
            return publishing.can_add_images(user)
        return True

    def can_change(self, user, post) -> bool:
        from cms.utils.permissions import get_model_permission_codename

        contents = contents_of(post)
        if not contents:
            return False
        placeholders = placeholders_of(contents)
        for _config, content in contents:
            placeholder = placeholders.get((type(content), content.pk))
            if placeholder is not None:
                if placeholder.has_change_permission(user):
                    return True
                continue
            checker = getattr(content, "has_placeholder_change_permission", None)
            if checker is not None:
                if checker(user):
                    return True
            elif user.has_perm(get_model_permission_codename(type(content), "change")):
                return True
        return False

    # --- the publish hook -----------------------------------------------------------------
    def image_approved(self, review, result, *, replaced=None, user=None):
        post = self.get_post(review.post_type, review.post_id)
        image = publishing.publish(review, result, post=post, user=user)
        if image is None:
            return
        if post is not None and djangocms_settings.INSERT_PLUGIN:
            try:
                publishing.place_plugin(post, review.section_key, user=user or review.reviewed_by)
            except Exception:
                # The image is in filer and the decision stands; the editor can add the plugin.
                logger.exception("Could not place a section image plugin for %s", review.section_key)
        if replaced is not None and replaced.pk != result.pk:
            publishing.retire(replaced)
        if post is not None:
            publishing.invalidate(post)

    def alt_text_changed(self, review, result):
        if publishing.update_alt_text(review, result):
            post = self.get_post(review.post_type, review.post_id)
            if post is not None:
                publishing.invalidate(post)

    def image_unapproved(self, review, result, *, user=None):
        publishing.retire(result)
        post = self.get_post(review.post_type, review.post_id)
        if post is not None:
            publishing.invalidate(post)
