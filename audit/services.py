"""Writing the audit trail: `record_event` is the only way an event is created.

Call it inside the operation's own transaction, so an operation that rolls back
leaves no success event behind. Record a *failure* after the failed operation's
transaction has rolled back (outside its `atomic` block), or it is rolled back too.

Appends are serialized so the chain never forks: on PostgreSQL a transaction-scoped
advisory lock is taken before the head is read and held until the outer transaction
ends; on SQLite the project opens every transaction with BEGIN IMMEDIATE, which
already holds the database's single write lock from the first statement on. The
unique `seq` is the last line of defence on any backend: a racing append fails
loudly instead of forking.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction, Outcome
from audit.canonical import FORMAT_VERSION, GENESIS_HASH, compute_hash
from audit.details import clean_details, clean_text
from audit.keys import AuditKeys, audit_keys
from audit.models import AuditEvent
from organizations.principal import Principal
from pki_project.db import fetch_one, insert_new, new_row

if TYPE_CHECKING:
    from organizations.models import Organization

# A fixed 64-bit key for pg_advisory_xact_lock, derived from a name so it is unlikely to collide.
CHAIN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"pki.audit.chain").digest()[:8], "big", signed=True)
USER_AGENT_MAX_LENGTH = 512
LABEL_MAX_LENGTH = 200
# How many failure events this context (a worker's thread, serving one request at a time) has
# appended: the central denial recorder compares it before and after a request, so a refusal
# its own operation already put on the record (a wrong root password's ca.unlock) is not
# recorded a second time as access.deny.
_failure_events_appended: ContextVar[int] = ContextVar("pki_audit_failure_events_appended", default=0)


def failure_events_appended() -> int:
    """The number of failure events appended so far in this context (see `audit.denials`)."""
    return _failure_events_appended.get()


def record_event(
    action: AuditAction,
    *,
    request: HttpRequest | None = None,
    principal: Principal | None = None,
    outcome: Literal["success", "failure"] = "success",
    organization_id: int | None = None,
    organization: Organization | None = None,
    target_type: str = "",
    target_id: str = "",
    target_serial: str = "",
    details: Mapping[str, object] | None = None,
    actor_label: str = "",
    transaction_open: bool = False,
    keys: AuditKeys | None = None,
) -> AuditEvent:
    """Append one event to the chain and return it.

    `request` supplies the principal (unless `principal` is given), the source IP
    and the user agent. The organization is `organization` when the caller has the
    object in hand (which saves a query for its slug), else `organization_id`, else
    the principal's. `details` must never contain a secret: keys that look like one
    are refused. `transaction_open=True` says the caller holds a transaction open that
    it will commit (`pki_project.db.write_transaction`, where no atomic block may be
    opened): the append then opens none of its own. `keys` MAC the event under other audit keys
    than the running configuration's (only the encryption-key rotation, which moves the chain).
    """
    action = AuditAction(action)
    outcome = Outcome(outcome)
    if principal is None and request is not None:
        principal = getattr(request, "principal", None)
    if organization is not None:
        organization_id = organization.pk
    elif organization_id is None and principal is not None:
        organization_id = principal.organization_id
    fields = {
        "action": action.value,
        "outcome": outcome.value,
        **_actor_fields(principal),
        "actor_label": clean_text(actor_label)[:LABEL_MAX_LENGTH],
        "organization_id": organization_id,
        "organization_slug": organization.slug if organization is not None else _organization_slug(organization_id),
        "target_type": clean_text(target_type)[:64],
        "target_id": clean_text(target_id)[:64],
        "target_serial": clean_text(target_serial)[:64],
        **_request_fields(request),
        "details": clean_details(details or {}),
    }
    event = _append(fields, transaction_open=transaction_open, keys=keys)
    if outcome is Outcome.FAILURE:
        _failure_events_appended.set(_failure_events_appended.get() + 1)
    return event


def _actor_fields(principal: Principal | None) -> dict[str, object]:
    if principal is None:
        return {"actor_user_id": None, "actor_username": "", "actor_api_key_id": None, "actor_role": ""}
    return {
        "actor_user_id": principal.user_id,
        "actor_username": clean_text(principal.username)[:150],
        "actor_api_key_id": principal.api_key_id,
        "actor_role": str(principal.role.value if hasattr(principal.role, "value") else principal.role),
    }


def _organization_slug(organization_id: int | None) -> str:
    """Captured at write time so the trail still reads well after a rename or deletion."""
    if organization_id is None:
        return ""
    from organizations.models import Organization

    slug = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first()
    return slug or ""


def _request_fields(request: HttpRequest | None) -> dict[str, str]:
    if request is None:
        return {"source_ip": "", "user_agent": ""}
    return {
        "source_ip": normalize_ip(request.META.get("REMOTE_ADDR", "")),
        "user_agent": clean_text(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX_LENGTH],
    }


def normalize_ip(value: object) -> str:
    """One spelling per address (stored as text so the hash survives every backend)."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return ""


def _append(fields: dict[str, object], *, transaction_open: bool, keys: AuditKeys | None) -> AuditEvent:
    """Read the head and insert the next event while holding the chain lock, in a transaction.

    No savepoint: inside an operation's transaction a failed append must undo the
    whole operation anyway, and a savepoint costs two more statements per event.
    """
    if transaction_open:
        return _append_in_transaction(fields, keys)
    with transaction.atomic(using=DEFAULT_DB_ALIAS, savepoint=False):
        return _append_in_transaction(fields, keys)


def _append_in_transaction(fields: dict[str, object], keys: AuditKeys | None = None) -> AuditEvent:
    lock_chain(DEFAULT_DB_ALIAS)
    seq, prev_hash = _chain_head(DEFAULT_DB_ALIAS)
    values = {**fields, "seq": seq + 1, "prev_hash": prev_hash, "version": FORMAT_VERSION,
              "created_at": timezone.now()}
    # The hash of these very values (AuditEvent.hash_record would read them back one by one).
    values["hash"] = compute_hash({**values, "v": FORMAT_VERSION})
    values["mac"] = (keys or audit_keys()).mac(values["hash"])
    event = new_row(AuditEvent, **values)
    return insert_new(event, using=DEFAULT_DB_ALIAS)  # AuditEvent.save() would only recompute the same hash


_CHAIN_HEAD_SQL: dict[str, str] = {}


def _chain_head(using: str) -> tuple[int, str]:
    """(seq, hash) of the newest event, or (0, the genesis hash) for an empty chain."""
    connection = connections[using]
    sql = _CHAIN_HEAD_SQL.get(connection.vendor) or _CHAIN_HEAD_SQL.setdefault(connection.vendor,
                                                                              _chain_head_sql(connection))
    row = fetch_one(connection, sql, [])
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def _chain_head_sql(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    table = quote(AuditEvent._meta.db_table)  # an identifier from the model, quoted; no input
    return f"SELECT {quote('seq')}, {quote('hash')} FROM {table} ORDER BY {quote('seq')} DESC LIMIT 1"  # noqa: S608


def lock_chain(using: str = DEFAULT_DB_ALIAS) -> None:
    """Serialize appends until the outer transaction ends (see the module docstring)."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
