"""Fixtures for the staff pages: a CA hierarchy built by the services, and clients per role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from certificates.models import Certificate, CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from pki_project.actor import Actor

ROOT_PASSWORD = "correct horse battery staple"


@dataclass
class Hierarchy:
    root: CertificateAuthority
    intermediate: CertificateAuthority


def build_hierarchy(organization, prefix: str = "Example") -> Hierarchy:
    operator = Actor.operator("tests")
    root = create_root_ca(organization=organization, common_name=f"{prefix} Root CA", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)
    intermediate = create_intermediate_ca(parent=root, common_name=f"{prefix} Issuing CA",
                                          root_password=ROOT_PASSWORD, key_type="ec-p256", days=1825,
                                          path_length=0, actor=operator)
    return Hierarchy(root, intermediate)


def issue_server_certificate(ca: CertificateAuthority, common_name: str = "www.example.com",
                             server_key: bool = True) -> Certificate:
    from tests.certificates.csrs import make_csr

    request = IssuanceRequest(profile="server", common_name=common_name, sans=(f"DNS:{common_name}",)) \
        if server_key else IssuanceRequest(profile="server", csr=make_csr(common_name))
    return issue_certificate(ca, request, actor=Actor.operator("tests"))


@pytest.fixture
def hierarchy(organization) -> Hierarchy:
    return build_hierarchy(organization)


@pytest.fixture
def other_hierarchy(other_organization) -> Hierarchy:
    return build_hierarchy(other_organization, prefix="Other")


@pytest.fixture
def leaf(hierarchy) -> Certificate:
    return issue_server_certificate(hierarchy.intermediate)


@pytest.fixture
def other_leaf(other_hierarchy) -> Certificate:
    return issue_server_certificate(other_hierarchy.intermediate, "www.other.example")


@pytest.fixture
def clients(make_principal_client, organization) -> dict[str, Client]:
    """Bearer clients: user, manager, admin of the organization; a global admin; another org's manager."""
    return {
        "user": make_principal_client("user", organization),
        "manager": make_principal_client("manager", organization),
        "admin": make_principal_client("admin", organization),
        "global_admin": make_principal_client("admin"),
        "other_manager": make_principal_client("manager"),
    }
