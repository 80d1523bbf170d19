"""``manage.py blogimages_migrate_settings``: fill ImageSetting fields from legacy freeform text.

Safe to rerun: a setting is parsed once (``legacy_parsed_at``), the legacy text is never
changed, settings an editor structured by hand are left alone unless ``--force``, and a
run is one transaction, so an error leaves the database as it was.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError, transaction
from django.utils import timezone

from blogimages.chunks import keyset
from blogimages.legacy import LegacyParse, parse_legacy_text
from blogimages.management.base import BlogImagesCommand
from blogimages.models import ImageSetting

NAME_MAX = ImageSetting._meta.get_field("name").max_length
SUMMARY_ORDER = ("parsed", "partial", "unparsable", "skipped")
SUMMARY_LABELS = {"parsed": "parsed", "partial": "partly parsed", "unparsable": "unparsable", "skipped": "skipped"}


class BadInput(CommandError):
    """The file cannot be read; one sentence says where and why (exit status 2)."""

    def __init__(self, message: str):
        super().__init__(f"{message} Nothing was changed.", returncode=2)


@dataclass
class Row:
    name: str
    text: str
    setting: ImageSetting | None
    source: str  # "database" or "file line N"
    parse: LegacyParse | None = None
    outcome: str = ""  # parsed / partial / unparsable / skipped
    reason: str = ""
    changes: list[str] = field(default_factory=list)


class Command(BlogImagesCommand):
    help = (
        "Fill the structured fields of image settings (size, steps, guidance, sampler, seed, ...) from the "
        "freeform text of an older system. Reads ImageSetting.legacy_text of settings not yet migrated, or an "
        "export file (--from-file). Shows a table and a summary (parsed, partly parsed, unparsable, skipped); "
        "--format json prints one object per setting. Rerunning changes nothing; the legacy text is kept "
        "verbatim; one transaction per run. Exit status: 0 done, 1 the database refused a row (nothing "
        "changed), 2 bad arguments or a bad file (nothing changed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-file",
            metavar="PATH",
            help='Import settings from an export of the old system: JSON lines ({"name": ..., "text": ...} a '
            "line) or CSV with 'name' and 'text' columns. Creates or updates settings by name.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would change and change nothing.")
        parser.add_argument(
            "--format",
            choices=("table", "json"),
            default="table",
            help="table (default): a readable table and a summary; json: one JSON object a line per setting.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also parse settings an editor already structured by hand, and re-parse migrated ones. The "
            "fields the text names are overwritten; other fields are kept.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.dry_run: bool = options["dry_run"]
        self.force: bool = options["force"]
        self.as_json = options["format"] == "json"
        self.verbosity: int = options["verbosity"]
        self.now = timezone.now()
        self.counts = dict.fromkeys(SUMMARY_ORDER, 0)
        path = options["from_file"]
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise BadInput(f"{path} is not a readable file.")
        self.header_shown = False
        try:
            with transaction.atomic():
                rows = self._file_rows(path) if path else self._database_rows()
                for row in rows:
                    self._process(row)
                if self.dry_run:
                    transaction.set_rollback(True)  # belt and braces: the dry run writes nothing anyway
        except _RowRefused as exc:
            raise CommandError(
                f"The database refused setting {exc.name!r}: {exc.error}. Nothing was changed.", returncode=1
            ) from exc
        self._summary(from_file=path is not None)

    # --- sources ----------------------------------------------------------------------

    def _database_rows(self) -> Iterator[Row]:
        queryset = ImageSetting.objects.exclude(legacy_text="").order_by("pk")
        if not self.force:
            queryset = queryset.filter(legacy_parsed_at__isnull=True)
        # Locked for the run so an editor's save cannot interleave with ours (a no-op on SQLite).
        for setting in keyset(queryset.select_for_update(), size=500):
            yield Row(name=setting.name, text=setting.legacy_text, setting=setting, source="database")

    def _file_rows(self, path: Path) -> Iterator[Row]:
        seen: dict[str, tuple[str, int]] = {}
        for number, name, text in _read_file(path):
            if not name:
                raise BadInput(f"{path} line {number}: the name is empty.")
            if len(name) > NAME_MAX:
                raise BadInput(f"{path} line {number}: the name is longer than {NAME_MAX} characters.")
            if name in seen:
                if seen[name][0] != text:
                    raise BadInput(
                        f"{path} line {number}: {name!r} already appears on line {seen[name][1]} with a "
                        "different text; keep one of them."
                    )
                continue
            seen[name] = (text, number)
            setting = ImageSetting.objects.select_for_update().filter(name=name).first()
            yield Row(name=name, text=text, setting=setting, source=f"line {number}")

    # --- one setting ------------------------------------------------------------------------

    def _process(self, row: Row) -> None:
        setting = row.setting
        row.parse = parse_legacy_text(row.text)
        if setting is not None and setting.legacy_text and setting.legacy_text != row.text:
            # The legacy text is the record of what the old system said: never replaced.
            self._skip(row, "it already holds a different legacy text, which is kept")
            return
        if setting is not None and not self.force:
            if setting.legacy_parsed_at is not None:
                self._skip(row, "already migrated")
                return
            if setting.is_structured:
                if not setting.legacy_text and not self.dry_run:
                    self._save(row, setting, ["legacy_text"], legacy_text=row.text)
                self._skip(row, "structured by hand (use --force to parse it anyway)")
                return
        row.changes = self._apply(row, setting)
        if setting is not None and not row.changes:
            self._skip(row, "already migrated, nothing would change")
            return
        row.outcome = {"empty": "parsed"}.get(row.parse.status, row.parse.status)
        self.counts[row.outcome] += 1
        self._report(row)

    def _apply(self, row: Row, setting: ImageSetting | None) -> list[str]:
        """Work out the new values; write them unless this is a dry run. Returns the changed fields."""
        parse = row.parse
        assert parse is not None
        values: dict[str, Any] = dict(parse.fields)
        base_extra = {k: v for k, v in ((setting.extra_settings or {}) if setting else {}).items() if k != "unparsed"}
        values["extra_settings"] = {**base_extra, **parse.extra_settings}
        values["legacy_warnings"] = list(parse.warnings)
        if setting is None:
            if not self.dry_run:
                try:
                    row.setting = ImageSetting.objects.create(
                        name=row.name, legacy_text=row.text, legacy_parsed_at=self.now, **values
                    )
                except DatabaseError as exc:
                    raise _RowRefused(row.name, exc) from exc
            return ["created"]
        changed = [name for name, value in values.items() if getattr(setting, name) != value]
        if not setting.legacy_text:
            values["legacy_text"] = row.text
            changed.append("legacy_text")
        if setting.legacy_parsed_at is None:
            changed.append("legacy_parsed_at")
        if changed and not self.dry_run:
            values["legacy_parsed_at"] = self.now
            self._save(row, setting, [*values], **values)
        return changed

    def _save(self, row: Row, setting: ImageSetting, names: list[str], **values: Any) -> None:
        for name, value in values.items():
            setattr(setting, name, value)
        try:
            setting.save(update_fields=[*dict.fromkeys([*names, "updated_at"])])
        except DatabaseError as exc:
            raise _RowRefused(row.name, exc) from exc

    def _skip(self, row: Row, reason: str) -> None:
        row.outcome, row.reason = "skipped", reason
        self.counts["skipped"] += 1
        self._report(row)

    # --- output --------------------------------------------------------------------------------

    def _report(self, row: Row) -> None:
        parse = row.parse
        assert parse is not None
        if self.as_json:
            record = {
                "id": row.setting.pk if row.setting is not None else None,
                "name": row.name,
                "fields": parse.fields,
                "extra_settings": parse.extra_settings,
                "warnings": parse.warnings,
                "status": row.outcome,
            }
            if row.reason:
                record["reason"] = row.reason
            self.stdout.write(json.dumps(record, ensure_ascii=False))
            return
        if self.verbosity < 1:
            return
        if not self.header_shown:
            self.stdout.write(f"{'ID':>6}  {'NAME':<28}  {'RESULT':<13}  FIELDS")
            self.header_shown = True
        ident = str(row.setting.pk) if row.setting is not None and row.setting.pk else "new"
        shown = " ".join(f"{k}={_short(v)}" for k, v in parse.fields.items()) or "-"
        extra = {k: v for k, v in parse.extra_settings.items() if k != "unparsed"}
        if extra:
            shown += "  extra: " + " ".join(f"{k}={_short(v)}" for k, v in extra.items())
        style = {"parsed": self.style.SUCCESS, "partial": self.style.WARNING, "unparsable": self.style.ERROR}.get(
            row.outcome, lambda s: s
        )
        label = SUMMARY_LABELS[row.outcome]
        self.stdout.write(f"{ident:>6}  {_short(row.name, 28):<28}  {style(f'{label:<13}')}  {shown}")
        if row.reason:
            self.stdout.write(f"{'':>6}  {'':<28}  {'':<13}  ({row.reason})")
        else:
            for warning in parse.warnings:
                self.stdout.write(f"{'':>6}  {'':<28}  {'':<13}  ! {warning}")

    def _summary(self, *, from_file: bool) -> None:
        if self.as_json:
            return
        parts = ", ".join(f"{SUMMARY_LABELS[k]} {self.counts[k]}" for k in SUMMARY_ORDER)
        total = sum(self.counts.values())
        if total == 0 and not from_file:
            done = ImageSetting.objects.exclude(legacy_parsed_at=None).count()
            self.stdout.write(
                self.style.SUCCESS(f"Nothing to migrate: {done} setting(s) already migrated, none waiting.")
            )
            return
        problems = self.counts["partial"] or self.counts["unparsable"]
        style = self.style.WARNING if problems else self.style.SUCCESS
        self.stdout.write(style(f"{total} setting(s): {parts}."))
        if problems:
            self.stdout.write(
                "Warnings are kept on each setting (legacy_warnings) and anything not understood in "
                "extra_settings['unparsed']; the legacy text is unchanged."
            )
        if self.dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was changed."))


class _RowRefused(Exception):
    def __init__(self, name: str, error: Exception):
        super().__init__(name)
        self.name, self.error = name, error


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the export file -------------------------------------------------------------------------


def _read_file(path: Path) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, name, text) one row at a time, so a bad line stops the run there."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput(f"Cannot open {path}: {exc.strerror}.") from exc
    with handle:
        try:
            first = handle.read(4096)
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text.") from exc
        handle.seek(0)
        if first.lstrip()[:1] in ("{", "["):
            yield from _read_jsonl(path, handle)
        else:
            yield from _read_csv(path, handle)


def _read_jsonl(path: Path, handle: io.TextIOBase) -> Iterator[tuple[int, str, str]]:
    number = 0
    while True:
        try:
            line = handle.readline()
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} line {number + 1}: not UTF-8 text.") from exc
        if not line:
            return
        number += 1
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise BadInput(f"{path} line {number}: not valid JSON ({getattr(exc, 'msg', exc)}).") from exc
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise BadInput(f'{path} line {number}: each line must be an object with a "name" and a "text" string.')
        text = data.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise BadInput(f'{path} line {number}: "text" must be a string.')
        yield number, data["name"].strip(), text


def _read_csv(path: Path, handle: io.TextIOBase) -> Iterator[tuple[int, str, str]]:
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is neither JSON lines nor readable CSV ({exc}).") from exc
    if header is None:
        return
    columns = [c.strip().lower() for c in header]
    if "name" not in columns or "text" not in columns:
        raise BadInput(
            f"{path}: a CSV file needs 'name' and 'text' columns (found: {', '.join(columns) or 'none'}); "
            'JSON lines files need one {"name": ..., "text": ...} object a line.'
        )
    name_at, text_at = columns.index("name"), columns.index("text")
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadInput(f"{path} line {reader.line_num}: cannot be read as CSV ({exc}).") from exc
        if not any(cell.strip() for cell in record):
            continue
        if len(record) <= max(name_at, text_at):
            raise BadInput(f"{path} line {reader.line_num}: has {len(record)} column(s), expected {len(columns)}.")
        yield reader.line_num, record[name_at].strip(), record[text_at]
