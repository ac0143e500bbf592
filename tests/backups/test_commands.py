"""`manage.py backup_database` and `restore_database` in real subprocesses, as an operator runs them."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from tests.backups.helpers import directory_fingerprint
from tests.backups.installations import Installation, sqlite_installation


def slugs(installation: Installation) -> list[str]:
    url = installation.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(url) as database:
        return sorted(row[0] for row in database.execute("SELECT slug FROM organizations_organization"))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    instance = sqlite_installation(tmp_path_factory.mktemp("commands"))
    instance.populate()
    return instance


def test_backup_command_writes_the_archive_and_one_json_object(installation: Installation, tmp_path: Path) -> None:
    output = tmp_path / "pki-backup.zip"
    result = installation.manage("backup_database", "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # exactly one JSON object
    assert payload["output"] == str(output)
    assert payload["size"] == output.stat().st_size
    assert payload["artifacts"] == 4
    assert payload["rows"] > 0
    assert zipfile.ZipFile(output).testzip() is None
    assert "\r" not in result.stderr  # no progress drawing without a terminal
    assert not list(tmp_path.glob("*.partial"))


def test_backup_command_refuses_a_directory(installation: Installation, tmp_path: Path) -> None:
    result = installation.manage("backup_database", "--output", str(tmp_path))
    assert result.returncode == 1
    assert "is a directory" in result.stderr


def test_restore_command_needs_yes_without_a_terminal(installation: Installation, tmp_path: Path) -> None:
    archive = tmp_path / "b.zip"
    installation.ok("backup_database", "--output", str(archive))
    result = installation.manage("restore_database", str(archive))
    assert result.returncode == 1
    assert "--yes" in result.stderr


def test_restore_command_round_trip(installation: Installation, tmp_path: Path) -> None:
    archive = tmp_path / "b.zip"
    installation.ok("backup_database", "--output", str(archive))
    files = directory_fingerprint(installation.data_dir)
    installation.ok("create_organization", "--name", "Added Later", "--slug", "later")
    assert "later" in slugs(installation)

    result = installation.manage("restore_database", str(archive), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    restored = json.loads(result.stdout)["restored"]
    assert restored["artifacts"] == 4
    assert restored["source_database_vendor"] == "sqlite"
    assert "later" not in slugs(installation)
    assert directory_fingerprint(installation.data_dir) == files
    verified = installation.manage("verify_audit_log")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_restore_command_refuses_a_hostile_archive_and_changes_nothing(installation: Installation,
                                                                       tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as evil:
        evil.writestr("../../etc/cron.d/evil", "* * * * * root sh")
    files, organizations = directory_fingerprint(installation.data_dir), slugs(installation)
    result = installation.manage("restore_database", str(archive), "--yes")
    assert result.returncode == 1
    assert "Restore refused:" in result.stderr
    assert "leaves the archive" in result.stderr
    assert "Traceback" not in result.stderr
    assert directory_fingerprint(installation.data_dir) == files
    assert slugs(installation) == organizations


def test_recover_with_nothing_to_recover(installation: Installation) -> None:
    result = installation.manage("restore_database", "--recover", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"recovered": None}
