"""The approvals page (strict CSP: no inline script or style) and the operator's commands."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from approvals.models import ApprovalStatus, IssuanceApproval
from audit.models import AuditEvent
from certificates.models import Certificate
from tests.api.conftest import make_csr

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_principal_client, organization):
    return make_principal_client("manager", organization, via="cookie")


@pytest.fixture
def admin(make_principal_client, organization):
    return make_principal_client("admin", organization, via="cookie")


def _issue_on_the_page(browser, intermediate_ca, name="page.example.com"):
    return browser.post("/certificates/issue", {"ca": intermediate_ca.pk, "profile": "server", "key_source": "csr",
                                                "csr": make_csr(name).decode(), "common_name": "", "sans": "",
                                                "key_type": "", "days": ""})


def test_the_issue_page_leaves_a_pending_request_and_the_page_lists_it(manager, admin, intermediate_ca, guarded):
    answer = _issue_on_the_page(manager, intermediate_ca)
    assert answer.status_code == 302
    assert answer["Location"] == "/approvals"
    approval = IssuanceApproval.objects.get()
    assert approval.status == ApprovalStatus.PENDING
    assert approval.requested_by == manager.user.username
    own = manager.get("/approvals").content.decode()
    assert "waits for the approval of another admin or manager" in own
    assert f'id="request-{approval.pk}"' in own
    assert f'id="approve-{approval.pk}"' not in own
    page = admin.get("/approvals")
    html = page.content.decode()
    assert f'id="approve-{approval.pk}"' in html
    assert "DNS:page.example.com" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html, "inline style attribute"
    assert "<style" not in html, "inline style element"
    assert "'unsafe-inline'" not in page.headers.get("Content-Security-Policy", "")


def test_the_requester_is_refused_on_the_page_and_another_approver_issues(manager, admin, intermediate_ca, guarded):
    _issue_on_the_page(manager, intermediate_ca)
    approval = IssuanceApproval.objects.get()
    refused = manager.post(f"/approvals/{approval.pk}/approve")
    assert refused.status_code == 403
    assert "someone other than its requester" in refused.content.decode()
    assert manager.post(f"/approvals/{approval.pk}/reject", {"reason": "mine"}).status_code == 403
    assert not Certificate.objects.filter(common_name="page.example.com").exists()
    assert admin.post(f"/approvals/{approval.pk}/reject", {"reason": ""}).status_code == 400
    approved = admin.post(f"/approvals/{approval.pk}/approve")
    certificate = Certificate.objects.get(common_name="page.example.com")
    assert approved.status_code == 302
    assert approved["Location"] == f"/certificates/{certificate.pk}"
    again = admin.post(f"/approvals/{approval.pk}/approve")
    assert again.status_code == 409
    assert "already approved" in again.content.decode()
    assert Certificate.objects.filter(common_name="page.example.com").count() == 1


def test_the_page_rejects_with_a_reason(manager, admin, intermediate_ca, guarded):
    _issue_on_the_page(manager, intermediate_ca)
    approval = IssuanceApproval.objects.get()
    answer = admin.post(f"/approvals/{approval.pk}/reject", {"reason": "Unknown host"})
    assert answer.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.reason == "Unknown host"
    assert "Unknown host" in admin.get("/approvals").content.decode()


def test_the_admin_lists_requests_read_only(manager, admin, intermediate_ca, guarded):
    _issue_on_the_page(manager, intermediate_ca)
    approval = IssuanceApproval.objects.get()
    listing = admin.get("/admin/approvals/issuanceapproval/")
    assert listing.status_code == 200
    assert manager.user.username in listing.content.decode()
    detail = admin.get(f"/admin/approvals/issuanceapproval/{approval.pk}/change/")
    assert detail.status_code == 200
    assert "approvals page" in detail.content.decode()
    assert admin.post(f"/admin/approvals/issuanceapproval/{approval.pk}/change/", {"status": "approved"}
                      ).status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def _command(*args: str) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_issue_certificate_prints_the_pending_request(intermediate_ca, guarded, tmp_path):
    csr = tmp_path / "request.csr"
    csr.write_bytes(make_csr("cli.example.com"))
    printed = _command("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "server", "--csr", str(csr))
    assert printed["status"] == "pending"
    assert printed["id"] == printed["approval"]
    assert not Certificate.objects.filter(common_name="cli.example.com").exists()
    out = StringIO()
    csr.write_bytes(make_csr("cli2.example.com"))
    call_command("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "server", "--csr", str(csr),
                 stdout=out)
    assert re.search(r"Request \d+ is pending approval", out.getvalue())
    # the console does not approve what the console asked for: a member does
    with pytest.raises(CommandError, match="someone other than its requester"):
        call_command("approve_request", str(printed["id"]), stdout=StringIO())
    assert IssuanceApproval.objects.get(pk=printed["id"]).status == ApprovalStatus.PENDING


def test_operators_approve_and_reject_members_requests(clients, intermediate_ca, guarded):
    from tests.api.conftest import post_json

    def submit(name):
        answer = post_json(clients["manager"], "/api/v1/certificates/",
                           {"ca": str(intermediate_ca.pk), "profile": "server", "csr": make_csr(name).decode()})
        assert answer.status_code == 202
        return answer.json()["id"]

    first, second = submit("op1.example.com"), submit("op2.example.com")
    approved = _command("approve_request", str(first))
    assert approved["status"] == "approved"
    assert Certificate.objects.get(pk=approved["certificate"]).serial == approved["serial"]
    with pytest.raises(CommandError, match="already approved"):
        call_command("approve_request", str(first), stdout=StringIO())
    with pytest.raises(CommandError, match="reason"):
        call_command("reject_request", str(second), "--reason", " ", stdout=StringIO())
    assert _command("reject_request", str(second), "--reason", "Not needed")["status"] == "rejected"
    with pytest.raises(CommandError, match="No request"):
        call_command("approve_request", "999999", stdout=StringIO())
    out = StringIO()
    call_command("list_approvals", "--status", "rejected", stdout=out)
    assert f"{second}\trejected" in out.getvalue()
    event = AuditEvent.objects.get(action="approval.approve", target_id=str(first))
    assert event.actor_label == "cli:approve_request"


def test_expire_approvals_and_set_ca_approval(clients, intermediate_ca, guarded):
    from datetime import timedelta

    from django.utils import timezone

    from tests.api.conftest import post_json

    answer = post_json(clients["manager"], "/api/v1/certificates/",
                       {"ca": str(intermediate_ca.pk), "profile": "server",
                        "csr": make_csr("old.example.com").decode()})
    IssuanceApproval.objects.filter(pk=answer.json()["id"]).update(
        requested_at=timezone.now() - timedelta(days=9), expires_at=timezone.now() - timedelta(days=2))
    assert _command("expire_approvals") == {"expired": 1}
    assert _command("expire_approvals") == {"expired": 0}
    assert IssuanceApproval.objects.get(pk=answer.json()["id"]).status == ApprovalStatus.EXPIRED
    flag = _command("set_ca_approval", intermediate_ca.slug, "--requires-approval")
    assert flag["requires_approval"] is True
    assert _command("set_ca_approval", intermediate_ca.slug, "--no-requires-approval")["requires_approval"] is False
