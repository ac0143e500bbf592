"""The only code path that may rewrite the audit table: a restore (and test clean-up).

A backup restore must copy the table wholesale, events, seq numbers and hashes
unchanged, not re-record them: `replace_all_events` does that inside one
transaction, with the append-only triggers suspended for that transaction only,
and refuses (rolling everything back) unless the loaded chain verifies.

Suspending the triggers needs the rights of the table's owner (ALTER TABLE on
PostgreSQL), the same rights an attacker would need, so this adds no new hole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils.dateparse import parse_datetime

from audit.keys import AuditKeys
from audit.models import AuditEvent
from audit.triggers import TABLE, install_triggers, remove_triggers
from audit.verification import VerificationResult, database_records, verify_chain, verify_records

BULK_BATCH_SIZE = 1000


class ChainRestoreError(ValueError):
    """The events to restore do not form an intact chain; nothing was changed."""


@contextmanager
def triggers_suspended(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Inside one transaction: suspend the append-only triggers, run the block, restore them.

    If the block raises, the transaction rolls back, and with it the suspension.
    """
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
            yield
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        else:
            remove_triggers(connection)
            yield
            install_triggers(connection)


def delete_all_events(using: str = DEFAULT_DB_ALIAS) -> int:
    """Empty the table (restore, and test teardown). Returns how many events were removed."""
    with triggers_suspended(using), connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")  # noqa: S608 (a constant table name)
        return cursor.rowcount


def chain_keyed_with(keys: AuditKeys, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the newest event is MACed under `keys` (an empty chain is keyed with any)."""
    head = AuditEvent.objects.using(using).order_by("-seq").values("hash", "mac").first()
    return head is None or keys.mac_matches(head["hash"], head["mac"])


def rekey_chain(old: AuditKeys, new: AuditKeys, using: str = DEFAULT_DB_ALIAS) -> int:
    """Inside the caller's transaction: check every MAC under `old`, then MAC every event under `new`.

    For the encryption-key rotation, which changes the audit keys (they derive from it). The
    hashes, and so the chain, are unchanged; a chain that does not verify under `old` is
    refused (ChainRestoreError) rather than blessed under the new key. Returns the event count.
    """
    result = verify_records(database_records(), keys=old)
    if not result.ok:
        raise ChainRestoreError(f"refusing to re-key a broken audit chain: {result.broken.message}")
    with triggers_suspended(using), connections[using].cursor() as cursor:
        batch: list[list[object]] = []
        for record in database_records():
            batch.append([new.mac(str(record["hash"])), record["id"]])
            if len(batch) >= BULK_BATCH_SIZE:
                cursor.executemany(f"UPDATE {TABLE} SET mac = %s WHERE id = %s", batch)  # noqa: S608 (a constant)
                batch = []
        if batch:
            cursor.executemany(f"UPDATE {TABLE} SET mac = %s WHERE id = %s", batch)  # noqa: S608 (a constant)
    return result.count


def replace_all_events(records: Iterable[Mapping[str, object]], using: str = DEFAULT_DB_ALIAS) -> VerificationResult:
    """Replace every event with `records` (export/backup dicts), unchanged, or change nothing.

    Raises `ChainRestoreError` if the loaded chain does not verify.
    """
    with triggers_suspended(using):
        with connections[using].cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE}")  # noqa: S608 (a constant table name)
        _bulk_insert(_events_from_records(records), using)
        _reset_id_sequence(using)
        result = verify_chain(use_anchor=False)
        if not result.ok:
            raise ChainRestoreError(f"refusing to restore a broken audit chain: {result.broken.message}")
    return result


def _reset_id_sequence(using: str) -> None:
    """Explicit ids were inserted: move PostgreSQL's id sequence past them (a no-op on SQLite)."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), [AuditEvent])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _bulk_insert(events: Iterable[AuditEvent], using: str) -> None:
    """Insert without `AuditEvent.save()` or the refusing queryset: seq and hashes are kept as given."""
    plain = models.QuerySet(model=AuditEvent, using=using)
    batch: list[AuditEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= BULK_BATCH_SIZE:
            plain.bulk_create(batch)
            batch = []
    if batch:
        plain.bulk_create(batch)


def _events_from_records(records: Iterable[Mapping[str, object]]) -> Iterator[AuditEvent]:
    names = {field.name for field in AuditEvent._meta.concrete_fields}
    for record in records:
        values = {name: value for name, value in record.items() if name in names}
        values["version"] = record.get("v", record.get("version"))
        created_at = values.get("created_at")
        if isinstance(created_at, str):
            values["created_at"] = _parse_timestamp(created_at)
        yield AuditEvent(**values)


def _parse_timestamp(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None or moment.tzinfo is None:
        raise ChainRestoreError(f"not a UTC timestamp: {text!r}")
    return moment
