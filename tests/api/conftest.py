"""Fixtures for the REST API tests: a CA hierarchy in the main and in another organization, certificates,
and signed-in clients for every kind of caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from pki_project.actor import Actor
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr

__all__ = ["ROOT_PASSWORD", "make_csr"]


@pytest.fixture
def operator() -> Actor:
    return Actor.operator("tests")


def _hierarchy(organization, operator: Actor, name: str) -> tuple[CertificateAuthority, CertificateAuthority]:
    root = create_root_ca(organization=organization, common_name=f"{name} Root CA", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)
    inter = create_intermediate_ca(parent=root, common_name=f"{name} Issuing CA", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", days=1825, path_length=0, actor=operator)
    return root, inter


@pytest.fixture
def hierarchy(organization, operator) -> tuple[CertificateAuthority, CertificateAuthority]:
    return _hierarchy(organization, operator, "Main")


@pytest.fixture
def root_ca(hierarchy) -> CertificateAuthority:
    return hierarchy[0]


@pytest.fixture
def intermediate_ca(hierarchy) -> CertificateAuthority:
    return hierarchy[1]


@pytest.fixture
def other_hierarchy(other_organization, operator) -> tuple[CertificateAuthority, CertificateAuthority]:
    return _hierarchy(other_organization, operator, "Other")


@pytest.fixture
def issued(intermediate_ca, operator) -> Certificate:
    """An end-entity certificate issued from a CSR (the subscriber holds the key)."""
    return issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("www.example.com")),
                             actor=operator)


@pytest.fixture
def server_key_certificate(intermediate_ca, operator) -> Certificate:
    """An end-entity certificate whose key was generated here (PKCS#12 and password stored encrypted)."""
    request = IssuanceRequest(profile="client", common_name="device-1.example.com",
                              sans=("DNS:device-1.example.com",))
    return issue_certificate(intermediate_ca, request, actor=operator)


@pytest.fixture
def other_issued(other_hierarchy, operator) -> Certificate:
    return issue_certificate(other_hierarchy[1],
                             IssuanceRequest(profile="server", csr=make_csr("www.other.example")), actor=operator)


@pytest.fixture
def clients(make_principal_client, organization, other_organization) -> dict[str, Client]:
    """user, manager, admin (of the main organization), global_admin, other_manager, other_admin, anonymous."""
    return {
        "user": make_principal_client("user", organization),
        "manager": make_principal_client("manager", organization),
        "admin": make_principal_client("admin", organization),
        "global_admin": make_principal_client("admin"),
        "other_manager": make_principal_client("manager", other_organization),
        "other_admin": make_principal_client("admin", other_organization),
        "anonymous": Client(),
    }


def post_json(client: Client, url: str, body=None, **extra):
    import json

    data = body if isinstance(body, bytes | str) else json.dumps({} if body is None else body)
    return client.post(url, data, content_type="application/json", **extra)


def snapshot(data_dir: Path) -> dict[str, object]:
    """Everything a request could change: rows, files under PKI_DATA_DIR, successful audit events."""
    return {
        "certificates": Certificate.objects.count(),
        "cas": CertificateAuthority.objects.count(),
        "crls": CertificateRevocationList.objects.count(),
        "revoked": Certificate.objects.filter(revoked_at__isnull=False).count(),
        "files": sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()),
        "success_events": AuditEvent.objects.filter(outcome="success").count(),
    }
