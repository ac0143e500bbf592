"""`pki_project.db.PreparedSelect` returns what the ORM returns, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from certificates.models import Certificate, CertificateKind, KeySource
from organizations.models import Organization
from pki_project.db import PreparedSelect

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 22, 12, 0, 0, 654321, tzinfo=UTC)


def _row(organization: Organization, serial: str) -> Certificate:
    return Certificate.objects.create(
        organization=organization, issuer=None, kind=CertificateKind.ROOT_CA, serial=serial,
        common_name=f"CA {serial}", subject=f"CN=CA {serial}", sans=["DNS:a.example", "IP:192.0.2.1"],
        key_type="ec-p256", key_source=KeySource.SERVER, not_before=NOW, not_after=NOW + timedelta(days=9),
        fingerprint_sha256=serial.rjust(64, "0"), der=b"\x30\x03\x02\x01\x00", created_by="tests",
    )


def _by_serial_in_organization(serial: str, organization_id: int):
    return Certificate.objects.select_related("organization").filter(
        serial=serial, organization_id=organization_id).order_by()[:2]


BY_SERIAL = PreparedSelect(_by_serial_in_organization, str, int)


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def test_rows_and_related_rows_equal_the_orms() -> None:
    organization = Organization.objects.create(name="Prepared Corp", slug="prepared")
    _row(organization, "0a")
    expected = list(_by_serial_in_organization("0a", organization.pk))
    found = BY_SERIAL.fetch("0a", organization.pk)
    assert len(found) == len(expected) == 1
    assert _fields(found[0]) == _fields(expected[0])  # datetimes, JSON and bytes converted alike
    assert isinstance(found[0].not_before, datetime)
    assert found[0].sans == ["DNS:a.example", "IP:192.0.2.1"]
    with CaptureQueriesContext(connection) as queries:
        assert found[0].organization.slug == "prepared"  # populated by the join, as select_related does
    assert len(queries) == 0


def test_each_call_uses_its_own_values() -> None:
    first = Organization.objects.create(name="First Corp", slug="first")
    second = Organization.objects.create(name="Second Corp", slug="second")
    _row(first, "0b")
    _row(second, "0c")
    assert [row.serial for row in BY_SERIAL.fetch("0b", first.pk)] == ["0b"]
    assert [row.serial for row in BY_SERIAL.fetch("0c", second.pk)] == ["0c"]
    assert BY_SERIAL.fetch("0b", second.pk) == []  # the organization filter holds
    assert BY_SERIAL.fetch("' OR 1=1 --", first.pk) == []  # values are parameters, never SQL


def test_a_constant_of_the_query_stays_a_constant() -> None:
    organization = Organization.objects.create(name="Constant Corp", slug="constant")
    _row(organization, "0d")
    _row(organization, "0e")
    either = PreparedSelect(lambda serial: Certificate.objects.filter(
        Q(serial=serial) | Q(serial="0e")).order_by("serial"), str)
    assert [row.serial for row in either.fetch("0d")] == ["0d", "0e"]
    assert [row.serial for row in either.fetch("ff")] == ["0e"]


def test_a_placeholder_missing_from_the_query_is_refused() -> None:
    ignores_its_argument = PreparedSelect(lambda serial: Certificate.objects.all(), str)
    with pytest.raises(ValueError, match="placeholder"):
        ignores_its_argument.fetch("0f")
