"""A backup taken while another process keeps writing is one consistent state, and restores.

The writer and the backup are separate `manage.py` processes on the same installation
(a SQLite file in WAL mode, or a PostgreSQL database); the archive's rows must agree
with its manifest (which the restore checks) and hold a prefix of the writer's work.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from backups.services import restore_backup
from organizations.models import Organization
from pki_project.actor import Actor
from tests.backups.installations import Installation, postgres_installation, sqlite_installation
from tests.helpers import PROJECT_DIR

WRITES = 300
WRITER = (
    "from organizations.models import Organization\n"
    f"for i in range({WRITES}):\n"
    "    Organization.objects.create(name=f'Writer {i}', slug=f'writer-{i}')\n"
)


def backup_while_writing(source: Installation, output: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "manage.py"), "shell", "-c", WRITER],
        env=source.env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let the writer get going (no timing is asserted)
        source.backup(output)
    finally:
        _, errors = writer.communicate(timeout=240)
    assert writer.returncode == 0, errors


def assert_prefix_of_the_writes_restored(archive: Path) -> None:
    restore_backup(archive, Actor.operator("tests"))
    written = sorted(int(slug.removeprefix("writer-"))
                     for slug in Organization.objects.filter(slug__startswith="writer-").values_list("slug", flat=True))
    assert written == list(range(len(written)))  # a consistent prefix: no gaps, no half-state


def test_online_backup_of_sqlite_while_writing(tmp_path: Path, data_dir: Path, db) -> None:
    source = sqlite_installation(tmp_path)
    source.populate()
    backup_while_writing(source, tmp_path / "online.zip")
    assert_prefix_of_the_writes_restored(tmp_path / "online.zip")


@pytest.mark.postgres
def test_online_backup_of_postgresql_while_writing(tmp_path: Path, data_dir: Path, db) -> None:
    with postgres_installation(tmp_path) as source:
        source.populate()
        backup_while_writing(source, tmp_path / "online.zip")
    assert_prefix_of_the_writes_restored(tmp_path / "online.zip")
