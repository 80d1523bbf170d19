# Host adapters, part 2: drop the foreign-key columns 0003 moved from, and give the new
# columns their final names and rules. A migration of its own because PostgreSQL refuses
# to ALTER a table in the transaction that just updated rows with deferred constraints.

from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [("blogimages", "0003_post_references")]

    operations = [
        # 3. Drop the foreign-key columns and what was built on them.
        migrations.RemoveConstraint(model_name="imagegenerationresult", name="blogimages_one_approved_per_section"),
        migrations.RemoveIndex(model_name="imagegenerationresult", name="blogimages__section_0d55e6_idx"),
        migrations.RemoveField(model_name="imagegenerationresult", name="legacy_section"),
        migrations.RemoveField(model_name="imagegenerationresult", name="legacy_post"),
        migrations.RemoveField(model_name="sectionreview", name="legacy_section"),
        migrations.RemoveField(model_name="sectionreview", name="legacy_post"),
        migrations.RemoveField(model_name="postimagesettings", name="legacy_post"),
        # 4. The new columns take the names, and the rules, the old ones had.
        migrations.RenameField(model_name="sectionreview", old_name="post_ref", new_name="post_id"),
        migrations.RenameField(model_name="postimagesettings", old_name="post_ref", new_name="post_id"),
        migrations.AlterField(
            model_name="sectionreview",
            name="post_id",
            field=models.CharField(db_index=True, max_length=64, verbose_name="post id"),
        ),
        migrations.AlterField(
            model_name="postimagesettings",
            name="post_id",
            field=models.CharField(db_index=True, max_length=64, verbose_name="post id"),
        ),
        migrations.AlterField(
            model_name="sectionreview",
            name="post_type",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="contenttypes.contenttype",
                verbose_name="post type",
            ),
        ),
        migrations.AlterField(
            model_name="postimagesettings",
            name="post_type",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="contenttypes.contenttype",
                verbose_name="post type",
            ),
        ),
        migrations.AddConstraint(
            model_name="sectionreview",
            constraint=models.UniqueConstraint(
                fields=("post_type", "post_id", "section_key"), name="blogimages_one_review_per_section"
            ),
        ),
        migrations.AddConstraint(
            model_name="postimagesettings",
            constraint=models.UniqueConstraint(
                fields=("post_type", "post_id"), name="blogimages_one_settings_per_post"
            ),
        ),
        migrations.AddConstraint(
            model_name="imagegenerationresult",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_approved", True)),
                fields=("review",),
                name="blogimages_one_approved_per_section",
            ),
        ),
        migrations.AddIndex(
            model_name="imagegenerationresult",
            index=models.Index(fields=["review", "status"], name="blogimages_review_status_idx"),
        ),
    ]
