"""Migration 0005 keys the chain: existing events get their MAC, the triggers survive, and back again.

Run with `manage.py migrate` on a scratch installation of each engine, as an operator upgrading
one with a populated trail would; the events are written at 0004 the way that release wrote them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.canonical import GENESIS_HASH, compute_hash
from tests.reliability.installations import installation_for

pytestmark = pytest.mark.slow

COLUMNS = ("seq", "version", "created_at", "action", "outcome", "actor_user_id", "actor_username",
           "actor_api_key_id", "actor_role", "actor_label", "organization_id", "organization_slug", "target_type",
           "target_id", "target_serial", "source_ip", "user_agent", "details", "prev_hash", "hash")


def unkeyed_events(count: int) -> list[dict]:
    """Events as release 0004 wrote them: hashed, no MAC."""
    events, prev_hash, start = [], GENESIS_HASH, datetime(2026, 11, 1, tzinfo=UTC)
    for seq in range(1, count + 1):
        event = {"v": 1, "seq": seq, "prev_hash": prev_hash, "created_at": start + timedelta(minutes=seq),
                 "action": "organization.create", "outcome": "success", "actor_user_id": None,
                 "actor_username": "", "actor_api_key_id": None, "actor_role": "", "actor_label": "cli:test",
                 "organization_id": None, "organization_slug": "", "target_type": "organization",
                 "target_id": str(seq), "target_serial": "", "source_ip": "", "user_agent": "",
                 "details": {"n": seq}}
        event["hash"] = prev_hash = compute_hash(event)
        events.append(event)
    return events


def insert(database_url: str, events: list[dict]) -> None:
    rows = [[event["seq"], 1, event["created_at"].isoformat() if database_url.startswith("sqlite") else
             event["created_at"], *(event[name] for name in COLUMNS[3:17]), json.dumps(event["details"]),
             event["prev_hash"], event["hash"]] for event in events]
    sql = f"INSERT INTO audit_auditevent ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608 (constant column names)
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            connection.executemany(sql.replace("%s", "?"), rows)
        return
    import psycopg

    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_existing_events_are_keyed_and_the_triggers_stay(engine: str, tmp_path: Path) -> None:
    with installation_for(engine, tmp_path) as installation:
        installation.ok("migrate", "audit", "0004", "--noinput", "-v", "0")
        insert(installation.database_url, unkeyed_events(5))

        installation.ok("migrate", "--noinput", "-v", "0")

        report = json.loads(installation.manage("verify_audit_log", "--json").stdout)
        assert (report["ok"], report["count"], report["macs_checked"], report["triggers_installed"]) == (
            True, 5, True, True)
        installation.ok("create_organization", "--name", "After the upgrade")  # appends continue the chain
        report = json.loads(installation.manage("verify_audit_log", "--json").stdout)
        assert (report["ok"], report["count"]) == (True, 6)

        installation.ok("migrate", "audit", "0004", "--noinput", "-v", "0")
        result = installation.manage("shell", "-c", "from audit.triggers import triggers_installed;"
                                     "from django.db import connection; print(triggers_installed(connection))")
        assert result.stdout.strip().splitlines()[-1] == "True", result.stderr
