"""The operator's view: real manage.py processes against a SQLite file, tampered with by sqlite3 directly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from audit.checks import sqlite_transaction_mode_problems
from tests.audit.test_concurrency import run_writers
from tests.helpers import clean_environment, run_manage


def _installation(tmp_path: Path, events: int) -> tuple[dict[str, str], Path]:
    database = tmp_path / "pki.db"
    env = clean_environment(DATABASE_URL=f"sqlite:///{database}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"))
    migrated = run_manage("migrate", "--noinput", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    run_writers(1, events, env, tmp_path / "barrier")
    return env, database


def test_verify_export_and_checkpoint_as_an_operator(tmp_path: Path) -> None:
    env, database = _installation(tmp_path, events=5)
    checkpoint, export = tmp_path / "cp.json", tmp_path / "audit.jsonl"

    intact = run_manage("verify_audit_log", "--checkpoint-out", str(checkpoint), env=env)
    exported = run_manage("export_audit_log", "--output", str(export), env=env)

    assert intact.returncode == 0, intact.stderr
    assert "Audit log intact: 5 events" in intact.stdout
    assert json.loads(checkpoint.read_text())["head_seq"] == 5
    assert exported.returncode == 0, exported.stderr
    assert len(export.read_text().splitlines()) == 5
    assert run_manage("verify_audit_log", "--export", str(export), "--checkpoint", str(checkpoint),
                      env=env).returncode == 0

    with sqlite3.connect(database) as connection:  # the attacker owns the file
        connection.execute("DROP TRIGGER audit_event_no_update")
        connection.execute("UPDATE audit_auditevent SET outcome = 'failure' WHERE seq = 2")
    broken = run_manage("verify_audit_log", "--checkpoint", str(checkpoint), env=env)

    assert broken.returncode == 1
    assert "BROKEN at seq 2 " in broken.stderr
    assert "edited" in broken.stderr
    assert "triggers on the audit table are missing" in broken.stderr


def test_raw_sqlite_writes_are_refused_by_the_triggers(tmp_path: Path) -> None:
    _, database = _installation(tmp_path, events=2)
    with sqlite3.connect(database) as connection:
        for statement in ("UPDATE audit_auditevent SET outcome = 'failure'", "DELETE FROM audit_auditevent"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                connection.execute(statement)
        assert connection.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (2,)


def test_sqlite_without_immediate_transactions_is_flagged() -> None:
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}}
    assert [message.id for message in sqlite_transaction_mode_problems(sqlite)] == ["audit.W001"]
    immediate = {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"transaction_mode": "IMMEDIATE"}}
    assert sqlite_transaction_mode_problems(immediate) == []
    assert sqlite_transaction_mode_problems({"ENGINE": "django.db.backends.postgresql"}) == []
