"""ACME orders under a profile that requires approval (RFC 8555 7.4): finalize leaves the order processing
with Retry-After; a member's approval completes it, a rejection or expiry makes it invalid."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography import x509
from django.utils import timezone

from acme_server.models import Order
from approvals.models import ApprovalStatus, IssuanceApproval
from certificates.models import Certificate, CertificateProfile
from certificates.services.profiles import update_profile
from pki_project.actor import Actor
from tests.acme.flow import b64, csr_der, new_order, prove_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def guarded(db):
    return update_profile(CertificateProfile.objects.get(name="server"), {"requires_approval": True},
                          actor=Actor.operator("tests"))


def _finalized(client, outcomes, name: str):
    answer = new_order(client, name)
    order_url = answer.headers["location"]
    prove_all(client, answer.json(), outcomes)
    der, _key = csr_der([name])
    finalized = client.post(answer.json()["finalize"], {"csr": b64(der)})
    return finalized, order_url


def test_finalize_waits_for_approval_then_the_order_completes(client_with_account, outcomes, guarded,
                                                               make_principal_client, acme_org):
    finalized, order_url = _finalized(client_with_account, outcomes, "approved.example.com")
    assert finalized.status == 200, finalized.body
    assert finalized.json()["status"] == "processing"
    assert "certificate" not in finalized.json()
    assert int(finalized.headers["retry-after"]) > 0
    polled = client_with_account.post(order_url, None)
    assert polled.json()["status"] == "processing"
    assert "retry-after" in polled.headers
    approval = IssuanceApproval.objects.get()
    assert approval.requested_by.startswith("acme:")
    assert approval.names == ["DNS:approved.example.com"]
    assert not Certificate.objects.filter(kind="end_entity").exists()

    approver = make_principal_client("manager", acme_org)
    answer = approver.post(f"/api/v1/approvals/{approval.pk}/approve/", "{}", content_type="application/json")
    assert answer.status_code == 200, answer.content
    order = client_with_account.post(order_url, None).json()
    assert order["status"] == "valid"
    chain = client_with_account.post(order["certificate"], None)
    assert chain.status == 200
    leaf = x509.load_pem_x509_certificates(chain.body)[0]
    assert leaf.serial_number == int(json.loads(answer.content)["issued"]["serial"], 16)
    assert Certificate.objects.filter(acme_order__isnull=False).get().sans == ["DNS:approved.example.com"]


def test_a_rejection_makes_the_order_invalid(client_with_account, outcomes, guarded, make_principal_client, acme_org):
    _finalized_answer, order_url = _finalized(client_with_account, outcomes, "rejected.example.com")
    approval = IssuanceApproval.objects.get()
    approver = make_principal_client("admin", acme_org)
    answer = approver.post(f"/api/v1/approvals/{approval.pk}/reject/", json.dumps({"reason": "not ours"}),
                           content_type="application/json")
    assert answer.status_code == 200
    order = client_with_account.post(order_url, None).json()
    assert order["status"] == "invalid"
    assert "not ours" in order["error"]["detail"]
    assert not Certificate.objects.filter(kind="end_entity").exists()


def test_an_expired_approval_makes_the_order_invalid(client_with_account, outcomes, guarded):
    _finalized_answer, order_url = _finalized(client_with_account, outcomes, "late.example.com")
    IssuanceApproval.objects.update(requested_at=timezone.now() - timedelta(days=8),
                                    expires_at=timezone.now() - timedelta(seconds=1))
    order = client_with_account.post(order_url, None).json()
    assert order["status"] == "invalid"
    assert "expired" in order["error"]["detail"]
    assert IssuanceApproval.objects.get().status == ApprovalStatus.EXPIRED
    assert Order.objects.get(name=order_url.rsplit("/", 1)[1]).status == "invalid"
