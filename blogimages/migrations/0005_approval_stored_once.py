# Approval is stored once: SectionReview.approved_result (one-to-one, so the database
# still holds "one approved image per section"). ImageGenerationResult.is_approved was a
# copy kept in step by hand; it goes, with the partial unique constraint built on it.
# Nothing to move: every approved flag had its review's approved_result pointing at it.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("blogimages", "0004_drop_host_foreign_keys")]

    operations = [
        migrations.RemoveConstraint(model_name="imagegenerationresult", name="blogimages_one_approved_per_section"),
        migrations.RemoveField(model_name="imagegenerationresult", name="is_approved"),
    ]
