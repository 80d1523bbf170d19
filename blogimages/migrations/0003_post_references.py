# Host adapters: blogimages stops pointing foreign keys at the host's blog models.
#
# A section review now names its post by (content type, primary key) and its section by a
# key; generation results hang off their section's review. Existing rows are moved
# without loss: each review keeps its id, status, approval and history (events point at
# the review, which stays), and each result joins the review of the section it was made
# for. Under the default adapter (sections as rows) a section's key is its primary key,
# so the review page finds every section again. Reversible, for sites that step back.

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


def _post_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    label = getattr(settings, "BLOGIMAGES_POST_MODEL", None)
    if not label or "." not in label:
        raise RuntimeError(
            "blogimages 0003 moves section reviews from BLOGIMAGES_POST_MODEL / BLOGIMAGES_SECTION_MODEL "
            "to post references, and this database has reviews or results for sections. Keep both settings "
            "(as before the upgrade) while you migrate; afterwards they configure the default host adapter."
        )
    app_label, model = label.split(".")
    content_type, _ = ContentType.objects.using(schema_editor.connection.alias).get_or_create(
        app_label=app_label, model=model.lower()
    )
    return content_type


def _immediate_constraints(schema_editor):
    # PostgreSQL refuses the indexes this migration creates at its end ("pending trigger
    # events") after rows with deferred foreign keys were updated in the same transaction;
    # checked immediately, the updates leave nothing pending.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def forwards(apps, schema_editor):
    _immediate_constraints(schema_editor)
    db = schema_editor.connection.alias
    SectionReview = apps.get_model("blogimages", "SectionReview")
    Result = apps.get_model("blogimages", "ImageGenerationResult")
    PostImageSettings = apps.get_model("blogimages", "PostImageSettings")
    reviews = SectionReview.objects.using(db)
    results = Result.objects.using(db).filter(legacy_section__isnull=False)
    post_settings = PostImageSettings.objects.using(db)
    if not (reviews.exists() or results.exists() or post_settings.exists()):
        return
    post_type = _post_type(apps, schema_editor)
    reviews.update(post_type=post_type)
    for review in reviews.only("pk", "legacy_post", "legacy_section").iterator(chunk_size=500):
        reviews.filter(pk=review.pk).update(post_ref=str(review.legacy_post), section_key=str(review.legacy_section))
    for row in post_settings.only("pk", "legacy_post").iterator(chunk_size=500):
        post_settings.filter(pk=row.pk).update(post_type=post_type, post_ref=str(row.legacy_post))
    review_of = dict(reviews.values_list("legacy_section", "pk"))
    for section_id, post_id in results.values_list("legacy_section", "legacy_post").distinct():
        if section_id not in review_of:
            # Results made before their review existed (or whose review was deleted by
            # hand) get one, so no image loses its section.
            review_of[section_id] = reviews.create(
                post_type=post_type,
                post_ref=str(post_id),
                section_key=str(section_id),
                legacy_post=post_id,
                legacy_section=section_id,
            ).pk
        results.filter(legacy_section=section_id).update(review_id=review_of[section_id])


def backwards(apps, schema_editor):
    _immediate_constraints(schema_editor)
    db = schema_editor.connection.alias
    SectionReview = apps.get_model("blogimages", "SectionReview")
    Result = apps.get_model("blogimages", "ImageGenerationResult")
    PostImageSettings = apps.get_model("blogimages", "PostImageSettings")
    for review in SectionReview.objects.using(db).iterator(chunk_size=500):
        if not (review.post_ref.isdigit() and review.section_key.isdigit()):
            raise RuntimeError(
                f"Section review #{review.pk} names post {review.post_ref!r}, section {review.section_key!r}: "
                "only reviews made under the default (rows) adapter can go back to foreign keys."
            )
        SectionReview.objects.using(db).filter(pk=review.pk).update(
            legacy_post=int(review.post_ref), legacy_section=int(review.section_key)
        )
        Result.objects.using(db).filter(review_id=review.pk).update(
            legacy_post=int(review.post_ref), legacy_section=int(review.section_key)
        )
    for row in PostImageSettings.objects.using(db).iterator(chunk_size=500):
        PostImageSettings.objects.using(db).filter(pk=row.pk).update(legacy_post=int(row.post_ref))


class Migration(migrations.Migration):
    dependencies = [
        ("blogimages", "0002_structure_legacy_settings"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # 1. New columns beside the old ones (nullable until they are filled).
        migrations.AddField(
            model_name="sectionreview",
            name="post_type",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="contenttypes.contenttype"
            ),
        ),
        migrations.AddField(
            model_name="sectionreview", name="post_ref", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(
            model_name="sectionreview",
            name="section_key",
            field=models.CharField(default="", max_length=128, verbose_name="section key"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="sectionreview",
            name="section_title",
            field=models.CharField(blank=True, max_length=300, verbose_name="section"),
        ),
        migrations.AddField(
            model_name="postimagesettings",
            name="post_type",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="contenttypes.contenttype"
            ),
        ),
        migrations.AddField(
            model_name="postimagesettings", name="post_ref", field=models.CharField(default="", max_length=64)
        ),
        migrations.AddField(
            model_name="imagegenerationresult",
            name="review",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="results",
                to="blogimages.sectionreview",
                verbose_name="section",
            ),
        ),
        # 2. Move the values.
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
