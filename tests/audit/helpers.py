"""Helpers for the audit tests: build a chain, tamper like a database owner, run the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from django.core.management import call_command
from django.db import connection

from audit.actions import AuditAction
from audit.canonical import compute_hash
from audit.keys import audit_keys
from audit.maintenance import triggers_suspended
from audit.models import AuditEvent
from audit.services import record_event
from audit.verification import database_records

CHAIN_ACTIONS = (
    AuditAction.ORGANIZATION_CREATE,
    AuditAction.API_KEY_CREATE,
    AuditAction.LOGIN,
    AuditAction.CA_CREATE,
    AuditAction.CERTIFICATE_ISSUE,
    AuditAction.LOGOUT,
)


def build_chain(length: int = len(CHAIN_ACTIONS)) -> list[AuditEvent]:
    return [
        record_event(CHAIN_ACTIONS[index % len(CHAIN_ACTIONS)], actor_label="operator@cli",
                     target_type="thing", target_id=str(index + 1), details={"n": index + 1})
        for index in range(length)
    ]


def tamper(*statements: tuple[str, list[object]]) -> None:
    """Run raw SQL with the append-only triggers out of the way: an attacker who owns the database."""
    with triggers_suspended(), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def record_of(seq: int) -> dict[str, object]:
    return next(record for record in database_records() if record["seq"] == seq)


def rehash(record: dict[str, object]) -> str:
    """What an attacker who knows the recipe computes for a forged or edited event."""
    return compute_hash(record)


def rewrite_from(seq: int, changes: dict[str, object], *, with_key: bool) -> None:
    """Edit event `seq` and re-hash every event after it, consistently, in raw SQL.

    Without the key this is a database owner's rewrite (the MACs stay as they were); `with_key`
    is an attacker who also stole the environment's secrets and MACs every rewritten event again.
    """
    keys = audit_keys()
    prev_hash = record_of(seq - 1)["hash"] if seq > 1 else "0" * 64
    head = max(record["seq"] for record in database_records())
    for current in range(seq, head + 1):
        record = record_of(current) | {"prev_hash": prev_hash}
        if current == seq:
            record.update(changes)
        record["hash"] = rehash(record)
        mac = keys.mac(record["hash"]) if with_key else record["mac"]
        assignments = ", ".join(f"{name} = %s" for name in changes)
        values = [record[name] for name in changes] if current == seq else []
        tamper((f"UPDATE audit_auditevent SET {assignments + ', ' if values else ''}prev_hash = %s, hash = %s, "  # noqa: S608
                "mac = %s WHERE seq = %s", [*values, record["prev_hash"], record["hash"], mac, current]))
        prev_hash = record["hash"]


@dataclass(frozen=True)
class CommandRun:
    exit_code: int
    stdout: str
    stderr: str


def run_verify(*args: str) -> CommandRun:
    stdout, stderr = StringIO(), StringIO()
    try:
        call_command("verify_audit_log", *args, stdout=stdout, stderr=stderr)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return CommandRun(code, stdout.getvalue(), stderr.getvalue())
