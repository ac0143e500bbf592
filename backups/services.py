"""Backup and restore: the two operations every interface (command, admin route) calls.

`create_backup(output_file, actor)` writes an archive (see `backups.archive`) and records
`backup.create`. `restore_backup(archive_path, actor)` runs the validated, atomic
restore pipeline below and records `backup.restore` in the restored audit chain.
Every refusal is a `BackupError` with a clear message; nothing live is touched
before every check has passed.

Restore pipeline (`RESTORE_STEPS`, in order; `fail_at`/`crash_at` make one of them
fail, for the tests that prove "the old state or the new one, never a mix"):

    lock            exclusive restore lock (`backups.locking`), then recover any interrupted restore
    open            zip integrity, central directory: names, types, counts, sizes, ratios
    extract         stream every member into a private staging directory beside PKI_DATA_DIR
    hashes          the manifest lists exactly the members present, SHA-256 and sizes match
    integrity       PRAGMA integrity_check on a SQLite snapshot, when the archive has one
    migrations      the backup's migration state equals the running one
    artifacts       every artifact sealed under this installation's key, and it opens
    rows            every row decodes and fits the running schema
    delete_rows     (in the transaction) all rows of every table deleted, audit triggers suspended
    insert_rows     the staged rows inserted in batches
    check_constraints  foreign keys checked, audit chain verified
    audit_event     `backup.restore` appended to the restored chain
    swap_files      journal written, data directory exchanged with the staged one
    commit          the last moment inside the transaction; the commit follows
    cleanup         after the commit: key and content caches cleared, the previous data directory, the
                    marker and the journal removed (a failure here leaves leftovers for `--recover`,
                    never a mixed state)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, transaction

from audit.actions import AuditAction
from audit.services import record_event
from backups import validation
from backups.creation import BackupReport, Progress, write_backup
from backups.errors import BackupError, InjectedFailure, SimulatedCrash
from backups.locking import restore_lock
from backups.swap import DataDirSwap, recover_interrupted_restore, replace_rows, staging_root
from certificates.keystore import forget_all_signing_keys
from pki_project.actor import Actor

logger = logging.getLogger(__name__)

RESTORE_STEPS = (
    "lock", "open", "extract", "hashes", "integrity", "migrations", "artifacts", "rows",
    "delete_rows", "insert_rows", "check_constraints", "audit_event", "swap_files", "commit", "cleanup",
)

__all__ = [
    "RESTORE_STEPS",
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "create_backup",
    "recover",
    "restore_backup",
]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


def _data_dir() -> Path:
    return Path(settings.PKI_DATA_DIR)


# --------------------------------------------------------------------------- backup


def create_backup(output_file: IO[bytes], actor: Actor, progress: Progress | None = None) -> BackupReport:
    """Write a consistent backup of the database and the data directory to `output_file`."""
    data_dir = _data_dir()
    with restore_lock(data_dir, exclusive=False):
        report = write_backup(output_file, progress or _no_progress)
    record_event(AuditAction.BACKUP_CREATE, **actor.audit_kwargs(), target_type="backup",
                 details={"rows": report.rows, "artifacts": report.artifacts, "members": report.members,
                          "database_vendor": report.database_vendor})
    return report


def backup_filename(now: dt.datetime | None = None) -> str:
    return f"pki-backup-{(now or dt.datetime.now(dt.UTC)).date().isoformat()}.zip"


# --------------------------------------------------------------------------- restore


@dataclass
class RestoreReport:
    restore_id: str
    source_created_at: str
    source_database_vendor: str
    tables: dict[str, int] = field(default_factory=dict)
    artifacts: int = 0
    recovered: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict[str, object]:
        return {"restore_id": self.restore_id, "source_created_at": self.source_created_at,
                "source_database_vendor": self.source_database_vendor, "rows": self.rows,
                "tables": self.tables, "artifacts": self.artifacts, "warnings": self.warnings}


class _Steps:
    """Reports progress per step and fires the test hooks."""

    def __init__(self, progress: Progress, fail_at: str | None, crash_at: str | None) -> None:
        for hook in (fail_at, crash_at):
            if hook is not None and hook not in RESTORE_STEPS:
                raise ValueError(f"unknown restore step {hook!r}")
        self.progress, self.fail_at, self.crash_at = progress, fail_at, crash_at

    def __call__(self, step: str) -> None:
        self.progress(step, RESTORE_STEPS.index(step) + 1, len(RESTORE_STEPS))
        if step == self.crash_at:
            raise SimulatedCrash(step)
        if step == self.fail_at:
            raise InjectedFailure(step)


def restore_backup(archive_path: Path | str, actor: Actor, progress: Progress | None = None, *,
                   fail_at: str | None = None, crash_at: str | None = None) -> RestoreReport:
    """Validate `archive_path` completely, then replace the database and the data directory atomically."""
    progress = progress or _no_progress
    step = _Steps(progress, fail_at, crash_at)
    data_dir = _data_dir().resolve()
    restore_id = uuid.uuid4().hex
    with restore_lock(data_dir, exclusive=True):
        recovered = recover_interrupted_restore(data_dir)
        step("lock")
        staged = validation.StagedBackup(root=staging_root(data_dir, restore_id), manifest={})
        try:
            staged.root.mkdir(mode=0o700)
            _validate(Path(archive_path), staged, step, progress)
            report = _swap(staged, data_dir, restore_id, actor, step, progress)
        except SimulatedCrash:
            raise  # a "killed" process cleans nothing up; recover_interrupted_restore will
        except BaseException:
            shutil.rmtree(staged.root, ignore_errors=True)  # before the commit it holds only the staged copy
            raise
    report.recovered = recovered
    return report


def _validate(archive_path: Path, staged: validation.StagedBackup, step: Callable[[str], None],
              progress: Progress) -> None:
    with validation.open_archive(archive_path) as archive:
        validation.check_central_directory(archive)
        step("open")
        validation.extract(archive, staged, lambda done, total: progress("extract", done, total))
    step("extract")
    validation.read_manifest(staged)
    validation.check_manifest_mac(staged)
    validation.check_hashes(staged)
    step("hashes")
    validation.check_sqlite_snapshot(staged)
    step("integrity")
    validation.check_migrations(staged)
    step("migrations")
    validation.check_artifacts(staged, lambda done, total: progress("artifacts", done, total))
    step("artifacts")
    validation.check_rows(staged, lambda done, total: progress("rows", done, total))
    step("rows")


def _swap(staged: validation.StagedBackup, data_dir: Path, restore_id: str, actor: Actor,
          step: Callable[[str], None], progress: Progress) -> RestoreReport:
    manifest = staged.manifest
    report = RestoreReport(restore_id, str(manifest.get("created_at", "")), str(manifest.get("database_vendor", "")),
                           artifacts=int(manifest.get("artifacts") or 0))
    files = DataDirSwap(data_dir, staged.data_dir, restore_id)
    staged.data_dir.mkdir(mode=0o700, exist_ok=True)
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            report.tables = replace_rows(staged, step, progress)
            _record_restore(report, actor)
            step("audit_event")
            files.prepare()
            files.exchange()
            step("swap_files")
            step("commit")
    except SimulatedCrash:
        raise
    except BaseException:
        files.undo()
        raise
    _forget_cached_state()
    report.warnings = _clean_up(files, staged, step)
    logger.info("Restored backup of %s: %d rows, %d artifacts (restore %s).", report.source_created_at,
                report.rows, report.artifacts, restore_id)
    return report


def _clean_up(files: DataDirSwap, staged: validation.StagedBackup, step: Callable[[str], None]) -> list[str]:
    """After the commit the restore is done: a failure here leaves only leftovers, never an error."""
    try:
        step("cleanup")
        files.finish()
        shutil.rmtree(staged.root, ignore_errors=True)
    except Exception:
        logger.exception("The restore is complete but its clean-up failed.")
        return ["The restore is complete, but the previous data directory could not be removed; "
                "run `manage.py restore_database --recover` to finish the clean-up."]
    return []


def _record_restore(report: RestoreReport, actor: Actor) -> None:
    record_event(AuditAction.BACKUP_RESTORE, **actor.audit_kwargs(), target_type="backup",
                 details={"restore_id": report.restore_id, "source_created_at": report.source_created_at,
                          "source_database_vendor": report.source_database_vendor, "rows": report.rows,
                          "artifacts": report.artifacts})


def _forget_cached_state() -> None:
    """No process-local state may outlive the data it was derived from."""
    from certificates.services.ocsp import forget_responders

    forget_all_signing_keys()
    forget_responders()  # CA and responder records memoised for the OCSP hot path
    if apps.is_installed("django.contrib.contenttypes"):
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
    for alias in settings.CACHES:
        with contextlib.suppress(Exception):  # a cache that is down must not turn a done restore into an error
            caches[alias].clear()


def recover(actor: Actor | None = None) -> str | None:
    """`restore_database --recover`: finish or undo an interrupted restore, under the restore lock."""
    data_dir = _data_dir().resolve()
    with restore_lock(data_dir, exclusive=True):
        return recover_interrupted_restore(data_dir)

