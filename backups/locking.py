"""Keeping restores apart from each other and from backups, on one host and across hosts.

A cache lock is not enough (a local-memory cache is per process, and a cache entry
outlives a killed process until it expires). Two locks instead, both released by
the operating system or the database server when their holder dies, so a crash
never leaves a stale lock behind:

* `flock(2)` on a lock file beside `PKI_DATA_DIR` (`.<name>.restore.lock`): every
  process on this host that shares the data directory. A restore takes it
  exclusively, a backup shared, so a backup never copies a data directory in the
  middle of a swap and two restores never run at once;
* on PostgreSQL, additionally a session-level advisory lock, for application hosts
  that share the database but not a file system lock (SQLite is one machine's file,
  and its write lock already serializes the database part).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from backups.errors import BackupError

ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"pki.backups.restore").digest()[:8], "big", signed=True)


def lock_path(data_dir: Path) -> Path:
    return data_dir.parent / f".{data_dir.name}.restore.lock"


@contextlib.contextmanager
def restore_lock(data_dir: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the lock for the block or refuse at once with a clear message (never wait)."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(exclusive) from None
        with _advisory_lock(exclusive):
            yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def _advisory_lock(exclusive: bool) -> Iterator[None]:
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        yield
        return
    take, release = (
        ("pg_try_advisory_lock", "pg_advisory_unlock") if exclusive
        else ("pg_try_advisory_lock_shared", "pg_advisory_unlock_shared")
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {take}(%s)", [ADVISORY_LOCK_KEY])
        if not cursor.fetchone()[0]:
            raise _busy(exclusive)
    try:
        yield
    finally:
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute(f"SELECT {release}(%s)", [ADVISORY_LOCK_KEY])


def _busy(exclusive: bool) -> BackupError:
    if exclusive:
        return BackupError("Another restore or backup is running; try again when it has finished.", code="busy")
    return BackupError("A restore is running; try the backup again when it has finished.", code="busy")
