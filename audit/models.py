"""The append-only, hash-chained audit event.

Actor and organization are stored as plain values captured at write time, never
as foreign keys: a deleted user or a renamed organization must not cascade into,
or silently change, what the trail says happened.

Rows are written only by `audit.services.record_event`. The model, its queryset
and a database trigger (migration 0002) all refuse updates and deletes; the hash
chain and each event's MAC under a key outside the database (`audit.keys`,
checked by `audit.verification`) detect whatever someone with database-owner
rights does anyway.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from audit.canonical import FORMAT_VERSION, HASH_LENGTH, HASHED_FIELDS, compute_hash
from audit.keys import MAC_LENGTH


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnlyError(f"audit events are append-only: {what} is not allowed")


class AuditEventQuerySet(models.QuerySet):
    """Reads are ordinary; every bulk write path of the ORM is closed."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("update")

    def delete(self) -> NoReturn:
        _refuse("delete")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        _refuse("bulk_update")

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("bulk_create (use audit.services.record_event, or audit.maintenance for a restore)")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update_or_create")

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]
    update.alters_data = True  # type: ignore[attr-defined]

    def in_chain_order(self) -> AuditEventQuerySet:
        return self.order_by("seq")

    def newest_first(self) -> AuditEventQuerySet:
        return self.order_by("-seq")

    def for_organization(self, organization_id: int) -> AuditEventQuerySet:
        return self.filter(organization_id=organization_id)


AuditEventManager = models.Manager.from_queryset(AuditEventQuerySet)


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True, help_text="Position in the chain: 1, 2, 3… without gaps.")
    version = models.PositiveSmallIntegerField(default=FORMAT_VERSION, help_text="Canonical serialization format.")
    created_at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16)

    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    actor_api_key_id = models.BigIntegerField(null=True, blank=True)
    actor_role = models.CharField(max_length=16, blank=True)
    actor_label = models.CharField(max_length=200, blank=True, help_text="Non-secret identifier when no user.")
    # Indexed by audit_event_org_seq (organization_id, -seq), which also serves the per-organization order.
    organization_id = models.BigIntegerField(null=True, blank=True)
    organization_slug = models.CharField(max_length=64, blank=True)

    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_serial = models.CharField(max_length=64, blank=True, db_index=True)

    source_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)

    prev_hash = models.CharField(max_length=HASH_LENGTH)
    # Not unique: the unique `seq` already forbids a fork, and two events with equal hashes would
    # need equal canonical contents, `seq` included. The index it took was a random-key index
    # That every append updated and nothing reads.
    hash = models.CharField(max_length=HASH_LENGTH)
    # HMAC of `hash` under a key that never enters the database (`audit.keys`): a re-hashed chain
    # cannot be MACed again without the environment's secrets. Not part of the canonical payload.
    mac = models.CharField(max_length=MAC_LENGTH)

    objects = AuditEventManager()

    class Meta:
        ordering = ["-seq"]
        default_permissions = ("view",)
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_event_seq_positive"),
            models.CheckConstraint(condition=models.Q(outcome__in=["success", "failure"]),
                                   name="audit_event_outcome_valid"),
            models.CheckConstraint(condition=Exact(Length("hash"), HASH_LENGTH), name="audit_event_hash_length"),
            models.CheckConstraint(condition=Exact(Length("prev_hash"), HASH_LENGTH),
                                   name="audit_event_prev_hash_length"),
            models.CheckConstraint(condition=Exact(Length("mac"), MAC_LENGTH), name="audit_event_mac_length"),
        ]
        indexes = [models.Index(fields=["organization_id", "-seq"], name="audit_event_org_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.outcome} by {self.actor_display}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert once, with a hash that matches the content; never update."""
        if not self._state.adding:
            _refuse("save() of an existing event")
        if self.hash != self.compute_hash():
            raise AppendOnlyError("an audit event must be written by audit.services.record_event (hash mismatch)")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("delete")

    @property
    def actor_display(self) -> str:
        return self.actor_username or self.actor_label or "anonymous"

    def hash_record(self) -> dict[str, object]:
        """The values the chain hash covers (see `audit.canonical`)."""
        record = {name: getattr(self, name) for name in HASHED_FIELDS if name != "v"}
        record["v"] = self.version
        return record

    def compute_hash(self) -> str:
        return compute_hash(self.hash_record())
