"""Replay nonces (RFC 8555 6.5) in the database: any worker issues, exactly one request consumes.

Consumption is a single `DELETE … WHERE value = ? AND expires_at > now`: on PostgreSQL and SQLite
alike only one of two concurrent requests carrying the same nonce deletes the row.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from acme_server.models import Nonce


def issue_nonce() -> str:
    value = secrets.token_urlsafe(24)
    Nonce.objects.create(value=value, expires_at=timezone.now() + timedelta(seconds=settings.PKI_ACME_NONCE_LIFETIME))
    return value


def consume_nonce(value: object) -> bool:
    """True once for a nonce this server issued that has not expired; False for anything else."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return False
    deleted, _ = Nonce.objects.filter(value=value, expires_at__gt=timezone.now()).delete()
    return deleted == 1


def delete_expired_nonces(batch: int = 5000) -> int:
    """Remove expired nonces in batches (acme_cleanup); returns how many went."""
    total = 0
    while True:
        ids = list(Nonce.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += Nonce.objects.filter(pk__in=ids).delete()[0]
