"""One consistent read snapshot of the live database while the application keeps writing.

* SQLite: the online backup API copies the database page by page into a private
  temporary file in one step (the source holds a read transaction for it, so with
  WAL writers go on and the copy is one committed state). The copy is switched to
  rollback-journal mode and vacuumed so it is one compact, self-contained file, then
  opened as a temporary extra database alias and read through the ORM, which gives
  the same Python values as PostgreSQL does.
* PostgreSQL: a `REPEATABLE READ, READ ONLY` transaction: every table is read from
  the same snapshot, and nothing waits on it. When the caller is already inside a
  transaction (a test, an outer atomic block), that transaction is the snapshot.

Why the database before the files: the application seals an artifact before it
commits the row that refers to it and never changes an artifact afterwards (only
key rotation does, and a backup refuses to run during one), so every artifact the
snapshot refers to already exists when the files are copied. Files written after the
snapshot are orphans, harmless.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder


@dataclass(frozen=True)
class Snapshot:
    alias: str  # the database alias to read from
    vendor: str  # engine of the live database
    sqlite_file: Path | None  # the raw snapshot file (SQLite only)


def applied_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[list[str]]:
    """The migration state as sorted `[app, name]` pairs (what a restore must match)."""
    recorder = MigrationRecorder(connections[alias])
    return sorted([app, name] for app, name in recorder.applied_migrations())


@contextlib.contextmanager
def read_snapshot() -> Iterator[Snapshot]:
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "sqlite":
        with _sqlite_snapshot() as snapshot:
            yield snapshot
    elif connection.in_atomic_block:
        yield Snapshot(DEFAULT_DB_ALIAS, connection.vendor, None)
    else:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield Snapshot(DEFAULT_DB_ALIAS, connection.vendor, None)


@contextlib.contextmanager
def _sqlite_snapshot() -> Iterator[Snapshot]:
    directory = Path(tempfile.mkdtemp(prefix="pki-backup-snapshot-"))
    path = directory / "snapshot.sqlite3"
    try:
        copy_sqlite_database(path)
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            yield Snapshot(DEFAULT_DB_ALIAS, "sqlite", path)  # the caller's transaction is the snapshot
        else:
            with temporary_sqlite_alias(path) as alias:
                yield Snapshot(alias, "sqlite", path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def copy_sqlite_database(target: Path) -> None:
    """A copy of the live database in `target`, compacted and journal-free.

    Normally the online backup API. Inside a transaction that has written (a test, an
    outer atomic block) SQLite refuses a backup from the writing connection (it would
    answer SQLITE_LOCKED forever); that transaction already is a consistent snapshot,
    so its content is copied statement by statement instead (`iterdump`).
    """
    connection = connections[DEFAULT_DB_ALIAS]
    connection.ensure_connection()
    destination = sqlite3.connect(target, isolation_level=None)
    try:
        if connection.in_atomic_block:
            _copy_by_dump(connection.connection, destination)
        else:
            connection.connection.backup(destination)  # pages=-1: the whole database in one step
        destination.execute("PRAGMA journal_mode=DELETE")
        destination.execute("VACUUM")
    finally:
        destination.close()


def _copy_by_dump(source: sqlite3.Connection, destination: sqlite3.Connection) -> None:
    destination.execute("BEGIN")
    for statement in source.iterdump():
        if statement in ("BEGIN TRANSACTION;", "COMMIT;"):
            continue
        destination.execute(statement)
    destination.execute("COMMIT")


@contextlib.contextmanager
def temporary_sqlite_alias(path: Path) -> Iterator[str]:
    """Register `path` as a database alias for the ORM, for the duration of the block.

    The settings are the live alias's (so converters and time zone handling are the
    same) with another file and none of the write-oriented options.
    """
    alias = f"pki_backup_{uuid.uuid4().hex}"
    config = dict(connections.settings[DEFAULT_DB_ALIAS])
    config.update(NAME=str(path), ENGINE="django.db.backends.sqlite3", OPTIONS={"timeout": 20}, TEST={})
    connections.settings[alias] = config
    try:
        yield alias
    finally:
        with contextlib.suppress(Exception):
            connections[alias].close()
        with contextlib.suppress(AttributeError, KeyError):
            del connections[alias]
        connections.settings.pop(alias, None)
