"""The approval rows of tests/audit/test_coverage.py: each operation, done as a client would, leaves one event."""

from __future__ import annotations

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from approvals.models import IssuanceApproval
from certificates.models import CertificateProfile
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.profiles import update_profile
from pki_project.actor import Actor
from tests.certificates.csrs import make_csr
from tests.factories import OrganizationFactory

ROOT_PASSWORD = "correct horse battery staple"


def _expected(**kwargs):
    from tests.audit.test_coverage import Expected

    return Expected(**kwargs)


def _setup(world):
    organization = OrganizationFactory()
    operator = Actor.operator("tests")
    root = create_root_ca(organization=organization, common_name="Approval Coverage Root",
                          root_password=ROOT_PASSWORD, key_type="ec-p256", days=3650, path_length=1, actor=operator)
    ca = create_intermediate_ca(parent=root, common_name="Approval Coverage Issuing", root_password=ROOT_PASSWORD,
                                key_type="ec-p256", days=1825, path_length=0, actor=operator)
    update_profile(CertificateProfile.objects.get(name="server"), {"requires_approval": True}, actor=operator)
    return organization, ca


def _submit(world, organization, ca):
    requester = world.make_client("manager", organization)
    response = requester.post("/api/v1/certificates/", {"ca": str(ca.pk), "profile": "server",
                                                        "csr": make_csr("coverage.example.com").decode()},
                              content_type="application/json")
    assert response.status_code == 202
    return requester, response.json()["id"]


def request(world):
    organization, ca = _setup(world)
    requester = world.make_client("manager", organization)
    world.mark()
    response = requester.post("/api/v1/certificates/", {"ca": str(ca.pk), "profile": "server",
                                                        "csr": make_csr("coverage.example.com").decode()},
                              content_type="application/json")
    assert response.status_code == 202
    return _expected(actor_username=requester.user.username, organization_id=organization.pk,
                     target_type="issuance_approval", target_id=str(response.json()["id"]),
                     details={"ca": ca.slug, "profile": "server", "names": ["DNS:coverage.example.com"]})


def approve(world):
    organization, ca = _setup(world)
    requester, approval_id = _submit(world, organization, ca)
    approver = world.make_client("admin", organization)
    world.mark()
    response = approver.post(f"/api/v1/approvals/{approval_id}/approve/", {}, content_type="application/json")
    assert response.status_code == 200
    return _expected(actor_username=approver.user.username, organization_id=organization.pk,
                     target_type="issuance_approval", target_id=str(approval_id),
                     target_serial=response.json()["issued"]["serial"],
                     details={"requested_by": requester.user.username})


def reject(world):
    organization, ca = _setup(world)
    _requester, approval_id = _submit(world, organization, ca)
    approver = world.make_client("manager", organization)
    world.mark()
    response = approver.post(f"/api/v1/approvals/{approval_id}/reject/", {"reason": "unknown host"},
                             content_type="application/json")
    assert response.status_code == 200
    return _expected(actor_username=approver.user.username, organization_id=organization.pk,
                     target_type="issuance_approval", target_id=str(approval_id), details={"reason": "unknown host"})


def expire(world):
    organization, ca = _setup(world)
    _requester, approval_id = _submit(world, organization, ca)
    IssuanceApproval.objects.filter(pk=approval_id).update(requested_at=timezone.now() - timedelta(days=8),
                                                           expires_at=timezone.now() - timedelta(minutes=1))
    world.mark()
    call_command("expire_approvals")
    return _expected(actor_label="system:expiry", organization_id=organization.pk, target_type="issuance_approval",
                     target_id=str(approval_id))


def ca_approval_change(world):
    organization, ca = _setup(world)
    world.mark()
    call_command("set_ca_approval", ca.slug, "--requires-approval")
    return _expected(actor_label="cli:set_ca_approval", organization_id=organization.pk, target_type="ca",
                     target_id=str(ca.pk), details={"requires_approval": True})
