"""Fixtures for CA and certificate tests: organizations and a small CA hierarchy built by the services."""

from __future__ import annotations

import pytest

from certificates.models import CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from organizations.models import Organization
from pki_project.actor import Actor

ROOT_PASSWORD = "correct horse battery staple"


@pytest.fixture
def organization(db) -> Organization:
    return Organization.objects.create(name="Example Corp", slug="example")


@pytest.fixture
def other_organization(db) -> Organization:
    return Organization.objects.create(name="Other Corp", slug="other")


@pytest.fixture
def operator() -> Actor:
    return Actor.operator("tests")


@pytest.fixture
def root_ca(organization: Organization, operator: Actor) -> CertificateAuthority:
    return create_root_ca(organization=organization, common_name="Example Root CA", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)


@pytest.fixture
def intermediate_ca(root_ca: CertificateAuthority, operator: Actor) -> CertificateAuthority:
    return create_intermediate_ca(parent=root_ca, common_name="Example Issuing CA", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, actor=operator)
