"""Every CA, certificate and CRL route (and the admin-only API operations) x every kind of caller x
organization, with real objects.

Roles are enforced by rbac.json (403 before the view runs), tenancy by the views' querysets (another
organization's object answers 404, never 403 and never its data); the object-dependent role rules (p12
downloads, a root's CRL, CA and OCSP responder revocation) are the service layer's
(certificates.services.permissions), which the pages and the admin meet too (tests/pages/test_rbac_matrix.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from certificates.services.authorities import create_intermediate_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.ocsp import issue_responder_certificate
from tests.api.conftest import ROOT_PASSWORD, make_csr, post_json

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "user", "manager", "admin", "global_admin", "other_manager", "other_admin"]


@dataclass
class Route:
    method: str
    url: Callable  # (world, caller) -> url
    body: Callable | None = None  # (world, caller) -> dict
    expected: dict | None = None  # caller -> status; callers not named: the default
    default: int = 200


def _fresh_certificate(world, server_key: bool = False):
    request = (IssuanceRequest(profile="client", common_name="rbac.example.com", sans=("DNS:rbac.example.com",))
               if server_key else IssuanceRequest(profile="server", csr=make_csr("rbac.example.com")))
    return issue_certificate(world["inter"], request, actor=world["operator"])


def _fresh_intermediate(world, caller):
    return create_intermediate_ca(parent=world["root"], common_name=f"Matrix {caller} CA", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=365, path_length=0, actor=world["operator"])


ROUTES = {
    "GET cas/": Route("GET", lambda w, c: "/api/v1/cas/"),
    "POST cas/": Route(
        "POST", lambda w, c: "/api/v1/cas/",
        lambda w, c: {"kind": "root", "name": f"Matrix Root {c}", "root_password": ROOT_PASSWORD,
                      "organization": w["organization"].pk},
        {"user": 403, "manager": 403, "other_manager": 403, "other_admin": 404}, 201),
    "GET cas/{id}/": Route("GET", lambda w, c: f"/api/v1/cas/{w['inter'].pk}/",
                           expected={"other_manager": 404, "other_admin": 404}),
    "POST cas/{id}/crl/": Route("POST", lambda w, c: f"/api/v1/cas/{w['inter'].pk}/crl/", lambda w, c: {},
                                {"user": 403, "other_manager": 404, "other_admin": 404}, 201),
    "POST cas/{root}/crl/": Route("POST", lambda w, c: f"/api/v1/cas/{w['root'].pk}/crl/",
                                  lambda w, c: {"root_password": ROOT_PASSWORD},
                                  {"user": 403, "manager": 403, "other_manager": 404, "other_admin": 404}, 201),
    "GET certificates/": Route("GET", lambda w, c: "/api/v1/certificates/"),
    "POST certificates/": Route(
        "POST", lambda w, c: "/api/v1/certificates/",
        lambda w, c: {"ca": str(w["inter"].pk), "profile": "server", "csr": make_csr("m.example.com").decode()},
        {"user": 403, "other_manager": 404, "other_admin": 404}, 201),
    "GET certificates/{id}/": Route("GET", lambda w, c: f"/api/v1/certificates/{w['cert'].pk}/",
                                    expected={"other_manager": 404, "other_admin": 404}),
    "POST certificates/{id}/renew/": Route(
        "POST", lambda w, c: f"/api/v1/certificates/{_fresh_certificate(w).pk}/renew/", lambda w, c: {},
        {"user": 403, "other_manager": 404, "other_admin": 404}, 201),
    "POST certificates/{id}/revoke/": Route(
        "POST", lambda w, c: f"/api/v1/certificates/{_fresh_certificate(w).pk}/revoke/",
        lambda w, c: {"reason": "superseded"}, {"user": 403, "other_manager": 404, "other_admin": 404}),
    # CA and OCSP responder certificates: admins only (certificates.services.permissions; the pages agree)
    "POST certificates/{ca}/revoke/": Route(
        "POST", lambda w, c: f"/api/v1/certificates/{_fresh_intermediate(w, c).certificate_id}/revoke/",
        lambda w, c: {"reason": "cessationOfOperation", "root_password": ROOT_PASSWORD, "revoke_children": True},
        {"user": 403, "manager": 403, "other_manager": 404, "other_admin": 404}),
    "POST certificates/{responder}/revoke/": Route(
        "POST", lambda w, c: f"/api/v1/certificates/{issue_responder_certificate(w['inter']).pk}/revoke/",
        lambda w, c: {"reason": "superseded"}, {"user": 403, "manager": 403, "other_manager": 404, "other_admin": 404}),
    "GET certificates/{id}/download/ pem": Route(
        "GET", lambda w, c: f"/api/v1/certificates/{w['cert'].pk}/download/?format=pem",
        expected={"other_manager": 404, "other_admin": 404}),
    "GET certificates/{id}/download/ p12": Route(
        "GET", lambda w, c: f"/api/v1/certificates/{w['p12'].pk}/download/?format=p12",
        expected={"user": 403, "other_manager": 404, "other_admin": 404}),
    "POST certificates/{id}/pkcs12-password/": Route(
        "POST", lambda w, c: f"/api/v1/certificates/{w['p12'].pk}/pkcs12-password/", lambda w, c: {},
        {"user": 403, "other_manager": 404, "other_admin": 404}),
    # every CA the caller manages (none of ours for the other organization: checked in test_crl_batch)
    "POST crls/": Route("POST", lambda w, c: "/api/v1/crls/", lambda w, c: {"force": True}, {"user": 403}),
    # the whole installation's chain: global admins only (an organization's admin passes rbac.json, not the view)
    "POST audit-events/verify/": Route(
        "POST", lambda w, c: "/api/v1/audit-events/verify/", lambda w, c: {},
        {"user": 403, "manager": 403, "admin": 403, "other_manager": 403, "other_admin": 403}),
    # a key for a new user of our organization (named NAME@<slug>): admins of it, and global admins
    "POST api-keys/ for another user": Route(
        "POST", lambda w, c: "/api/v1/api-keys/",
        lambda w, c: {"user": f"matrix-{c}@{w['organization'].slug}", "role": "user",
                      "organization": w["organization"].slug},
        {"user": 403, "manager": 403, "other_manager": 403, "other_admin": 404}, 201),
}


@pytest.fixture
def world(hierarchy, issued, server_key_certificate, organization, operator):
    return {"root": hierarchy[0], "inter": hierarchy[1], "cert": issued, "p12": server_key_certificate,
            "organization": organization, "operator": operator}


@pytest.mark.parametrize("name", list(ROUTES))
def test_route_for_every_caller(clients, world, name):
    route = ROUTES[name]
    for caller in CALLERS:
        expected = 401 if caller == "anonymous" else (route.expected or {}).get(caller, route.default)
        url = route.url(world, caller)
        client = clients[caller]
        response = client.get(url) if route.method == "GET" else post_json(client, url, route.body(world, caller))
        assert response.status_code == expected, (name, caller, response.status_code, response.content[:200])
        if expected >= 400:
            assert set(response.json()["error"]) >= {"code", "message"}, (name, caller)
        if caller.startswith("other_"):
            assert world["cert"].serial not in response.content.decode(), (name, caller)
