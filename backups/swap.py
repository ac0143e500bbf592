"""The atomic part of a restore: database rows in one transaction, the data directory in one rename.

Order (each step keeps the previous state until the last one succeeds):

1. in ONE transaction: read what must be carried forward from the live rows
   (`backups.carry_forward`), suspend the audit table's append-only triggers (the
   audit app's sanctioned `audit.maintenance.triggers_suspended`, which restores them
   before the transaction ends), delete every row of every backed-up table (but the
   audit table when the live trail is kept), insert the staged rows in batches, reset
   PostgreSQL's sequences, carry the live revocations and CRLs forward, check every
   foreign key (`check_constraints`), verify the resulting audit chain, and append the
   `backup.restore` event to it (so the chain still verifies and the event carries
   this restore's id);
2. still before the commit: write a journal beside the data directory, then swap the
   staged data directory and the live one with one `renameat2(RENAME_EXCHANGE)` (two
   renames where the kernel lacks it); the staged directory carries a marker file
   with the restore id;
3. commit. If anything before the commit fails, the transaction rolls back and the
   directories are exchanged back;
4. after the commit: delete the previous data directory (now in the staging place),
   the marker and the journal.

A crash can only stop the process between two of these steps. The database then has
rolled back (or committed) by itself; `recover_interrupted_restore` reads the journal
and decides from facts, not guesses: the restore committed iff the audit trail holds
the `backup.restore` event with the journal's restore id, and the live data
directory is the new one iff it holds the marker. It then completes or undoes the
file swap. Every restore runs it first (under the exclusive lock), `restore_database
--recover` runs it on demand, and a backup refuses to start while a journal exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections

from audit.actions import AuditAction
from audit.maintenance import triggers_suspended
from audit.models import AuditEvent
from audit.verification import verify_chain
from backups import carry_forward
from backups.archive import TableSpec, decode_row
from backups.carry_forward import CarriedForward
from backups.errors import BackupError
from backups.validation import StagedBackup
from certificates.vault.storage import fsync_directory

INSERT_BATCH = 500
MARKER = ".pki-restore-marker"
JOURNAL_FORMAT = "pki-restore-journal/1"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def journal_path(data_dir: Path) -> Path:
    return data_dir.parent / f".{data_dir.name}.restore-journal.json"


def staging_root(data_dir: Path, restore_id: str) -> Path:
    """The staging directory: a sibling of the data directory, so a rename swaps them atomically."""
    return data_dir.parent / f".{data_dir.name}.restore-{restore_id}"


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class RowPlan:
    """How the rows are replaced: whether the audit table stays live, and what the backup holds."""

    keep_live_audit: bool  # the backup's trail is a prefix of the live one: the live trail stays as it is
    check_anchor: bool  # the anchor still describes the resulting trail (not after a replaced trail)
    backup_fingerprints: set[str]
    backup_crl_numbers: dict[str, int]


def replace_rows(staged: StagedBackup, checkpoint: Callable[[str], None],
                 progress: Callable[[str, int, int | None], None], plan: RowPlan) -> tuple[dict[str, int],
                                                                                      CarriedForward]:
    """Inside the caller's transaction: every table emptied and refilled from the staged rows, then what must
    not go back carried forward from the live rows (`backups.carry_forward`)."""
    connection = connections[DEFAULT_DB_ALIAS]
    counts: dict[str, int] = {}
    published = _published_crl_numbers()
    live = carry_forward.capture(plan.backup_fingerprints, plan.backup_crl_numbers)
    tables = [spec for spec in staged.tables if not (plan.keep_live_audit and spec.model is AuditEvent)]
    with triggers_suspended(DEFAULT_DB_ALIAS), connection.cursor() as cursor:
        for spec in reversed(tables):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(spec.db_table)}")  # noqa: S608
        _delete_sessions(cursor)
        checkpoint("delete_rows")
        for index, spec in enumerate(tables, start=1):
            counts[spec.label] = _insert_table(cursor, staged, spec)
            progress("tables", index, len(tables))
        checkpoint("insert_rows")
    _keep_crl_numbers_growing(published)
    carried = carry_forward.apply(live)
    _reset_sequences([spec.model for spec in tables])  # past the ids inserted, carried-forward rows' included
    connection.check_constraints(table_names=[spec.db_table for spec in staged.tables])
    checkpoint("check_constraints")
    result = verify_chain(use_anchor=plan.check_anchor)
    if not result.ok:
        raise BackupError(f"The audit trail does not verify after the restore: {result.broken.message}",
                          code="broken_audit")
    return counts, carried


def _delete_sessions(cursor) -> None:
    """Django sessions are not backed up; none may outlive the users they belonged to."""
    if apps.is_installed("django.contrib.sessions"):
        from django.contrib.sessions.models import Session

        cursor.execute(f"DELETE FROM {connections[DEFAULT_DB_ALIAS].ops.quote_name(Session._meta.db_table)}")  # noqa: S608


def _insert_table(cursor, staged: StagedBackup, spec: TableSpec) -> int:
    connection = connections[DEFAULT_DB_ALIAS]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in spec.fields)
    placeholders = ", ".join(["%s"] * len(spec.fields))
    sql = f"INSERT INTO {connection.ops.quote_name(spec.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    count, batch = 0, []
    with staged.member_path(spec.member).open("rb") as handle:
        for line in handle:
            values = decode_row(spec, line)
            batch.append([field.get_db_prep_save(value, connection) for field, value in zip(spec.fields, values,
                                                                                              strict=True)])
            if len(batch) >= INSERT_BATCH:
                cursor.executemany(sql, batch)
                count, batch = count + len(batch), []
    if batch:
        cursor.executemany(sql, batch)
        count += len(batch)
    return count


def _reset_sequences(model_list: list) -> None:
    """Explicit ids were inserted: move PostgreSQL's sequences past them (nothing to do on SQLite)."""
    connection = connections[DEFAULT_DB_ALIAS]
    statements = connection.ops.sequence_reset_sql(no_style(), model_list)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _published_crl_numbers() -> dict[str, int]:
    """The live CRL number of every CA, by its certificate's fingerprint (the CA's identity across installs)."""
    from certificates.models import CertificateAuthority

    return dict(CertificateAuthority.objects.values_list("certificate__fingerprint_sha256", "crl_number"))


def _keep_crl_numbers_growing(published: dict[str, int]) -> None:
    """The one deliberate difference from the backed-up state: a CA's CRL number never goes back.

    RFC 5280 5.2.3: CRL numbers are monotonically increasing. CRLs numbered after the
    backup was taken have already been published and cached by relying parties; if
    the restored counter were lower, the next CRL would reuse one of those numbers with
    other content. So a CA that exists both live and in the backup keeps the higher
    counter (the trigger of certificates 0002 allows only growth anyway).
    """
    from certificates.models import CertificateAuthority

    for ca in CertificateAuthority.objects.select_related("certificate").only(
            "crl_number", "certificate__fingerprint_sha256"):
        live = published.get(ca.certificate.fingerprint_sha256)
        if live is not None and live > ca.crl_number:
            CertificateAuthority.objects.filter(pk=ca.pk).update(crl_number=live)


# --------------------------------------------------------------------------- data directory


@dataclass
class DataDirSwap:
    """Exchanges the live data directory with the staged one, and back."""

    data_dir: Path
    staged_dir: Path
    restore_id: str
    exchanged: bool = False

    def prepare(self) -> None:
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700, parents=True)
        (self.staged_dir / MARKER).write_text(self.restore_id, encoding="utf-8")
        write_journal(self.data_dir, {"format": JOURNAL_FORMAT, "restore_id": self.restore_id,
                                      "data_dir": str(self.data_dir), "other": str(self.staged_dir)})

    def exchange(self) -> None:
        exchange_directories(self.data_dir, self.staged_dir)
        self.exchanged = not self.exchanged

    def undo(self) -> None:
        """Before the commit: the previous directory back in place, the staged one and the journal gone."""
        if self.exchanged:
            self.exchange()
        with contextlib.suppress(FileNotFoundError):
            (self.staged_dir / MARKER).unlink()
        journal_path(self.data_dir).unlink(missing_ok=True)

    def finish(self) -> None:
        """After the commit: drop the previous directory (now at the staging place), marker and journal."""
        shutil.rmtree(self.staged_dir.parent if _is_staging_root(self.data_dir, self.staged_dir.parent)
                      else self.staged_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / MARKER).unlink()
        fsync_directory(self.data_dir)
        journal_path(self.data_dir).unlink(missing_ok=True)
        fsync_directory(self.data_dir.parent)


def exchange_directories(first: Path, second: Path) -> None:
    """Swap two directories atomically (Linux `renameat2(RENAME_EXCHANGE)`), else with three renames."""
    if not _renameat2_exchange(first, second):
        parking = first.with_name(first.name + ".swap")
        os.rename(first, parking)
        os.rename(second, first)
        os.rename(parking, second)
    fsync_directory(first.parent)


def _renameat2_exchange(first: Path, second: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(first))


def write_journal(data_dir: Path, content: dict[str, str]) -> None:
    path = journal_path(data_dir)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


# --------------------------------------------------------------------------- recovery


def _is_staging_root(data_dir: Path, candidate: Path) -> bool:
    return candidate.parent == data_dir.parent and candidate.name.startswith(f".{data_dir.name}.restore-")


def sweep_staging_directories(data_dir: Path) -> list[str]:
    """Remove staging directories a dead restore left behind (call only under the exclusive restore lock)."""
    removed = []
    if data_dir.parent.is_dir():
        for entry in data_dir.parent.iterdir():
            if entry.is_dir() and not entry.is_symlink() and _is_staging_root(data_dir, entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
    return removed


def recover_interrupted_restore(data_dir: Path) -> str | None:
    """Complete or undo a restore whose process died mid-swap; return what was done, or None.

    Without a journal there is nothing to decide: a restore that died before writing it
    had not touched live data, and its staging directory is simply removed.
    """
    path = journal_path(data_dir)
    if not path.exists():
        swept = sweep_staging_directories(data_dir)
        return f"Removed {len(swept)} staging directories of an interrupted restore." if swept else None
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
        restore_id, other = str(journal["restore_id"]), Path(journal["other"])
    except (ValueError, KeyError, TypeError, OSError):
        raise BackupError(f"The restore journal {path.name} is unreadable; inspect it by hand.",
                          code="bad_journal") from None
    new_is_live = _marker(data_dir) == restore_id
    if _restore_committed(restore_id):
        if not new_is_live and other.exists():
            exchange_directories(data_dir, other)
        outcome = "completed"
    else:
        if new_is_live and other.exists():
            exchange_directories(data_dir, other)
        outcome = "rolled back"
    DataDirSwap(data_dir, other, restore_id).finish()
    sweep_staging_directories(data_dir)
    return f"An interrupted restore ({restore_id}) was {outcome}."


def _marker(directory: Path) -> str | None:
    try:
        return (directory / MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _restore_committed(restore_id: str) -> bool:
    return AuditEvent.objects.filter(action=AuditAction.BACKUP_RESTORE.value,
                                     details__restore_id=restore_id).exists()
