"""Concurrent finalize of one order (RFC 8555 7.4) from separate connections: one certificate, never two."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from acme_server.models import Nonce, Order
from certificates.models import Certificate
from tests.acme.conftest import django_transport
from tests.acme.flow import b64, csr_der, new_order, prove_all
from tests.acme.jws import AcmeTestClient
from tests.conftest import running_on_postgres


@pytest.mark.skipif(not running_on_postgres(), reason="needs concurrent connections (runs in the PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_finalize_issues_one_certificate(committed_audit_events_removed, client_with_account, outcomes):
    answer = new_order(client_with_account, "race.example.com")
    order = answer.json()
    prove_all(client_with_account, order, outcomes)
    der, _key = csr_der(["race.example.com"])
    clients = [AcmeTestClient(django_transport(Client()), client_with_account.directory_url, client_with_account.key,
                              kid=client_with_account.kid) for _ in range(4)]
    for client in clients:
        client.nonce = client.fresh_nonce()
    barrier, results = threading.Barrier(len(clients)), []

    def finalize(client: AcmeTestClient) -> None:
        try:
            barrier.wait(timeout=30)
            reply = client.post(order["finalize"], {"csr": b64(der)})
            results.append((reply.status, reply.problem))
        finally:
            connection.close()

    threads = [threading.Thread(target=finalize, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == len(clients)
    assert sorted(status for status, _ in results) == [200, 403, 403, 403]
    assert {problem for status, problem in results if status != 200} == {"orderNotReady"}
    assert Certificate.objects.filter(acme_order__isnull=False).count() == 1
    assert Order.objects.get(name=answer.headers["location"].rsplit("/", 1)[1]).status == "valid"


@pytest.mark.skipif(not running_on_postgres(), reason="needs concurrent connections (runs in the PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_one_nonce_used_at_once_by_two_connections_counts_once(committed_audit_events_removed, client_with_account):
    nonce = client_with_account.fresh_nonce()
    clients = [AcmeTestClient(django_transport(Client()), client_with_account.directory_url, client_with_account.key,
                              kid=client_with_account.kid) for _ in range(3)]
    barrier, results = threading.Barrier(len(clients)), []

    def read(client: AcmeTestClient) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(client.post(client_with_account.kid, None, nonce=nonce).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=read, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [200, 400, 400]
    assert not Nonce.objects.filter(value=nonce).exists()
