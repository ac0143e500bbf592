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
    hashes          the manifest's MAC, and it lists exactly the members present, SHA-256 and sizes match
    integrity       PRAGMA integrity_check on a SQLite snapshot, when the archive has one
    migrations      the backup's migration state equals the running one
    artifacts       every artifact sealed under this installation's key, and it opens
    rows            every row decodes and fits the running schema
    audit_trail     the backup's audit chain verifies (MACs too); compared with the live trail (`backups.preview`)
    preview         (in the transaction, under the locks) what the restore drops and carries forward; the
                    operator's confirmed preview must still hold, and a diverged trail needs the override
    delete_rows     all rows of every table deleted (the audit table kept when its trail is), triggers suspended
    insert_rows     the staged rows inserted in batches
    check_constraints  live revocations and CRLs carried forward, foreign keys checked, audit chain verified
    audit_event     `backup.restore` appended to the restored chain
    swap_files      journal written, data directory exchanged with the staged one
    commit          the last moment inside the transaction; the commit follows
    cleanup         after the commit: key and content caches cleared, the previous data directory, the
                    marker and the journal removed (a failure here leaves leftovers for `--recover`,
                    never a mixed state), the audit anchor moved to the restore event

`preview_restore(archive_path)` runs the same validation under the shared lock and answers the
`RestorePreview` without changing anything. A refused or failed restore is recorded as a
`backup.restore` failure event, after its transaction rolled back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit.actions import AuditAction
from audit.anchor import advance_anchor, replace_anchor
from audit.export import export_lines
from audit.keys import audit_keys
from audit.models import AuditEvent
from audit.services import lock_chain, record_event
from audit.verification import Checkpoint
from backups import validation
from backups.carry_forward import CarriedForward
from backups.creation import BackupReport, Progress, write_backup
from backups.errors import BackupError, InjectedFailure, SimulatedCrash
from backups.locking import restore_lock
from backups.preview import (
    AUDIT_DIVERGED,
    AUDIT_KEPT,
    Facts,
    RestorePreview,
    backup_facts,
    backup_hash_at,
    build_preview,
    live_facts,
)
from backups.swap import DataDirSwap, RowPlan, recover_interrupted_restore, replace_rows, staging_root
from certificates.signers import forget_all_signing_keys
from pki_project.actor import Actor

logger = logging.getLogger(__name__)
AUDIT_REPLACED = "replaced"  # a diverged trail, replaced by the operator's explicit override

RESTORE_STEPS = (
    "lock", "open", "extract", "hashes", "integrity", "migrations", "artifacts", "rows", "audit_trail",
    "preview", "delete_rows", "insert_rows", "check_constraints", "audit_event", "swap_files", "commit", "cleanup",
)

__all__ = [
    "RESTORE_STEPS",
    "BackupError",
    "BackupReport",
    "RestorePreview",
    "RestoreReport",
    "create_backup",
    "preview_restore",
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
    preview: RestorePreview | None = None
    carried: CarriedForward = field(default_factory=CarriedForward)
    audit_trail: str = ""

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict[str, object]:
        return {"restore_id": self.restore_id, "source_created_at": self.source_created_at,
                "source_database_vendor": self.source_database_vendor, "rows": self.rows,
                "tables": self.tables, "artifacts": self.artifacts, "warnings": self.warnings,
                "audit_trail": self.audit_trail, "carried_forward": self.carried.as_dict(),
                "preview": self.preview.as_dict() if self.preview else None}


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


def preview_restore(archive_path: Path | str, actor: Actor, progress: Progress | None = None) -> RestorePreview:
    """Validate `archive_path` completely and say what restoring it would do; nothing changes.

    An archive refused here is a refused restore, and recorded as one.
    """
    progress = progress or _no_progress
    data_dir = _data_dir().resolve()
    try:
        with restore_lock(data_dir, exclusive=False):
            staged = validation.StagedBackup(root=staging_root(data_dir, f"preview-{uuid.uuid4().hex}"), manifest={})
            try:
                staged.root.mkdir(mode=0o700)
                _validate(Path(archive_path), staged, _Steps(progress, None, None), progress)
                backup = _backup_facts(staged)
                return build_preview(backup, live_facts(), partial(backup_hash_at, staged))
            finally:
                shutil.rmtree(staged.root, ignore_errors=True)
    except BackupError as error:
        _record_refusal(actor, error.code, error.message)
        raise


def restore_backup(archive_path: Path | str, actor: Actor, progress: Progress | None = None, *,
                   expected_digest: str | None = None, replace_audit_trail: bool = False,
                   fail_at: str | None = None, crash_at: str | None = None) -> RestoreReport:
    """Validate `archive_path` completely, then replace the database and the data directory atomically.

    `expected_digest` is the `digest` of the preview the operator confirmed: when the live data
    changed since in a way the preview counts, the restore is refused so they can look again.
    `replace_audit_trail` is the explicit, audited override for a diverged audit trail.
    """
    try:
        return _restore(Path(archive_path), actor, progress or _no_progress, expected_digest, replace_audit_trail,
                        fail_at, crash_at)
    except SimulatedCrash:
        raise  # a "killed" process records nothing
    except BackupError as error:
        _record_refusal(actor, error.code, error.message)
        raise
    except Exception:
        _record_refusal(actor, "restore_failed", "The restore failed; nothing was changed.")
        raise


def _restore(archive_path: Path, actor: Actor, progress: Progress, expected_digest: str | None,
             replace_audit_trail: bool, fail_at: str | None, crash_at: str | None) -> RestoreReport:
    step = _Steps(progress, fail_at, crash_at)
    data_dir = _data_dir().resolve()
    restore_id = uuid.uuid4().hex
    with restore_lock(data_dir, exclusive=True):
        recovered = recover_interrupted_restore(data_dir)
        step("lock")
        staged = validation.StagedBackup(root=staging_root(data_dir, restore_id), manifest={})
        try:
            staged.root.mkdir(mode=0o700)
            _validate(archive_path, staged, step, progress)
            backup = _backup_facts(staged)
            step("audit_trail")
            confirmation = _Confirmation(expected_digest, replace_audit_trail)
            report = _swap(staged, data_dir, restore_id, actor, step, progress, backup, confirmation)
        except SimulatedCrash:
            raise  # a "killed" process cleans nothing up; recover_interrupted_restore will
        except BaseException:
            shutil.rmtree(staged.root, ignore_errors=True)  # before the commit it holds only the staged copy
            raise
    report.recovered = recovered
    return report


def _backup_facts(staged: validation.StagedBackup) -> Facts:
    backup = backup_facts(staged)
    if backup.audit.broken is not None:
        raise BackupError(f"The backup's audit trail does not verify: {backup.audit.broken.message}",
                          code="broken_audit")
    return backup


@dataclass(frozen=True)
class _Confirmation:
    expected_digest: str | None
    replace_audit_trail: bool

    def check(self, preview: RestorePreview) -> None:
        """The preview the operator confirmed still holds, and a diverged trail is replaced only on purpose."""
        if self.expected_digest is not None and not hmac.compare_digest(self.expected_digest, preview.digest):
            raise BackupError("The live data changed since the preview you confirmed (new revocations, certificates "
                              "or audit events): look at the preview again and confirm it.", code="preview_changed")
        if preview.audit_trail == AUDIT_DIVERGED and not self.replace_audit_trail:
            raise BackupError(preview.lines()[-1], code="audit_trail_diverged")


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
          step: Callable[[str], None], progress: Progress, backup: Facts,
          confirmation: _Confirmation) -> RestoreReport:
    manifest = staged.manifest
    report = RestoreReport(restore_id, str(manifest.get("created_at", "")), str(manifest.get("database_vendor", "")),
                           artifacts=int(manifest.get("artifacts") or 0))
    # Token-held keys are not in the archive: the restored CAs sign only where their token is.
    report.warnings += [str(note) for note in manifest.get("keys_not_in_backup") or [] if isinstance(note, str)]
    files = DataDirSwap(data_dir, staged.data_dir, restore_id)
    staged.data_dir.mkdir(mode=0o700, exist_ok=True)
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            _lock_live_rows()
            live = live_facts()
            report.preview = build_preview(backup, live, partial(backup_hash_at, staged))
            confirmation.check(report.preview)
            report.audit_trail = AUDIT_REPLACED if report.preview.audit_trail == AUDIT_DIVERGED \
                else report.preview.audit_trail
            step("preview")
            plan = RowPlan(keep_live_audit=report.audit_trail == AUDIT_KEPT,
                           check_anchor=report.audit_trail != AUDIT_REPLACED,
                           backup_fingerprints=set(backup.certificates), backup_crl_numbers=backup.crl_numbers)
            if report.audit_trail == AUDIT_REPLACED:
                report.warnings.append(_export_replaced_trail(data_dir, restore_id))
            report.tables, report.carried = replace_rows(staged, step, progress, plan)
            event = _record_restore(report, actor, live)
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
    report.warnings += _clean_up(files, staged, step)
    _move_anchor(event, replaced=report.audit_trail == AUDIT_REPLACED)
    logger.info("Restored backup of %s: %d rows, %d artifacts, audit trail %s (restore %s).",
                report.source_created_at, report.rows, report.artifacts, report.audit_trail, restore_id)
    return report


def replaced_trail_path(data_dir: Path, restore_id: str) -> Path:
    return data_dir.parent / f".{data_dir.name}.replaced-audit-{restore_id}.jsonl"


def _export_replaced_trail(data_dir: Path, restore_id: str) -> str:
    """Before an overriding restore replaces the live trail, keep it: a JSON Lines export beside the data directory."""
    path = replaced_trail_path(data_dir, restore_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for line in export_lines():
            handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return (f"The replaced audit trail was exported to {path}; keep it with the backups "
            "(verify_audit_log --export checks it).")


def _lock_live_rows() -> None:
    """Hold off writers until the commit, so what is carried forward is what is there (PostgreSQL).

    On SQLite the restore's transaction already holds the database's one write lock (BEGIN IMMEDIATE).
    """
    lock_chain()
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return
    from django.contrib.auth import get_user_model

    from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
    from organizations.models import ApiKey, SessionToken

    models_to_lock = (Certificate, CertificateAuthority, CertificateRevocationList, ApiKey, SessionToken,
                      get_user_model())
    tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in models_to_lock)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")


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


def _record_restore(report: RestoreReport, actor: Actor, live: Facts) -> AuditEvent:
    preview = report.preview
    details: dict[str, object] = {
        "restore_id": report.restore_id, "source_created_at": report.source_created_at,
        "source_database_vendor": report.source_database_vendor, "rows": report.rows,
        "artifacts": report.artifacts, "audit_trail": report.audit_trail,
        "carried_forward": report.carried.as_dict(), "preview_digest": preview.digest,
        "dropped": {"certificates": preview.certificates_dropped, "cas": len(preview.cas_dropped),
                    "api_keys": preview.api_keys_dropped, "users": preview.users_dropped},
    }
    if report.audit_trail == AUDIT_REPLACED:  # the override: what the trail was before it was replaced
        details.update(override="replace_audit_trail", replaced_head_seq=live.audit.head_seq,
                       replaced_head_hash=live.audit.head_hash,
                       replaced_trail_broken=preview.live_audit_broken or "")
    return record_event(AuditAction.BACKUP_RESTORE, **actor.audit_kwargs(), target_type="backup", details=details)


def _record_refusal(actor: Actor, code: str, message: str) -> None:
    """A refused restore is on the record too, after its transaction rolled back (never its content)."""
    try:
        record_event(AuditAction.BACKUP_RESTORE, **actor.audit_kwargs(), outcome="failure", target_type="backup",
                     details={"code": code, "reason": message[:300]})
    except Exception:
        logger.exception("A refused restore could not be recorded in the audit trail.")


def _move_anchor(event: AuditEvent, *, replaced: bool) -> None:
    """The trail was verified in the restore's transaction, up to the restore event it appended."""
    checkpoint = Checkpoint.signed(audit_keys(), head_seq=event.seq, head_hash=event.hash, count=event.seq)
    try:
        (replace_anchor if replaced else advance_anchor)(checkpoint)
    except OSError:
        logger.exception("The restore is complete but the audit anchor could not be written.")


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

