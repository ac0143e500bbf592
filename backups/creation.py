"""Writing a backup: one database snapshot, then the sealed artifacts, then the manifest."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from backups.archive import (
    APP_VERSION,
    DATA_PREFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    SQLITE_SNAPSHOT,
    ArchiveWriter,
    backup_tables,
    write_table,
)
from backups.errors import BackupError
from backups.integrity import manifest_mac
from backups.snapshot import applied_migrations, read_snapshot
from backups.swap import journal_path
from certificates.keystore import artifact_cipher, artifact_store
from certificates.vault import parse_header, read_rotation_journal
from certificates.vault.errors import VaultError

Progress = Callable[[str, int, int | None], None]
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass
class BackupReport:
    created_at: str
    database_vendor: str
    tables: dict[str, int] = field(default_factory=dict)
    artifacts: int = 0
    members: int = 0
    keys_not_in_backup: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict[str, object]:
        return {"created_at": self.created_at, "database_vendor": self.database_vendor, "rows": self.rows,
                "tables": self.tables, "artifacts": self.artifacts, "members": self.members,
                "keys_not_in_backup": self.keys_not_in_backup}


def token_key_notes(alias: str) -> list[str]:
    """One line per CA whose key is on a PKCS#11 token (`signers.custody_note`): not in any backup."""
    from certificates.models import CertificateAuthority
    from certificates.signers import PKCS11, custody_note

    return [note for ca in CertificateAuthority.objects.using(alias).filter(key_backend=PKCS11).order_by("slug")
            if (note := custody_note(ca))]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


def write_backup(output: IO[bytes], progress: Progress | None = None) -> BackupReport:
    """Write the whole archive to `output` (a binary file object opened for writing)."""
    progress = progress or _no_progress
    store = artifact_store()
    if journal_path(store.data_dir).exists():
        raise BackupError("A restore was interrupted; run `manage.py restore_database --recover` before taking a "
                          "backup.", code="restore_interrupted")
    if read_rotation_journal(store.data_dir) is not None:
        raise BackupError("An encryption key rotation is unfinished; complete it before taking a backup.",
                          code="rotation_in_progress")
    key_id = artifact_cipher().key_id
    created_at = dt.datetime.now(dt.UTC).isoformat()
    writer = ArchiveWriter(output)
    try:
        with read_snapshot() as snapshot:
            report = BackupReport(created_at=created_at, database_vendor=snapshot.vendor)
            migrations = applied_migrations(snapshot.alias)
            tables = _write_tables(writer, snapshot.alias, report, progress)
            keys_not_carried = token_key_notes(snapshot.alias)
            if snapshot.sqlite_file is not None:
                with snapshot.sqlite_file.open("rb") as handle:
                    writer.copy_file(SQLITE_SNAPSHOT, handle)
        report.artifacts = _write_artifacts(writer, store.data_dir, list(store.iter_artifacts()), key_id, progress)
        writer.write_manifest({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "app_version": APP_VERSION,
            "created_at": created_at,
            "database_vendor": report.database_vendor,
            "migrations": migrations,
            "encryption_key_id": key_id.hex(),
            "tables": tables,
            "artifacts": report.artifacts,
            # A key held by a PKCS#11 token never leaves it: the backup names where it is instead.
            "keys_not_in_backup": keys_not_carried,
        }, seal=manifest_mac)
        report.members = len(writer.members) + 1
        report.keys_not_in_backup = keys_not_carried
    finally:
        writer.close()
    return report


def _write_tables(writer: ArchiveWriter, alias: str, report: BackupReport, progress: Progress) -> dict[str, dict]:
    specs = backup_tables()
    tables: dict[str, dict] = {}
    for index, spec in enumerate(specs, start=1):
        rows = write_table(writer, spec, alias, on_rows=lambda n, label=spec.label: progress(f"rows {label}", n, None))
        tables[spec.label] = {"table": spec.db_table, "rows": rows, "columns": spec.columns}
        report.tables[spec.label] = rows
        progress("tables", index, len(specs))
    return tables


def _write_artifacts(writer: ArchiveWriter, data_dir: Path, relpaths: list[str], key_id: bytes,
                     progress: Progress) -> int:
    """Copy every sealed artifact as it is on disk, refusing any sealed under another key."""
    for index, relpath in enumerate(relpaths, start=1):
        fd = os.open(data_dir.joinpath(*relpath.split("/")), os.O_RDONLY | _O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            _check_key_id(handle.read(64), key_id, relpath)
            handle.seek(0)
            writer.copy_file(DATA_PREFIX + relpath, handle, compress=False)  # ciphertext does not compress
        progress("artifacts", index, len(relpaths))
    return len(relpaths)


def _check_key_id(head: bytes, key_id: bytes, relpath: str) -> None:
    try:
        header = parse_header(head, relpath)
    except VaultError as error:
        raise BackupError(f"The data directory holds a damaged artifact: {error}", code="damaged_artifact") from None
    if header.key_id != key_id:
        raise BackupError(f"The artifact {relpath} is sealed under another encryption key; finish the key "
                          "rotation before taking a backup.", code="mixed_keys")
