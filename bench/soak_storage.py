"""The soak's file storage: Django's FileSystemStorage with faults the harness switches on.

The harness writes the fault's name into ``$SOAK_FAULT_DIR/storage`` and removes the file
to stop it; every worker process reads it on each call, so a fault starts and stops
everywhere at once:

* ``refused``: every save and delete raises ``ConnectionRefusedError`` (an ``OSError``,
  as a storage that cannot be reached does);
* ``stalled``: every save and delete waits ``SOAK_STORAGE_STALL_S`` seconds (the bounded
  client timeout, e.g. the example project's S3 ``read_timeout``) and then raises
  ``TimeoutError``, as a bounded client does on a storage that does not answer.

Each fault that hits a job is appended to ``$SOAK_FAULT_DIR/faults.jsonl`` with the
result it hit (from the RQ job's arguments) and the time, for the recovery figure.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django.core.files.storage import FileSystemStorage

FAULTS = ("refused", "stalled")


def fault_dir() -> Path | None:
    value = os.environ.get("SOAK_FAULT_DIR")
    return Path(value) if value else None


def current_fault() -> str:
    """The storage fault now switched on, or ""."""
    folder = fault_dir()
    if folder is None:
        return ""
    try:
        return (folder / "storage").read_text().strip()
    except FileNotFoundError:
        return ""


def record_fault(kind: str, result_id: int | None, **extra: object) -> None:
    """Append one fault to the soak's fault log (one short line: O_APPEND keeps it whole)."""
    folder = fault_dir()
    if folder is None:
        return
    line = json.dumps({"t": time.time(), "kind": kind, "result": result_id, **extra}) + "\n"
    with open(folder / "faults.jsonl", "a") as log:
        log.write(line)


def _current_result_id() -> int | None:
    from rq import get_current_job

    job = get_current_job()
    if job is None or not job.args:
        return None
    try:
        return int(job.args[0])
    except (TypeError, ValueError):
        return None


class FaultyStorage(FileSystemStorage):
    def _fault(self, operation: str, name: str) -> None:
        fault = current_fault()
        if fault not in FAULTS:
            return
        record_fault(f"storage_{fault}", _current_result_id(), operation=operation)
        if fault == "refused":
            raise ConnectionRefusedError(111, "Connection refused", name)
        time.sleep(float(os.environ.get("SOAK_STORAGE_STALL_S", "3")))
        raise TimeoutError(f"storage did not answer {operation} {name} in time")

    def _save(self, name, content):
        self._fault("save", name)
        return super()._save(name, content)

    def delete(self, name):
        self._fault("delete", name)
        return super().delete(name)
