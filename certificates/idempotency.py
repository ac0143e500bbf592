"""`Idempotency-Key` for every POST under /api/v1/: a retried request never creates or changes twice.

A client sends `Idempotency-Key: <its own unique string>` with any POST; the first request
with that key (per user) claims it by inserting a row (the unique constraint settles a race),
the view runs inside one transaction, and the row records the answer (status, body, Location)
in that same transaction (`pki_project.middleware.idempotency`).

* Same key, same request (method, path, canonical JSON body), finished: the first answer is
  sent again, with header `Idempotent-Replayed: true`; the view does not run.
* Same key, another request: 422 `idempotency_key_reused`; nothing runs.
* Same key while the first request is still running: 409 `idempotency_in_progress`.
  A claim that never finished (its request died) is taken over after `STALE_CLAIM`.
* An answer that is not a 2xx releases the claim: nothing was done, so a retry may run again.
* An answer that carried a one-time secret (`Cache-Control: no-store`: a new API key, an EAB
  HMAC key, a PKCS#12 password) is not stored: its replay is 409 `idempotency_secret_shown`
  with the first answer's `Location`, so a retry creates nothing and the secret stays shown once.
  A view may store a secret-free answer instead by setting `response.idempotency_body`.
* Keys expire after `KEY_TTL` (24 hours): a user's expired rows are purged at their next claim
  (`purge_expired()` clears everyone's, e.g. from a periodic job).

The fingerprint is SHA-256 over the method, the path and the body's canonical JSON (sorted
keys, no spaces), so one key cannot be replayed against another operation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from certificates.errors import Conflict, InvalidInput, ServiceError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
MAX_LOCATION_LENGTH = 500
KEY_TTL = timedelta(hours=24)
STALE_CLAIM = timedelta(minutes=5)


class IdempotencyKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    request_fingerprint = models.CharField(max_length=64,
                                           help_text="SHA-256 of the method, path and canonical request body.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null while in progress.")
    response_body = models.JSONField(null=True, blank=True,
                                     help_text="The answer to replay; null when it held a one-time secret.")
    location = models.CharField(max_length=MAX_LOCATION_LENGTH, blank=True, default="")
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


@dataclass(frozen=True)
class StoredAnswer:
    """What a finished claim answers again: status, body (None: it held a secret) and Location."""

    status: int
    body: Any
    location: str


def validated_key(value: str | None) -> str | None:
    """The header's value, or None when absent; printable ASCII of at most 255 characters."""
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH or not all(" " < char < "\x7f" for char in value):
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces.",
                           code="invalid_idempotency_key")
    return value


def fingerprint(body: Any, *, method: str = "POST", path: str = "") -> str:
    """SHA-256 of the method, the path and the body's canonical JSON (a body that is not JSON: its bytes)."""
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            body = {"raw": hashlib.sha256(body).hexdigest()}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    text = f"{method.upper()} {path}\n{canonical}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def purge_expired(now=None) -> int:
    return IdempotencyKey.objects.filter(created_at__lt=(now or timezone.now()) - KEY_TTL).delete()[0]


def _in_progress() -> Conflict:
    return Conflict(f"A request with this {HEADER} is still being processed; retry shortly.",
                    code="idempotency_in_progress")


def _stored_answer(row: IdempotencyKey, request_fingerprint: str) -> StoredAnswer:
    if row.request_fingerprint != request_fingerprint:
        raise KeyReused(f"This {HEADER} was already used with another request: use a new key.")
    if row.response_status is None:
        raise _in_progress()
    return StoredAnswer(row.response_status, row.response_body, row.location)


def _claim(user_id: int, key: str, request_fingerprint: str, now) -> IdempotencyKey | None:
    """Insert the claim; None when another request holds the key (then the caller reads that row)."""
    IdempotencyKey.objects.filter(user_id=user_id, created_at__lt=now - KEY_TTL).delete()  # this user's expired keys
    IdempotencyKey.objects.filter(user_id=user_id, key=key, response_status__isnull=True,
                                  created_at__lt=now - STALE_CLAIM).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user_id=user_id, key=key, request_fingerprint=request_fingerprint,
                                                 created_at=now)
    except IntegrityError:
        return None


def claim_or_replay(user_id: int, key: str, request_fingerprint: str) -> IdempotencyKey | StoredAnswer:
    """A new claim to run the request under, or the answer of the request that already ran with this key."""
    for _attempt in range(3):
        claim = _claim(user_id, key, request_fingerprint, timezone.now())
        if claim is not None:
            return claim
        existing = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
        if existing is not None:
            return _stored_answer(existing, request_fingerprint)
        # the holder released its claim between our insert and our read: try to claim again
    raise _in_progress()


def record(claim: IdempotencyKey, answer: StoredAnswer) -> None:
    """Finish the claim with the answer (call inside the request's transaction)."""
    IdempotencyKey.objects.filter(pk=claim.pk).update(
        response_status=answer.status, response_body=answer.body, location=answer.location[:MAX_LOCATION_LENGTH])


def release(claim: IdempotencyKey) -> None:
    """Nothing was done under the claim: drop it so that a retry runs."""
    IdempotencyKey.objects.filter(pk=claim.pk, response_status__isnull=True).delete()
