"""acme_cleanup: expired nonces, and pending orders and authorizations past their expiry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from acme_server.models import Authorization, AuthorizationStatus, Order, OrderStatus
from acme_server.services.nonces import delete_expired_nonces

BATCH = 1000


@dataclass(frozen=True)
class CleanupReport:
    nonces: int
    orders: int


def delete_expired_orders(progress: Callable[[int], None] | None = None) -> int:
    """Orders that never got a certificate (pending, ready or invalid) and expired, with their authzs and challenges.

    A valid order is kept: it links a certificate to its account.
    """
    total = 0
    stale = [OrderStatus.PENDING, OrderStatus.READY, OrderStatus.INVALID]
    while True:
        ids = list(Order.objects.filter(status__in=stale, expires_at__lte=timezone.now(), certificate__isnull=True)
                   .values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        with transaction.atomic():
            Authorization.objects.filter(order_id__in=ids).delete()
            total += Order.objects.filter(pk__in=ids).delete()[1].get("acme_server.Order", 0)
        if progress:
            progress(total)


def expire_authorizations() -> int:
    return Authorization.objects.filter(status=AuthorizationStatus.PENDING, expires_at__lte=timezone.now()).update(
        status=AuthorizationStatus.EXPIRED)


def cleanup(progress: Callable[[str, int], None] | None = None) -> CleanupReport:
    nonces = delete_expired_nonces()
    if progress:
        progress("nonces", nonces)
    expire_authorizations()
    orders = delete_expired_orders((lambda n: progress("orders", n)) if progress else None)
    return CleanupReport(nonces, orders)
