"""`Idempotency-Key` for `POST /api/v1/certificates/`: a retried request never issues twice.

A client sends `Idempotency-Key: <its own unique string>`; the first request with that
key (per user) claims it by inserting a row (the unique constraint settles a race), the
issuance runs, and the row records the certificate it produced in the same transaction.

* Same key, same body, finished: the first certificate is answered again (201, header
  `Idempotent-Replayed: true`); nothing is issued.
* Same key, another body: 422 `idempotency_key_reused`; nothing is issued.
* Same key while the first request is still running: 409 `idempotency_in_progress`.
  A claim that never finished (its request died) is taken over after `STALE_CLAIM`.
* A failed issuance releases the claim: nothing was issued, so a retry may run again.
* Keys expire after `KEY_TTL` (24 hours): a user's expired rows are purged at their next claim
  (`purge_expired()` clears everyone's, e.g. from a periodic job).

The body's fingerprint is SHA-256 over its canonical JSON (sorted keys, no spaces).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from certificates.errors import Conflict, InvalidInput, ServiceError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_TTL = timedelta(hours=24)
STALE_CLAIM = timedelta(minutes=5)


class IdempotencyKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null while in progress.")
    certificate = models.ForeignKey("certificates.Certificate", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        app_label = "certificates"
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id})"


class KeyReused(ServiceError):
    status = 422
    default_code = "idempotency_key_reused"


def validated_key(value: str | None) -> str | None:
    """The header's value, or None when absent; printable ASCII of at most 255 characters."""
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH or not all(" " < char < "\x7f" for char in value):
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces.",
                           code="invalid_idempotency_key")
    return value


def fingerprint(body: Any) -> str:
    """SHA-256 of the body's canonical JSON (form bodies: each field's list of values)."""
    if hasattr(body, "lists"):  # QueryDict
        body = {key: values for key, values in body.lists()}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def purge_expired(now=None) -> int:
    return IdempotencyKey.objects.filter(created_at__lt=(now or timezone.now()) - KEY_TTL).delete()[0]


def _replay_or_refuse(row: IdempotencyKey, request_fingerprint: str):
    if row.request_fingerprint != request_fingerprint:
        raise KeyReused(f"This {HEADER} was already used with another request body: use a new key.")
    if row.certificate_id is not None:
        return row.certificate
    raise Conflict(f"A request with this {HEADER} is still being processed; retry shortly.",
                   code="idempotency_in_progress")


def _claim(user_id: int, key: str, request_fingerprint: str, now) -> IdempotencyKey | None:
    """Insert the claim; None when another request holds the key (then the caller reads that row)."""
    IdempotencyKey.objects.filter(user_id=user_id, created_at__lt=now - KEY_TTL).delete()  # this user's expired keys
    IdempotencyKey.objects.filter(user_id=user_id, key=key, certificate__isnull=True,
                                  created_at__lt=now - STALE_CLAIM).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user_id=user_id, key=key, request_fingerprint=request_fingerprint,
                                                 created_at=now)
    except IntegrityError:
        return None


def run_once(user_id: int, key: str, body: Any, perform: Callable[[], Any]) -> tuple[Any, bool]:
    """(certificate, replayed): `perform()` runs at most once per (user, key) within `KEY_TTL`."""
    request_fingerprint = fingerprint(body)
    for _attempt in range(3):
        claim = _claim(user_id, key, request_fingerprint, timezone.now())
        if claim is not None:
            break
        existing = IdempotencyKey.objects.select_related("certificate").filter(user_id=user_id, key=key).first()
        if existing is not None:
            return _replay_or_refuse(existing, request_fingerprint), True
        # the holder released its claim between our insert and our read: try to claim again
    else:
        raise Conflict(f"A request with this {HEADER} is still being processed; retry shortly.",
                       code="idempotency_in_progress")
    try:
        with transaction.atomic():
            certificate = perform()
            if isinstance(certificate, models.Model) and certificate._meta.label == "certificates.Certificate":
                IdempotencyKey.objects.filter(pk=claim.pk).update(certificate=certificate, response_status=201)
            else:  # a request that waits for approval issued nothing: the key is free again
                IdempotencyKey.objects.filter(pk=claim.pk).delete()
    except BaseException:
        IdempotencyKey.objects.filter(pk=claim.pk, certificate__isnull=True).delete()
        raise
    return certificate, False
