"""Two-person approval through the API: a manager's request waits; only another approver issues it, once."""

from __future__ import annotations

import pytest
from cryptography import x509

from approvals.models import ApprovalStatus, IssuanceApproval
from audit.models import AuditEvent
from certificates.errors import PolicyViolation
from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.records import load_x509
from tests.api.conftest import make_csr, post_json, snapshot
from tests.factories import ApiKeyFactory
from tests.judges import openssl_verify, pkilint_findings

pytestmark = pytest.mark.django_db


def _request(client, intermediate_ca, name="guarded.example.com", **extra):
    body = {"ca": str(intermediate_ca.pk), "profile": "server", "csr": make_csr(name).decode(), **extra}
    return post_json(client, "/api/v1/certificates/", body)


def _approve(client, approval_id):
    return post_json(client, f"/api/v1/approvals/{approval_id}/approve/")


def test_a_managers_request_waits_and_only_another_approver_issues_it_once(clients, intermediate_ca, root_ca,
                                                                          guarded, tmp_path):
    before = Certificate.objects.count()
    answer = _request(clients["manager"], intermediate_ca)
    assert answer.status_code == 202, answer.content
    pending = answer.json()
    assert pending["status"] == "pending"
    assert pending["names"] == ["DNS:guarded.example.com"]
    assert pending["requested_by"] == clients["manager"].user.username
    assert pending["certificate"] is None
    assert Certificate.objects.count() == before  # nothing issued yet
    assert AuditEvent.objects.filter(action="approval.request", target_id=str(pending["id"])).count() == 1

    refused = _approve(clients["manager"], pending["id"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "own_request"
    assert Certificate.objects.count() == before

    approved = _approve(clients["admin"], pending["id"])
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["status"] == "approved"
    assert body["decided_by"] == clients["admin"].user.username
    certificate = Certificate.objects.get(pk=body["certificate"])
    assert body["issued"]["serial"] == certificate.serial
    assert certificate.created_by == clients["manager"].user.username  # the requester's certificate
    assert Certificate.objects.count() == before + 1

    again = _approve(clients["admin"], pending["id"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_decided"
    assert Certificate.objects.count() == before + 1
    issue_event = AuditEvent.objects.get(action="certificate.issue", target_id=str(certificate.pk))
    assert issue_event.details["approval"] == pending["id"]
    assert issue_event.actor_username == clients["admin"].user.username
    assert AuditEvent.objects.filter(action="approval.approve", target_id=str(pending["id"])).count() == 1

    leaf = load_x509(certificate)
    result = openssl_verify(tmp_path, load_x509(root_ca.certificate), leaf, [load_x509(intermediate_ca.certificate)],
                            ["-purpose", "sslserver"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert pkilint_findings("lint_pkix_cert", certificate_pem(leaf)) == []


def certificate_pem(certificate: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate.public_bytes(Encoding.PEM)


def test_another_api_key_of_the_requester_is_still_the_requester(clients, intermediate_ca, guarded, client):
    pending = _request(clients["manager"], intermediate_ca).json()
    second_key = ApiKeyFactory(user=clients["manager"].user)
    answer = client.post(f"/api/v1/approvals/{pending['id']}/approve/", "{}", content_type="application/json",
                         headers={"Authorization": f"Bearer {second_key.plain_key}"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "own_request"
    assert IssuanceApproval.objects.get(pk=pending["id"]).status == ApprovalStatus.PENDING


def test_another_manager_of_the_organization_may_approve(make_principal_client, clients, organization,
                                                         intermediate_ca, guarded):
    pending = _request(clients["admin"], intermediate_ca).json()
    colleague = make_principal_client("manager", organization)
    assert _approve(colleague, pending["id"]).status_code == 200
    assert IssuanceApproval.objects.get(pk=pending["id"]).certificate is not None


def test_users_and_other_organizations_cannot_see_or_decide(clients, intermediate_ca, guarded):
    pending = _request(clients["manager"], intermediate_ca).json()
    url = f"/api/v1/approvals/{pending['id']}/"
    assert clients["user"].get("/api/v1/approvals/").status_code == 403
    assert _approve(clients["user"], pending["id"]).status_code == 403
    assert post_json(clients["user"], f"{url}reject/", {"reason": "no"}).status_code == 403
    for caller in ("other_manager", "other_admin"):
        assert clients[caller].get(url).status_code == 404
        assert clients[caller].get("/api/v1/approvals/").json()["results"] == []
        assert _approve(clients[caller], pending["id"]).status_code == 404
        assert post_json(clients[caller], f"{url}reject/", {"reason": "no"}).status_code == 404
    assert clients["anonymous"].get("/api/v1/approvals/").status_code == 401
    assert IssuanceApproval.objects.get(pk=pending["id"]).status == ApprovalStatus.PENDING
    # a global admin sees and may decide every organization's requests
    assert clients["global_admin"].get(url).json()["id"] == pending["id"]


def test_rejection_needs_a_reason_and_issues_nothing(clients, intermediate_ca, guarded, data_dir):
    pending = _request(clients["manager"], intermediate_ca).json()
    url = f"/api/v1/approvals/{pending['id']}/reject/"
    before = snapshot(data_dir)
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": 7}):
        answer = post_json(clients["admin"], url, body)
        assert answer.status_code == 400, (body, answer.content)
        assert "error" in answer.json()
    assert snapshot(data_dir) == before
    assert post_json(clients["manager"], url, {"reason": "withdrawn"}).status_code == 403  # not the requester
    answer = post_json(clients["admin"], url, {"reason": "Not our domain."})
    assert answer.status_code == 200
    assert answer.json()["status"] == "rejected"
    assert answer.json()["reason"] == "Not our domain."
    assert _approve(clients["admin"], pending["id"]).status_code == 409
    assert post_json(clients["admin"], url, {"reason": "twice"}).status_code == 409
    assert Certificate.objects.filter(common_name="guarded.example.com").count() == 0
    event = AuditEvent.objects.get(action="approval.reject", target_id=str(pending["id"]))
    assert event.details["reason"] == "Not our domain."


def test_expired_requests_cannot_be_approved(clients, intermediate_ca, guarded, settings):
    from datetime import timedelta

    from django.utils import timezone

    pending = _request(clients["manager"], intermediate_ca).json()
    row = IssuanceApproval.objects.get(pk=pending["id"])
    assert row.expires_at - row.requested_at == timedelta(hours=settings.PKI_APPROVAL_TTL_HOURS) == timedelta(days=7)
    IssuanceApproval.objects.filter(pk=row.pk).update(requested_at=timezone.now() - timedelta(days=8),
                                                      expires_at=timezone.now() - timedelta(seconds=1))
    answer = _approve(clients["admin"], pending["id"])
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "request_expired"
    assert IssuanceApproval.objects.get(pk=row.pk).status == ApprovalStatus.EXPIRED
    assert AuditEvent.objects.filter(action="approval.expire", target_id=str(row.pk)).count() == 1
    assert Certificate.objects.filter(common_name="guarded.example.com").count() == 0
    listed = clients["admin"].get("/api/v1/approvals/?status=expired").json()["results"]
    assert [item["id"] for item in listed] == [row.pk]


def test_a_server_key_is_generated_only_at_approval(clients, intermediate_ca, operator, data_dir):
    from certificates.models import CertificateProfile
    from certificates.services.profiles import update_profile

    update_profile(CertificateProfile.objects.get(name="client"), {"requires_approval": True}, actor=operator)
    files_before = sorted(p for p in data_dir.rglob("*") if p.is_file())
    answer = post_json(clients["manager"], "/api/v1/certificates/",
                       {"ca": str(intermediate_ca.pk), "profile": "client", "common_name": "robot-7",
                        "key_type": "ec-p384"})
    assert answer.status_code == 202, answer.content
    row = IssuanceApproval.objects.get(pk=answer.json()["id"])
    assert row.key_type == "ec-p384"
    assert row.csr == ""
    assert answer.json()["key_source"] == "server"
    assert sorted(p for p in data_dir.rglob("*") if p.is_file()) == files_before  # no key anywhere yet
    approved = _approve(clients["admin"], row.pk).json()
    assert approved["issued"]["has_pkcs12"] is True
    assert approved["issued"]["key_type"] == "ec-p384"


def test_invalid_requests_are_refused_before_they_wait(clients, intermediate_ca, guarded, data_dir):
    before = snapshot(data_dir)
    bad = [
        {"ca": str(intermediate_ca.pk), "profile": "server", "common_name": "bad_name!"},
        {"ca": str(intermediate_ca.pk), "profile": "server", "csr": "not a csr"},
        {"ca": str(intermediate_ca.pk), "profile": "server", "common_name": "a.example.com", "days": 4000},
        {"ca": str(intermediate_ca.pk), "profile": "server", "common_name": "a.example.com", "sans": ["EMAIL:a@b.c"]},
        {"ca": str(intermediate_ca.pk), "profile": "server", "common_name": "a.example.com", "key_type": "dsa"},
    ]
    for body in bad:
        answer = post_json(clients["manager"], "/api/v1/certificates/", body)
        assert 400 <= answer.status_code < 500, (body, answer.content)
        assert set(answer.json()["error"]) >= {"code", "message"}
    assert IssuanceApproval.objects.count() == 0
    assert snapshot(data_dir) == before


def test_the_issuance_service_refuses_what_needs_approval(intermediate_ca, guarded, operator):
    """A channel that does not know approvals cannot issue around it: the service itself refuses."""
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("x.example.com")),
                          actor=operator)
    assert refused.value.code == "approval_required"
    assert not Certificate.objects.filter(common_name="x.example.com").exists()


def test_a_ca_can_require_approval_for_every_profile(clients, intermediate_ca, operator):
    from approvals.services import set_ca_requires_approval

    set_ca_requires_approval(intermediate_ca, True, actor=operator)
    answer = post_json(clients["manager"], "/api/v1/certificates/",
                       {"ca": str(intermediate_ca.pk), "profile": "client", "common_name": "robot-8"})
    assert answer.status_code == 202
    assert AuditEvent.objects.filter(action="ca.approval_change", target_id=str(intermediate_ca.pk)).exists()
    set_ca_requires_approval(intermediate_ca, False, actor=operator)
    answer = post_json(clients["manager"], "/api/v1/certificates/",
                       {"ca": str(intermediate_ca.pk), "profile": "client", "common_name": "robot-9"})
    assert answer.status_code == 201


def test_a_profile_without_approval_still_issues_at_once(clients, intermediate_ca):
    assert _request(clients["manager"], intermediate_ca, "plain.example.com").status_code == 201
    assert IssuanceApproval.objects.count() == 0


def test_an_idempotency_key_replays_the_pending_request(clients, intermediate_ca, guarded):
    """A retried submission answers the first pending request again (202, replayed) and waits once."""
    body = {"ca": str(intermediate_ca.pk), "profile": "server", "csr": make_csr("idem.example.com").decode()}
    first = post_json(clients["manager"], "/api/v1/certificates/", body, HTTP_IDEMPOTENCY_KEY="approval-key-1")
    assert first.status_code == 202
    again = post_json(clients["manager"], "/api/v1/certificates/", body, HTTP_IDEMPOTENCY_KEY="approval-key-1")
    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert IssuanceApproval.objects.filter(status="pending").count() == 1
