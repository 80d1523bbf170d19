"""The "Section image" plugin's model, and the link from a blogimages result to the
django-filer image it became."""

from __future__ import annotations

from cms.models import CMSPlugin
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

FILER_IMAGE_MODEL = getattr(settings, "FILER_IMAGE_MODEL", "filer.Image")


class SectionImage(CMSPlugin):
    """A place for one section's approved image in a placeholder.

    ``section_key`` names the section (see :mod:`.sections`); blank means "the text just
    before this plugin", filled in when the plugin is saved. The image itself is looked
    up when the plugin renders, so an approval shows on the published page without a new
    version. Copied with its version like any plugin (the key is a plain field).
    """

    section_key = models.CharField(
        _("section"),
        max_length=128,
        blank=True,
        help_text=_("Blank: the text just before this image."),
    )
    sizes = models.CharField(
        _("sizes"),
        max_length=200,
        blank=True,
        help_text=_("The img sizes attribute, e.g. '(max-width: 800px) 100vw, 800px'; blank for the site default."),
    )

    class Meta:
        verbose_name = _("section image")

    def __str__(self) -> str:
        return self.section_key or str(_("the text above"))


class PublishedImageQuerySet(models.QuerySet):
    def for_post(self, post):
        return self.filter(post_type=ContentType.objects.get_for_model(post), post_id=str(post.pk))

    def approved(self):
        """Links whose result is its section's approved image now."""
        return self.filter(result__approved_for__isnull=False)


class PublishedImage(models.Model):
    """One blogimages result, published as one django-filer image.

    ``result`` is unique, so approving the same result again (a double click, a retried
    hook, a re-approval after a rejection with ``ON_UNAPPROVE = "keep"``) finds this row
    and never makes a second filer image. Deleting the image in filer deletes the link;
    the next approval of the result makes a fresh one.
    """

    result = models.OneToOneField(
        "blogimages.ImageGenerationResult",
        models.CASCADE,
        related_name="filer_image_link",
        verbose_name=_("generation result"),
    )
    image = models.OneToOneField(
        FILER_IMAGE_MODEL, models.CASCADE, related_name="blogimages_source", verbose_name=_("filer image")
    )
    post_type = models.ForeignKey(ContentType, models.CASCADE, related_name="+", verbose_name=_("post type"))
    post_id = models.CharField(_("post id"), max_length=64)
    section_key = models.CharField(_("section key"), max_length=128, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = PublishedImageQuerySet.as_manager()

    class Meta:
        verbose_name = _("published filer image")
        indexes = [models.Index(fields=["post_type", "post_id", "section_key"], name="blogimages_cms_post_section")]

    def __str__(self) -> str:
        return f"Result #{self.result_id} as filer image #{self.image_id}"
