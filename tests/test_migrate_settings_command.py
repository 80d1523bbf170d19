"""``blogimages_migrate_settings`` end to end: every grammar rule and every sample line go
through the command (from the database and from export files), plus --dry-run,
--format json, idempotence, --force, and the all-or-nothing transaction; and the data
migration 0002 that does the same at upgrade time."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from blogimages.models import ImageSetting
from tests.test_legacy_parser import RULE_CASES, SAMPLE_CASES

ALL_CASES = SAMPLE_CASES + RULE_CASES
FIELDS = ImageSetting.STRUCTURED_FIELDS


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("blogimages_migrate_settings", *args, stdout=out, stderr=io.StringIO(), no_color=True)
    return out.getvalue()


def fail(*args: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        run(*args)
    return info.value


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def snapshot() -> list[dict]:
    return list(ImageSetting.objects.order_by("pk").values())


def assert_matches(setting: ImageSetting, expected: dict) -> None:
    cid = expected["id"]
    for name in FIELDS:
        if name in expected["expect"]:
            assert getattr(setting, name) == expected["expect"][name], (cid, name)
        else:
            assert getattr(setting, name) in (None, ""), (cid, name, getattr(setting, name))
    for key, value in expected["expect_extra"].items():
        assert key in setting.extra_settings, (cid, key)
        if value is not None:
            assert setting.extra_settings[key] == value, (cid, key)
    assert bool(setting.legacy_warnings) == expected["expect_warning"], (cid, setting.legacy_warnings)
    assert setting.legacy_text == expected["text"], cid  # verbatim
    assert setting.legacy_parsed_at is not None, cid


# --- every rule and sample line, through the command ------------------------------------------


@pytest.mark.django_db
def test_every_case_from_an_export_file(tmp_path):
    path = write_jsonl(tmp_path / "export.jsonl", [{"name": c["id"], "text": c["text"]} for c in ALL_CASES])
    out = run("--from-file", path)
    assert ImageSetting.objects.count() == len(ALL_CASES)
    for expected in ALL_CASES:
        assert_matches(ImageSetting.objects.get(name=expected["id"]), expected)
    assert f"{len(ALL_CASES)} setting(s): parsed" in out


@pytest.mark.django_db
def test_every_case_from_the_database():
    for c in ALL_CASES:
        ImageSetting.objects.create(name=c["id"], legacy_text=c["text"])
    out = run("--format", "json")
    records = {r["name"]: r for r in map(json.loads, out.splitlines())}
    # Empty legacy text is nothing to do: those rows are not even looked at.
    with_text = [c for c in ALL_CASES if c["text"]]
    assert set(records) == {c["id"] for c in with_text}
    for expected in with_text:
        setting = ImageSetting.objects.get(name=expected["id"])
        assert_matches(setting, expected)
        record = records[expected["id"]]
        assert record["id"] == setting.pk
        assert record["fields"] == expected["expect"]
        assert record["extra_settings"] == setting.extra_settings
        assert record["warnings"] == setting.legacy_warnings


@pytest.mark.django_db
def test_sample_summary_in_the_table(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"name": c["id"], "text": c["text"]} for c in SAMPLE_CASES])
    out = run("--from-file", path)
    partial = sum(1 for c in SAMPLE_CASES if c["expect_warning"] and c["expect"])
    unparsable = sum(1 for c in SAMPLE_CASES if c["expect_warning"] and not c["expect"])
    parsed = len(SAMPLE_CASES) - partial - unparsable
    assert f"parsed {parsed}, partly parsed {partial}, unparsable {unparsable}, skipped 0." in out
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "RESULT", "FIELDS"]
    row = next(line for line in lines if " too-big " in line)
    assert "partly parsed" in row and "height=1024" in row
    assert any("Width 10000 is outside 64..4096" in line for line in lines)


# --- dry run and JSON ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_from_the_database_changes_nothing():
    for c in SAMPLE_CASES:
        ImageSetting.objects.create(name=c["id"], legacy_text=c["text"])
    before = snapshot()
    out = run("--dry-run")
    assert snapshot() == before
    assert "Dry run: nothing was changed." in out
    assert " plain-dims " in out and "width=1024 height=1024 steps=30 guidance_scale=7.5" in out
    # ...and the real run then does what the dry run showed.
    dry = [json.loads(line) for line in run("--dry-run", "--format", "json").splitlines()]
    assert snapshot() == before
    real = [json.loads(line) for line in run("--format", "json").splitlines()]
    assert dry == real


@pytest.mark.django_db
def test_dry_run_from_a_file_creates_nothing_and_has_null_ids(tmp_path):
    existing = ImageSetting.objects.create(name="plain-dims", legacy_text="1024x1024, 30 steps, cfg 7.5")
    path = write_jsonl(tmp_path / "s.jsonl", [{"name": c["id"], "text": c["text"]} for c in SAMPLE_CASES])
    before = snapshot()
    records = [json.loads(line) for line in run("--from-file", path, "--dry-run", "--format", "json").splitlines()]
    assert snapshot() == before
    assert [r["name"] for r in records] == [c["id"] for c in SAMPLE_CASES]
    for record, expected in zip(records, SAMPLE_CASES, strict=True):
        assert set(record) >= {"id", "name", "fields", "extra_settings", "warnings"}
        assert record["id"] == (existing.pk if expected["id"] == "plain-dims" else None)
        assert record["fields"] == expected["expect"]
        assert bool(record["warnings"]) == expected["expect_warning"]
        for key, value in expected["expect_extra"].items():
            assert record["extra_settings"][key] == value


# --- idempotence, --force, legacy text kept -------------------------------------------------------


@pytest.mark.django_db
def test_second_run_from_the_database_changes_nothing():
    for c in ALL_CASES:
        ImageSetting.objects.create(name=c["id"], legacy_text=c["text"])
    run()
    after_first = snapshot()
    out = run()
    assert snapshot() == after_first  # updated_at and legacy_parsed_at included
    assert "Nothing to migrate" in out
    run("--force")  # re-parsing gives the same values, so even --force writes nothing
    assert snapshot() == after_first


@pytest.mark.django_db
def test_second_import_of_the_same_file_changes_nothing(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"name": c["id"], "text": c["text"]} for c in ALL_CASES])
    run("--from-file", path)
    after_first = snapshot()
    records = [json.loads(line) for line in run("--from-file", path, "--format", "json").splitlines()]
    assert snapshot() == after_first
    assert {r["status"] for r in records} == {"skipped"}
    assert ImageSetting.objects.count() == len(ALL_CASES)


@pytest.mark.django_db
def test_settings_structured_by_hand_are_skipped_unless_force():
    hand = ImageSetting.objects.create(name="hand", legacy_text="512x512, 30 steps", width=1024, height=768)
    out = run()
    hand.refresh_from_db()
    assert (hand.width, hand.height, hand.steps, hand.legacy_parsed_at) == (1024, 768, None, None)
    assert "structured by hand" in out and "skipped 1." in out
    run("--force")
    hand.refresh_from_db()
    assert (hand.width, hand.height, hand.steps) == (512, 512, 30)
    assert hand.legacy_text == "512x512, 30 steps"
    assert hand.legacy_parsed_at is not None


@pytest.mark.django_db
def test_force_keeps_fields_the_text_does_not_name():
    setting = ImageSetting.objects.create(name="s", legacy_text="30 steps", model="my-model", extra_settings={"a": 1})
    run("--force")
    setting.refresh_from_db()
    assert (setting.steps, setting.model, setting.extra_settings) == (30, "my-model", {"a": 1})


@pytest.mark.django_db
def test_an_import_never_replaces_legacy_text(tmp_path):
    kept = ImageSetting.objects.create(name="hero", legacy_text="16:9, 25 steps")
    path = write_jsonl(tmp_path / "s.jsonl", [{"name": "hero", "text": "1:1, 40 steps"}])
    for args in ((), ("--force",)):
        out = run("--from-file", path, *args)
        kept.refresh_from_db()
        assert kept.legacy_text == "16:9, 25 steps"
        assert kept.steps is None
        assert "different legacy text" in out


@pytest.mark.django_db
def test_import_fills_an_existing_setting_without_legacy_text(tmp_path):
    setting = ImageSetting.objects.create(name="hero")
    run("--from-file", write_jsonl(tmp_path / "s.jsonl", [{"name": "hero", "text": "16:9, 25 steps"}]))
    setting.refresh_from_db()
    assert (setting.legacy_text, setting.width, setting.height, setting.steps) == ("16:9, 25 steps", 1344, 768, 25)


# --- all or nothing ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_bad_line_midway_changes_nothing(tmp_path):
    waiting = ImageSetting.objects.create(name="waiting", legacy_text="1024x1024")
    path = tmp_path / "broken.jsonl"
    path.write_text(
        json.dumps({"name": "waiting", "text": "1024x1024"})
        + "\n"
        + json.dumps({"name": "new-one", "text": "30 steps"})
        + "\n"
        + '{"name": "broken", "text": "1024x1024"\n'
        + json.dumps({"name": "after", "text": "cfg 7"})
        + "\n",
        encoding="utf-8",
    )
    before = snapshot()
    error = fail("--from-file", str(path))
    assert error.returncode == 2
    assert "line 3: not valid JSON" in str(error) and "Nothing was changed." in str(error)
    assert snapshot() == before  # line 1's update and line 2's insert were rolled back
    waiting.refresh_from_db()
    assert waiting.legacy_parsed_at is None and waiting.width is None


@pytest.fixture
def refuse_updates_of_boom():
    """A real database trigger that refuses any update of the setting named 'boom'."""
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER refuse_boom BEFORE UPDATE ON blogimages_imagesetting "
                "WHEN OLD.name = 'boom' BEGIN SELECT RAISE(ABORT, 'boom is read-only'); END"
            )
        elif vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
                "IF OLD.name = 'boom' THEN RAISE EXCEPTION 'boom is read-only'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_boom BEFORE UPDATE ON blogimages_imagesetting "
                "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
            )
        else:
            pytest.skip(f"no trigger recipe for {vendor}")
    yield  # the test's transaction drops the trigger again


@pytest.mark.django_db
def test_a_database_error_midway_changes_nothing(refuse_updates_of_boom):
    first = ImageSetting.objects.create(name="first", legacy_text="1024x1024, 30 steps")
    ImageSetting.objects.create(name="boom", legacy_text="512x512")
    ImageSetting.objects.create(name="last", legacy_text="cfg 7")
    before = snapshot()
    error = fail()
    assert error.returncode == 1
    assert "refused setting 'boom'" in str(error) and "Nothing was changed." in str(error)
    assert snapshot() == before
    first.refresh_from_db()
    assert first.width is None and first.legacy_parsed_at is None


# --- file formats and bad files -----------------------------------------------------------------


@pytest.mark.django_db
def test_csv_import_with_bom_quotes_and_newlines(tmp_path):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Name", "Text", "notes"])
    writer.writerow(["yaml", "width: 1024\nheight: 1024\nsteps: 30\nsampler: Euler a", "multi-line"])
    writer.writerow(["commas", "1024x1024, 30 steps, cfg 7.5", ""])
    writer.writerow(["", "", ""])  # blank rows are ignored
    path = tmp_path / "export.csv"
    path.write_text("\ufeff" + buffer.getvalue(), encoding="utf-8")
    run("--from-file", str(path))
    yaml = ImageSetting.objects.get(name="yaml")
    assert (yaml.width, yaml.height, yaml.steps, yaml.sampler) == (1024, 1024, 30, "euler_ancestral")
    assert yaml.legacy_text == "width: 1024\nheight: 1024\nsteps: 30\nsampler: Euler a"
    commas = ImageSetting.objects.get(name="commas")
    assert (commas.steps, commas.guidance_scale) == (30, 7.5)
    assert ImageSetting.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content, message",
    [
        ("title,body\nx,y\n", "needs 'name' and 'text' columns"),
        ('{"name": "", "text": "1024x1024"}\n', "line 1: the name is empty"),
        ('{"name": "' + "n" * 121 + '", "text": "x"}\n', "longer than 120 characters"),
        ('{"name": "a", "text": 5}\n', '"text" must be a string'),
        ('["a", "b"]\n', "must be an object"),
        ('{"name": "a", "text": "x"}\n{"name": "a", "text": "y"}\n', "line 2: 'a' already appears on line 1"),
        ("name,text\na,b,c,d\n", None),  # extra cells are fine
    ],
)
def test_bad_files_say_where_and_why(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    if message is None:
        run("--from-file", str(path))
        assert ImageSetting.objects.filter(name="a", legacy_text="b").exists()
        return
    error = fail("--from-file", str(path))
    assert error.returncode == 2
    assert message in str(error)
    assert ImageSetting.objects.count() == 0


@pytest.mark.django_db
def test_missing_and_binary_files(tmp_path):
    assert fail("--from-file", str(tmp_path / "nope.jsonl")).returncode == 2
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"name,text\n\xff\xfe\x00bad\n")
    error = fail("--from-file", str(binary))
    assert error.returncode == 2 and "UTF-8" in str(error)


@pytest.mark.django_db
def test_same_row_twice_in_a_file_is_read_once(tmp_path):
    row = {"name": "a", "text": "1024x1024"}
    out = run("--from-file", write_jsonl(tmp_path / "s.jsonl", [row, row]), "--format", "json")
    assert len(out.splitlines()) == 1
    assert ImageSetting.objects.get(name="a").width == 1024


def test_help_explains_and_names_exit_statuses():
    from blogimages.management.commands.blogimages_migrate_settings import Command

    text = " ".join(Command().create_parser("manage.py", "blogimages_migrate_settings").format_help().split())
    for option in ("--from-file", "--dry-run", "--format", "--force"):
        assert option in text
    assert "Exit status" in text


# --- the data migration ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_data_migration_structures_rows_present_at_upgrade():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("blogimages", "0001_initial")])
        old_apps = executor.loader.project_state([("blogimages", "0001_initial")]).apps
        Old = old_apps.get_model("blogimages", "ImageSetting")
        for c in SAMPLE_CASES:
            Old.objects.create(name=c["id"], legacy_text=c["text"])
        Old.objects.create(name="by-hand", legacy_text="512x512", width=1024, height=1024)

        executor = MigrationExecutor(connection)
        executor.migrate([("blogimages", "0002_structure_legacy_settings")])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)

    for expected in SAMPLE_CASES:
        setting = ImageSetting.objects.get(name=expected["id"])
        if not expected["text"]:
            assert setting.legacy_parsed_at is None  # nothing to do
            continue
        assert_matches(setting, expected)
    by_hand = ImageSetting.objects.get(name="by-hand")
    assert (by_hand.width, by_hand.height, by_hand.legacy_parsed_at) == (1024, 1024, None)
    # The command agrees with the migration: nothing left to do.
    out = run()
    assert "parsed 0, partly parsed 0, unparsable 0, skipped 1." in out  # only the hand-made one, skipped
