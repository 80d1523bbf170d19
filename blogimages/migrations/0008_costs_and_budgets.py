# Cost: each result's estimated cost and the month it counts against, and the per-month
# budget lock rows that budget checks take in turn (blogimages.costs).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("blogimages", "0007_published_names")]

    operations = [
        migrations.AddField(
            model_name="imagegenerationresult",
            name="charged_at",
            field=models.DateTimeField(
                blank=True,
                db_index=True,
                editable=False,
                help_text="When it was last sent to the queue: the month whose budget it counts against.",
                null=True,
                verbose_name="charged",
            ),
        ),
        migrations.AddField(
            model_name="imagegenerationresult",
            name="cost_currency",
            field=models.CharField(default="USD", editable=False, max_length=3, verbose_name="currency"),
        ),
        migrations.AddField(
            model_name="imagegenerationresult",
            name="cost_estimate",
            field=models.DecimalField(
                blank=True, decimal_places=6, editable=False, max_digits=12, null=True, verbose_name="estimated cost"
            ),
        ),
        migrations.CreateModel(
            name="BudgetLock",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("scope", models.CharField(max_length=64, verbose_name="budget")),
                ("month", models.DateField(verbose_name="month")),
            ],
            options={
                "verbose_name": "budget lock",
                "constraints": [
                    models.UniqueConstraint(fields=("scope", "month"), name="blogimages_one_budget_lock_per_month")
                ],
            },
        ),
    ]
