"""Fixtures for the reliability tests: a small CA hierarchy built by the services, and subprocess helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certificates.models import CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from organizations.models import Organization
from pki_project.actor import Actor
from tests.reliability.installations import Installation, installation_for

ROOT_PASSWORD = "reliability root password 0123"


@pytest.fixture
def organization(db) -> Organization:
    return Organization.objects.create(name="Reliable Corp", slug="reliable")


@pytest.fixture
def operator() -> Actor:
    return Actor.operator("tests")


@pytest.fixture
def root_ca(organization: Organization, operator: Actor) -> CertificateAuthority:
    return create_root_ca(organization=organization, common_name="Reliable Root CA", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)


@pytest.fixture
def intermediate_ca(root_ca: CertificateAuthority, operator: Actor) -> CertificateAuthority:
    return create_intermediate_ca(parent=root_ca, common_name="Reliable Issuing CA", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, actor=operator)


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def installation(request, tmp_path_factory) -> Iterator[Installation]:
    """One real installation per engine and test module (PostgreSQL: a throw-away database; skipped if none)."""
    with installation_for(request.param, tmp_path_factory.mktemp(f"installation-{request.param}")) as instance:
        yield instance
