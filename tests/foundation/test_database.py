"""SQLite runs in WAL mode with a busy timeout; DATABASE_URL switches the engine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pki_project.settings import SQLITE_BUSY_TIMEOUT_SECONDS, _database_config
from tests.helpers import clean_environment, run_manage


def test_default_sqlite_database_uses_wal_after_migrate(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "pki.db"
    env = clean_environment(DATABASE_URL=f"sqlite:///{database}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"))
    result = run_manage("migrate", "--noinput", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "organizations_organization" in tables


def test_sqlite_options_set_busy_timeout_and_immediate_transactions() -> None:
    config = _database_config("sqlite:///database/pki.db")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(config["NAME"]).is_absolute(), "relative paths resolve against the project, not the cwd"
    assert config["OPTIONS"]["timeout"] == SQLITE_BUSY_TIMEOUT_SECONDS
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_postgres_url_selects_postgresql_engine() -> None:
    config = _database_config("postgres://pki:secret@db.example:5432/pki")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "pki"
    assert config["HOST"] == "db.example"
    assert config["CONN_HEALTH_CHECKS"] is True


# --- The database file is private, like .env ------------------------------------------

MODE_PROBE = """
from pathlib import Path
from django.conf import settings
from django.db import connection
from organizations.models import Organization
Organization.objects.create(name="Mode Probe", slug="mode-probe")  # a write: the -wal and -shm files exist now
database = Path(settings.DATABASES["default"]["NAME"])
for suffix in ("", "-wal", "-shm"):
    path = Path(str(database) + suffix)
    print(suffix or "db", oct(path.stat().st_mode & 0o777))
"""


def _fresh_installation(tmp_path: Path, database: Path) -> dict[str, str]:
    return clean_environment(DATABASE_URL=f"sqlite:///{database}", PKI_DATA_DIR=str(tmp_path / "data"),
                             PKI_UPLOAD_DIR=str(tmp_path / "uploads"), PKI_ENV_FILE=str(tmp_path / "none.env"))


def test_a_fresh_migrate_creates_a_private_database_and_directory(tmp_path: Path) -> None:
    database = tmp_path / "database" / "pki.db"
    env = _fresh_installation(tmp_path, database)
    result = run_manage("migrate", "--noinput", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert database.parent.stat().st_mode & 0o777 == 0o700
    assert database.stat().st_mode & 0o777 == 0o600
    probe = run_manage("shell", "-c", MODE_PROBE, env=env)
    assert probe.returncode == 0, probe.stderr
    modes = dict(line.split() for line in probe.stdout.splitlines() if line.startswith(("db", "-wal", "-shm")))
    assert modes == {"db": "0o600", "-wal": "0o600", "-shm": "0o600"}, probe.stdout


def test_an_existing_world_readable_database_is_narrowed_and_its_directory_left_alone(tmp_path: Path) -> None:
    """A database made before this rule (0644) is narrowed to 0600 at the next start; a directory named in
    DATABASE_URL that this installation did not create (it may be shared) keeps its mode."""
    database = tmp_path / "shared" / "pki.db"
    env = _fresh_installation(tmp_path, database)
    database.parent.mkdir(mode=0o755)
    database.parent.chmod(0o755)
    sqlite3.connect(database).close()
    database.chmod(0o644)
    result = run_manage("migrate", "--noinput", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert database.stat().st_mode & 0o777 == 0o600
    assert database.parent.stat().st_mode & 0o777 == 0o755
