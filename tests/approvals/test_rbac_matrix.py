"""The approval routes (API and page) x every kind of caller, each on a fresh pending request of another member.

rbac.json admits admins and managers; tenancy makes another organization's request 404 (its list is
empty); the service refuses the requester (tests/approvals/test_flow.py). Every refusal changes nothing.
"""

from __future__ import annotations

import pytest
from django.test import Client

from approvals.models import ApprovalStatus, IssuanceApproval
from approvals.services import submit_issuance
from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest
from pki_project.actor import Actor
from tests.api.conftest import make_csr, post_json

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "user", "manager", "admin", "global_admin", "other_manager", "other_admin"]
DECIDE = {"anonymous": 401, "user": 403, "other_manager": 404, "other_admin": 404}
DECIDE_PAGE = {"anonymous": 302, "user": 403, "other_manager": 404, "other_admin": 404}


@pytest.fixture
def requester(make_principal_client, organization):
    return make_principal_client("manager", organization)


def _pending(intermediate_ca, requester, caller: str) -> IssuanceApproval:
    name = f"{caller.replace('_', '-')}.matrix.example"
    request = IssuanceRequest(profile="server", csr=make_csr(name))
    actor = Actor(principal=_principal(requester))
    return submit_issuance(intermediate_ca, request, actor=actor)


def _principal(client):
    from organizations.principal import Principal

    membership = client.user.membership
    return Principal(user_id=client.user.pk, username=client.user.username, role=membership.role,
                     organization_id=membership.organization_id)


API = {
    "GET approvals/": ("GET", lambda a: "/api/v1/approvals/", None,
                       {"anonymous": 401, "user": 403}, 200),
    "GET approvals/{id}/": ("GET", lambda a: f"/api/v1/approvals/{a.pk}/", None, DECIDE, 200),
    "POST approvals/{id}/approve/": ("POST", lambda a: f"/api/v1/approvals/{a.pk}/approve/", {}, DECIDE, 200),
    "POST approvals/{id}/reject/": ("POST", lambda a: f"/api/v1/approvals/{a.pk}/reject/", {"reason": "matrix"},
                                    DECIDE, 200),
}
PAGES = {
    "GET /approvals": ("GET", lambda a: "/approvals", None, {"anonymous": 302, "user": 403}, 200),
    "POST /approvals/{pk}/approve": ("POST", lambda a: f"/approvals/{a.pk}/approve", {}, DECIDE_PAGE, 302),
    "POST /approvals/{pk}/reject": ("POST", lambda a: f"/approvals/{a.pk}/reject", {"reason": "matrix"},
                                    DECIDE_PAGE, 302),
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(API))
def test_api_matrix(route, caller, clients, intermediate_ca, requester, guarded):
    method, url, body, expected, default = API[route]
    approval = _pending(intermediate_ca, requester, caller)
    certificates = Certificate.objects.count()
    client = clients[caller]
    answer = client.get(url(approval)) if method == "GET" else post_json(client, url(approval), body)
    status = expected.get(caller, default)
    assert answer.status_code == status, (route, caller, answer.content[:300])
    row = IssuanceApproval.objects.get(pk=approval.pk)
    if status >= 400 or method == "GET":
        assert row.status == ApprovalStatus.PENDING
        assert Certificate.objects.count() == certificates
        if status >= 400:
            assert "error" in answer.json() or status == 401
    elif route.endswith("approve/"):
        assert row.status == ApprovalStatus.APPROVED
        assert Certificate.objects.count() == certificates + 1
    else:
        assert row.status == ApprovalStatus.REJECTED
        assert Certificate.objects.count() == certificates
    if route == "GET approvals/" and status == 200:
        listed = {item["id"] for item in answer.json()["results"]}
        assert (approval.pk in listed) == (caller not in ("other_manager", "other_admin"))


@pytest.fixture
def browsers(make_principal_client, organization, other_organization) -> dict[str, Client]:
    def cookie(role, org=None):
        return make_principal_client(role, org, via="cookie")

    return {"anonymous": Client(), "user": cookie("user", organization), "manager": cookie("manager", organization),
            "admin": cookie("admin", organization), "global_admin": cookie("admin"),
            "other_manager": cookie("manager", other_organization),
            "other_admin": cookie("admin", other_organization)}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(PAGES))
def test_page_matrix(route, caller, browsers, intermediate_ca, requester, guarded):
    method, url, data, expected, default = PAGES[route]
    approval = _pending(intermediate_ca, requester, caller)
    certificates = Certificate.objects.count()
    client = browsers[caller]
    answer = client.get(url(approval)) if method == "GET" else client.post(url(approval), data)
    status = expected.get(caller, default)
    assert answer.status_code == status, (route, caller, answer.content[:300])
    row = IssuanceApproval.objects.get(pk=approval.pk)
    if status != 302 or caller == "anonymous":
        assert row.status == ApprovalStatus.PENDING
        assert Certificate.objects.count() == certificates
    if status == 302 and caller == "anonymous":
        assert answer["Location"].startswith("/auth/login")
    if route == "GET /approvals" and status == 200:
        page = answer.content.decode()
        shown = f'id="request-{approval.pk}"' in page
        assert shown == (caller not in ("other_manager", "other_admin"))
        assert (f'id="approve-{approval.pk}"' in page) == shown  # none of them asked: all may decide
