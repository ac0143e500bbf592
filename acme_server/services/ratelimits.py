"""ACME rate limits (per account and per client IP) on newAccount and newOrder, counted in the shared store."""

from __future__ import annotations

from django.conf import settings

from acme_server.services.problems import AcmeProblem
from pki_project.ratelimit import hit, shared_store


def check_rate(bucket: str, limit: int) -> None:
    """Count one request in `bucket`; past `limit` per PKI_ACME_RATE_WINDOW: 429 rateLimited with Retry-After."""
    if limit <= 0:
        return
    result = hit(f"acme:{bucket}"[:200], limit=limit, window=settings.PKI_ACME_RATE_WINDOW, store=shared_store())
    if not result.allowed:
        raise AcmeProblem("rateLimited", "Too many requests: retry later.",
                          headers={"Retry-After": str(result.retry_after)})


def check_new_account_rate(client_ip: str) -> None:
    check_rate(f"new-account-ip:{client_ip}", settings.PKI_ACME_ACCOUNTS_PER_IP)


def check_new_order_rate(account_name: str, client_ip: str) -> None:
    check_rate(f"new-order-ip:{client_ip}", settings.PKI_ACME_ORDERS_PER_IP)
    check_rate(f"new-order-account:{account_name}", settings.PKI_ACME_ORDERS_PER_ACCOUNT)
