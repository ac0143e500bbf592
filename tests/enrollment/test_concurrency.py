"""One token used at the same instant by several clients: exactly one certificate, the others refused.

Against a live gunicorn (two workers of four threads) on a SQLite file and, in the PostgreSQL pass, on
the test database; and from threads of this process on separate PostgreSQL connections.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from certificates.models import Certificate
from enrollment.models import EnrollmentToken
from tests.certificates.csrs import make_csr
from tests.conftest import running_on_postgres
from tests.enrollment.live import live_enrollment

PARALLEL = 6


def _post(url: str, body: dict) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(),  # noqa: S310  (the live server, http)
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _race(send) -> list:
    barrier, results = threading.Barrier(PARALLEL), []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(send(index))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(results) == PARALLEL
    return results


@pytest.mark.django_db(transaction=True)
def test_parallel_uses_against_a_live_server_give_one_certificate(committed_audit_events_removed, tmp_path: Path):
    with live_enrollment(tmp_path) as live:
        token = live.new_token()
        csrs = [make_csr(f"r{index}.fleet.example.com").decode() for index in range(PARALLEL)]
        statuses = _race(lambda index: _post(f"{live.base}/enroll/", {"token": token["token"], "csr": csrs[index]}))
        assert sorted(statuses) == [201] + [401] * (PARALLEL - 1)
        rows = live.query("SELECT used_at, certificate_id FROM enrollment_enrollmenttoken WHERE token_id = %s",
                          token["token_id"])
        assert len(rows) == 1
        assert rows[0][0] is not None
        assert rows[0][1] is not None
        assert live.query("SELECT COUNT(*) FROM certificates_certificate WHERE kind = 'end_entity'") == [(1,)]
        uses = live.query("SELECT COUNT(*) FROM audit_auditevent WHERE action = 'enrollment_token.use'")
        assert uses == [(1,)]


@pytest.mark.skipif(not running_on_postgres(), reason="needs concurrent connections (runs in the PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_parallel_uses_from_threads_give_one_certificate(committed_audit_events_removed, make_token):
    created = make_token()
    csrs = [make_csr(f"r{index}.fleet.example.com").decode() for index in range(PARALLEL)]

    def send(index: int) -> int:
        return Client().post("/enroll/", {"token": created.secret, "csr": csrs[index]},
                             content_type="application/json").status_code

    before = Certificate.objects.count()
    assert sorted(_race(send)) == [201] + [401] * (PARALLEL - 1)
    assert Certificate.objects.count() == before + 1
    token = EnrollmentToken.objects.get(pk=created.token.pk)
    assert token.certificate_id is not None
    assert Certificate.objects.filter(pk=token.certificate_id).exists()
