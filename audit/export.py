"""Exporting the trail as JSON Lines that an outside party can verify offline.

Each line is one event: every hashed field (with `created_at` already in its
canonical spelling and `v` the format version), plus `id`, `hash` and `mac`. Remove
`id`, `hash` and `mac`, serialize the rest canonically, and SHA-256 gives `hash` back;
`mac` can only be checked with the installation's secrets (`verify_audit_log --export`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from audit.canonical import canonical_payload
from audit.verification import DATABASE_FIELDS


def export_line(record: dict[str, object]) -> str:
    """One event as a compact JSON line (keys sorted, no trailing newline)."""
    line = canonical_payload(record)
    line["id"] = record["id"]
    line["hash"] = record["hash"]
    line["mac"] = record["mac"]
    return json.dumps(line, sort_keys=True, separators=(",", ":"))


def export_lines(*, since: datetime | None = None, action: str | None = None,
                 chunk_size: int = 2000) -> Iterator[str]:
    """Events in seq order, streamed from the database, optionally filtered."""
    from audit.models import AuditEvent

    events = AuditEvent.objects.order_by("seq")
    if since is not None:
        events = events.filter(created_at__gte=since)
    if action:
        events = events.filter(action=action)
    for row in events.values(*DATABASE_FIELDS).iterator(chunk_size=chunk_size):
        row["v"] = row.pop("version")
        yield export_line(row)


def read_export(lines: Iterator[str] | IO[str]) -> Iterator[dict[str, object]]:
    """Parse export lines back into records (blank lines ignored); raises ValueError on a bad line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {number}: {error.msg}") from None
        if not isinstance(record, dict) or not {"seq", "hash", "prev_hash"} <= record.keys():
            raise ValueError(f"line {number}: not an audit event")
        yield record
