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
