"""The queries that read a CA's certificates use an index, not a scan of every certificate.

Each index on `certificates_certificate` is updated by every issuance, so the set is kept
small; these plans show that the ones left serve the queries that need them.
SQLite's planner decides from the schema alone (no statistics are gathered), so its plans
are stable; PostgreSQL's depend on table statistics and are not asserted here.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certificates.filters import prefix_range
from certificates.models import Certificate, CertificateAuthority, CertificateKind
from certificates.services.crls import revoked_entries

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite",
                       reason="query plans are asserted on SQLite (PostgreSQL plans follow table statistics)"),
]


def _plan(sql: str, params=()) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def _queryset_plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    return _plan(sql, params)


def _captured_plan(run) -> str:
    with CaptureQueriesContext(connection) as captured:
        run()
    [query] = [q["sql"] for q in captured.captured_queries if "certificates_certificate" in q["sql"]]
    return _plan(query)


def test_crl_entries_are_read_from_the_partial_index_alone(intermediate_ca: CertificateAuthority) -> None:
    now = timezone.now()
    plan = _captured_plan(lambda: list(revoked_entries(intermediate_ca, now)))
    assert "USING COVERING INDEX cert_crl_entries" in plan, plan


def test_a_delta_crls_entries_use_the_partial_index(intermediate_ca: CertificateAuthority) -> None:
    now = timezone.now()
    plan = _captured_plan(lambda: list(revoked_entries(intermediate_ca, now, since=now - timedelta(hours=1))))
    assert "cert_crl_entries" in plan, plan


def test_a_cas_page_is_read_in_id_order_from_the_issuer_index(intermediate_ca: CertificateAuthority) -> None:
    plan = _queryset_plan(Certificate.objects.filter(issuer=intermediate_ca).order_by("-id")[:50])
    assert "certificates_certificate_issuer_id" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort of the CA's whole inventory


def test_the_valid_certificates_below_a_ca_are_found_through_the_issuer_index(
        intermediate_ca: CertificateAuthority) -> None:
    now = timezone.now()
    plan = _queryset_plan(Certificate.objects.filter(issuer=intermediate_ca).valid(now).order_by("pk"))
    assert "certificates_certificate_issuer_id" in plan, plan


def test_the_ocsp_responder_lookup_uses_an_index(intermediate_ca: CertificateAuthority) -> None:
    now = timezone.now()
    queryset = Certificate.objects.filter(issuer_id=intermediate_ca.pk, kind=CertificateKind.OCSP_RESPONDER,
                                          revoked_at__isnull=True, not_after__gt=now).order_by("-not_after")[:1]
    plan = _queryset_plan(queryset)
    assert "USING INDEX cert_ocsp_responders" in plan, plan  # the partial index: responders only
    assert "TEMP B-TREE" not in plan, plan


def _serial_index_name() -> str:
    """SQLite names a table's UNIQUE constraint index sqlite_autoindex_<table>_<n>: find the (serial, issuer) one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pragma_index_list('certificates_certificate') WHERE origin = 'u'")
        for (name,) in cursor.fetchall():
            cursor.execute("SELECT name FROM pragma_index_info(%s) ORDER BY seqno", [name])
            if [column for (column,) in cursor.fetchall()] == ["serial", "issuer_id"]:
                return name
    raise AssertionError("no unique (serial, issuer_id) index")


def test_a_certificate_is_found_by_serial_alone_through_the_unique_index(
        intermediate_ca: CertificateAuthority) -> None:
    plan = _queryset_plan(Certificate.objects.filter(serial="0a1b2c"))
    assert f"USING INDEX {_serial_index_name()} (serial=?)" in plan, plan


def test_a_serial_prefix_search_is_a_range_of_the_unique_index(intermediate_ca: CertificateAuthority) -> None:
    plan = _queryset_plan(Certificate.objects.filter(prefix_range("serial", "0a1b")))
    assert f"USING INDEX {_serial_index_name()} (serial>? AND serial<?)" in plan, plan


def test_a_serial_under_its_issuer_is_one_probe_of_the_unique_index(intermediate_ca: CertificateAuthority) -> None:
    plan = _queryset_plan(Certificate.objects.filter(issuer=intermediate_ca, serial="0a1b2c"))
    assert f"USING INDEX {_serial_index_name()} (serial=? AND issuer_id=?)" in plan, plan
