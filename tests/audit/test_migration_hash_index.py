"""Migration 0004 drops the unique index on the event hash; the SQLite table rebuild keeps the triggers.

On SQLite, AlterField rebuilds the table, and the append-only triggers go with the old one:
the migration installs them again, forwards and backwards. Run with `manage.py migrate` on a
scratch database file, as an operator upgrading (or rolling back) an installation would.
"""

# ruff: noqa: S608  (SQL built from constants)

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import clean_environment, run_manage

TRIGGERS = {"audit_event_no_update", "audit_event_no_delete"}


def _state(database: Path) -> tuple[set[str], bool]:
    """(the audit table's triggers, whether some unique index covers exactly the hash column)."""
    with sqlite3.connect(database) as connection:
        triggers = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditevent'")}
        unique_hash = any(
            [column for (_, _, column) in connection.execute(f"PRAGMA index_info('{name}')")] == ["hash"]
            for (_, name, unique, *_rest) in connection.execute("PRAGMA index_list('audit_auditevent')") if unique
        )
    return triggers, unique_hash


def _update_refused(database: Path) -> bool:
    with sqlite3.connect(database) as connection:
        keyed = "mac" in {row[1] for row in connection.execute("PRAGMA table_info('audit_auditevent')")}
        mac = (", mac", ", ?", ("2" * 64,)) if keyed else ("", "", ())  # the column audit 0005 adds
        connection.execute(
            "INSERT INTO audit_auditevent (seq, version, created_at, action, outcome, actor_username, actor_role, "
            "actor_label, organization_slug, target_type, target_id, target_serial, source_ip, user_agent, details, "
            f"prev_hash, hash{mac[0]}) VALUES (1, 1, '2026-01-01 00:00:00', 'x', 'success', '', '', '', '', '', '', "
            f"'', '', '', '{{}}', ?, ?{mac[1]})", ("0" * 64, "1" * 64, *mac[2]))
        try:
            connection.execute("UPDATE audit_auditevent SET action = 'y'")
        except sqlite3.DatabaseError as error:
            return "append-only" in str(error)
        finally:
            connection.rollback()
    return False


@pytest.mark.slow
def test_the_triggers_survive_the_rebuild_both_ways(tmp_path: Path) -> None:
    database = tmp_path / "pki.db"
    env = clean_environment(DATABASE_URL=f"sqlite:///{database}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"))

    def migrate(*target: str) -> None:
        result = run_manage("migrate", *target, "--noinput", "-v", "0", env=env)
        assert result.returncode == 0, result.stderr

    migrate("audit", "0003")
    assert _state(database) == (TRIGGERS, True)
    migrate()
    assert _state(database) == (TRIGGERS, False)
    assert _update_refused(database)
    migrate("audit", "0003")
    assert _state(database) == (TRIGGERS, True)
    assert _update_refused(database)
