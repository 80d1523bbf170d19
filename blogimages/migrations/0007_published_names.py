# Approved images published under readable names (blogimages.naming).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("blogimages", "0006_request_keys")]

    operations = [
        migrations.AddField(
            model_name="imagegenerationresult",
            name="published_image",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="The readable copy public pages serve, e.g. …/published/post-section.webp.",
                max_length=300,
                verbose_name="published image",
            ),
        ),
        migrations.AddField(
            model_name="imagegenerationresult",
            name="published_slug",
            field=models.SlugField(
                blank=True, editable=False, max_length=120, null=True, unique=True, verbose_name="published slug"
            ),
        ),
    ]
