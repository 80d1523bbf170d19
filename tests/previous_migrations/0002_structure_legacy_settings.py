# Data migration: fill ImageSetting's structured fields from legacy_text for the rows
# present at upgrade time, as `manage.py blogimages_migrate_settings` does. Rows an editor
# already structured by hand, and rows already migrated, are left alone; the legacy text
# is never changed. Reverse is a no-op (the legacy text still holds everything).
#
# It uses the historical model (apps.get_model) and writes only fields that model has,
# so it keeps working when ImageSetting changes later. The parser is imported through
# its stable entry point blogimages.legacy.parse_legacy_text; should that ever go away,
# the migration does nothing and says to run the command instead.

import logging

from django.db import migrations
from django.utils import timezone

logger = logging.getLogger("blogimages.migrations")

STRUCTURED = ("model", "width", "height", "steps", "guidance_scale", "sampler", "scheduler", "seed", "negative_prompt")


def structure_legacy_settings(apps, schema_editor):
    try:
        from blogimages.legacy import parse_legacy_text
    except ImportError:  # pragma: no cover - only if the parser is removed in a later version
        logger.warning("blogimages.legacy is unavailable; run manage.py blogimages_migrate_settings instead.")
        return
    ImageSetting = apps.get_model("blogimages", "ImageSetting")
    have = {f.name for f in ImageSetting._meta.get_fields()}
    fields = [name for name in STRUCTURED if name in have]
    now = timezone.now()
    db = schema_editor.connection.alias
    rows = ImageSetting.objects.using(db).filter(legacy_parsed_at__isnull=True).exclude(legacy_text="").order_by("pk")
    migrated = 0
    for setting in rows.iterator(chunk_size=500):
        extra = setting.extra_settings or {}
        hand_made = any(getattr(setting, name) not in (None, "") for name in fields) or any(
            key != "unparsed" for key in extra
        )
        if hand_made:
            continue  # an editor's own values win; the command's --force can override later
        parsed = parse_legacy_text(setting.legacy_text)
        update = ["extra_settings", "legacy_warnings", "legacy_parsed_at"]
        new_extra = dict(parsed.extra_settings)
        for name, value in parsed.fields.items():
            if name in fields:
                setattr(setting, name, value)
                update.append(name)
            else:
                new_extra[name] = value  # a field this schema lacks: keep the value, don't drop it
        setting.extra_settings = new_extra
        setting.legacy_warnings = list(parsed.warnings)
        setting.legacy_parsed_at = now
        if "updated_at" in have:
            update.append("updated_at")
        setting.save(update_fields=update)
        migrated += 1
    if migrated:
        logger.info("Structured %s legacy image setting(s).", migrated)


class Migration(migrations.Migration):

    dependencies = [
        ("blogimages", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(structure_legacy_settings, migrations.RunPython.noop, elidable=True),
    ]
