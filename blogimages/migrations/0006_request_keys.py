# Idempotency keys of generate requests (services._claim_request_key): a double click or a
# retried API call finds the first request's results through the unique constraint.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("blogimages", "0005_approval_stored_once"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RequestKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=64, verbose_name="key")),
                ("operation", models.CharField(max_length=200, verbose_name="operation")),
                ("result_ids", models.JSONField(blank=True, default=list, verbose_name="results")),
                (
                    "created_at",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, editable=False, verbose_name="when"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "request key",
                "constraints": [
                    models.UniqueConstraint(fields=("user", "key", "operation"), name="blogimages_one_request_per_key")
                ],
            },
        ),
    ]
