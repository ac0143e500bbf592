"""Every staff page route and every admin action x every kind of caller, with real objects.

The API's matrix is tests/api/test_rbac_matrix.py; this one holds the pages and the admin to the same
rules: rbac.json for the route, then the service layer's rule for the object
(`certificates.services.permissions`), then tenancy (another organization's object: 404). Callers sign
in as a browser does (the session cookie). Anonymous callers are sent to the login page (302). Every
refusal (anonymous, 4xx) is checked to have changed nothing: rows, revocations, CRLs, files under
PKI_DATA_DIR and successful audit events; a refusal by the rule also says the rule's sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.test import Client

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.ocsp import issue_responder_certificate
from certificates.services.records import load_x509
from organizations.models import Organization
from pki_project.actor import Actor
from tests.pages.conftest import ROOT_PASSWORD, issue_server_certificate

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "user", "manager", "admin", "global_admin", "other_manager", "other_admin"]
CERTS = "/admin/certificates/certificate/"
CAS = "/admin/certificates/certificateauthority/"
# The sentences of the rules, as a page shows them (HTML-escaped).
ONLY_ADMIN_REVOKES_CA = "Only an admin may revoke a CA certificate."
ONLY_ADMIN_REVOKES_RESPONDER = "Only an admin may revoke an OCSP responder certificate."
ONLY_ADMIN_SIGNS_ROOT = "Only an admin may sign a root CA&#x27;s CRL."
ONLY_OPERATORS_P12 = "Only a manager or an admin may download the PKCS#12"
ROLE_MAY_NOT_USE = "Your role may not use this action."


@dataclass
class Route:
    method: str
    url: Callable  # (world, caller) -> url; may create the fresh object the request consumes
    data: Callable | None = None  # (world, caller) -> form fields
    expected: dict = field(default_factory=dict)  # caller -> status; callers not named: `default`
    default: int = 200
    refusal_text: dict = field(default_factory=dict)  # caller -> the rule's sentence its refusal shows


def _fresh_leaf(world, caller) -> Certificate:
    return issue_server_certificate(world["intermediate"], f"{caller.replace('_', '-')}.matrix.example")


def _fresh_intermediate(world, caller) -> CertificateAuthority:
    return create_intermediate_ca(parent=world["root"], common_name=f"Matrix {caller} Issuing CA",
                                  root_password=ROOT_PASSWORD, key_type="ec-p256", days=365, path_length=0,
                                  actor=Actor.operator("tests"))


def _fresh_root(world, caller) -> CertificateAuthority:
    return create_root_ca(organization=world["organization"], common_name=f"Matrix {caller} Root CA",
                          root_password=ROOT_PASSWORD, key_type="ec-p256", days=365, actor=Actor.operator("tests"))


def _responder(world, caller) -> Certificate:
    """The intermediate's current OCSP responder certificate (a new one once an admin revoked the last)."""
    return issue_responder_certificate(world["intermediate"])


def _action(name: str, objects: Callable, **fields) -> Callable:
    def data(world, caller) -> dict:
        return {"action": name, "_selected_action": [str(obj.pk) for obj in objects(world, caller)], **fields}
    return data


def _fresh_key(world, caller):
    """A key of a new plain member of the organization: its admins (and a global admin) see it, nobody else."""
    from tests.factories import ApiKeyFactory, UserFactory

    user = UserFactory(role="user", organization=world["organization"])
    return ApiKeyFactory(user=user, label=f"matrix {caller}")


KEY_HOLDER_ADMINS = {"user": 404, "manager": 404, "other_manager": 404, "other_admin": 404}
REVOKE_CA_FIELDS = {"reason": "cessationOfOperation", "root_password": ROOT_PASSWORD, "revoke_children": "on"}
OPERATORS_ONLY = {"user": 403, "other_manager": 404, "other_admin": 404}
OTHERS_404 = {"other_manager": 404, "other_admin": 404}

PAGE_ROUTES = {
    "GET /": Route("GET", lambda w, c: "/"),
    "GET /organizations": Route("GET", lambda w, c: "/organizations"),
    "GET /create-organization": Route("GET", lambda w, c: "/create-organization", expected={
        "user": 403, "manager": 403, "admin": 403, "other_manager": 403, "other_admin": 403}),
    "POST /create-organization": Route(
        "POST", lambda w, c: "/create-organization", lambda w, c: {"name": f"Matrix {c} Corp", "slug": ""},
        {"user": 403, "manager": 403, "admin": 403, "other_manager": 403, "other_admin": 403}, 302),
    "GET /certificates": Route("GET", lambda w, c: "/certificates?q=www&sort=-expires"),
    "GET /certificates/export.csv": Route("GET", lambda w, c: "/certificates/export.csv?status=valid"),
    "GET /certificates/{pk}/renew": Route(
        "GET", lambda w, c: f"/certificates/{w['leaf'].pk}/renew", expected=OPERATORS_ONLY),
    "GET /api-keys": Route("GET", lambda w, c: "/api-keys"),
    "POST /api-keys": Route("POST", lambda w, c: "/api-keys", lambda w, c: {"label": f"matrix {c}"}),
    "POST /api-keys bad input": Route(
        "POST", lambda w, c: "/api-keys", lambda w, c: {"label": "x" * 101, "max_validity_days": "0"}, default=400),
    "GET /api-keys/{pk}/revoke": Route(
        "GET", lambda w, c: f"/api-keys/{_fresh_key(w, c).pk}/revoke", expected=KEY_HOLDER_ADMINS),
    "POST /api-keys/{pk}/revoke": Route(
        "POST", lambda w, c: f"/api-keys/{_fresh_key(w, c).pk}/revoke", lambda w, c: {}, KEY_HOLDER_ADMINS, 302),
    "GET /certificates/issue": Route("GET", lambda w, c: "/certificates/issue", expected={"user": 403}),
    "POST /certificates/issue": Route(
        "POST", lambda w, c: "/certificates/issue",
        lambda w, c: {"ca": w["intermediate"].pk, "profile": "server", "key_source": "server", "csr": "",
                      "common_name": f"{c.replace('_', '-')}.issued.example", "sans": "", "key_type": "ec-p256",
                      "days": ""},
        {"user": 403, "other_manager": 400, "other_admin": 400}, 302),  # another organization's CA: no choice
    "GET /certificates/{pk}": Route("GET", lambda w, c: f"/certificates/{w['leaf'].pk}", expected=OTHERS_404),
    "GET /certificates/{pk}/download pem": Route(
        "GET", lambda w, c: f"/certificates/{w['leaf'].pk}/download?format=pem", expected=OTHERS_404),
    "GET /certificates/{pk}/download fullchain": Route(
        "GET", lambda w, c: f"/certificates/{w['leaf'].pk}/download?format=fullchain", expected=OTHERS_404),
    "GET /certificates/{pk}/download p12": Route(
        "GET", lambda w, c: f"/certificates/{w['leaf'].pk}/download?format=p12", expected=OPERATORS_ONLY,
        refusal_text={"user": ONLY_OPERATORS_P12}),
    "POST /certificates/{pk}/pkcs12-password": Route(
        "POST", lambda w, c: f"/certificates/{w['leaf'].pk}/pkcs12-password", lambda w, c: {}, OPERATORS_ONLY),
    "POST /certificates/{pk}/renew": Route(
        "POST", lambda w, c: f"/certificates/{_fresh_leaf(w, c).pk}/renew", lambda w, c: {}, OPERATORS_ONLY, 302),
    "POST /certificates/{pk}/revoke end entity": Route(
        "POST", lambda w, c: f"/certificates/{_fresh_leaf(w, c).pk}/revoke", lambda w, c: {"reason": "superseded"},
        OPERATORS_ONLY, 302),
    "POST /certificates/{pk}/revoke intermediate CA": Route(
        "POST", lambda w, c: f"/certificates/{_fresh_intermediate(w, c).certificate_id}/revoke",
        lambda w, c: REVOKE_CA_FIELDS, {**OPERATORS_ONLY, "manager": 403}, 302,
        {"manager": ONLY_ADMIN_REVOKES_CA}),
    "POST /certificates/{pk}/revoke root CA": Route(
        "POST", lambda w, c: f"/certificates/{_fresh_root(w, c).certificate_id}/revoke",
        lambda w, c: REVOKE_CA_FIELDS, {**OPERATORS_ONLY, "manager": 403}, 302, {"manager": ONLY_ADMIN_REVOKES_CA}),
    "POST /certificates/{pk}/revoke OCSP responder": Route(
        "POST", lambda w, c: f"/certificates/{_responder(w, c).pk}/revoke", lambda w, c: {"reason": "superseded"},
        {**OPERATORS_ONLY, "manager": 403}, 302, {"manager": ONLY_ADMIN_REVOKES_RESPONDER}),
    "GET /toolbox": Route("GET", lambda w, c: "/toolbox"),
    "POST /toolbox/decode": Route(
        "POST", lambda w, c: "/toolbox/decode",
        lambda w, c: {"text": load_x509(w["leaf"]).public_bytes(Encoding.PEM).decode()}),
    "POST /toolbox/crl intermediate": Route(
        "POST", lambda w, c: "/toolbox/crl", lambda w, c: {"ca": w["intermediate"].pk},
        {"user": 403, "other_manager": 400, "other_admin": 400}, 302),
    "POST /toolbox/crl root": Route(
        "POST", lambda w, c: "/toolbox/crl", lambda w, c: {"ca": w["root"].pk, "root_password": ROOT_PASSWORD},
        {"user": 403, "manager": 403, "other_manager": 400, "other_admin": 400}, 302,
        {"manager": ONLY_ADMIN_SIGNS_ROOT}),
}

ADMIN_ROUTES = {
    "revoke_selected end entity": Route(
        "POST", lambda w, c: CERTS,
        _action("revoke_selected", lambda w, c: [_fresh_leaf(w, c)], apply="1", reason="superseded"),
        OPERATORS_ONLY, 302, {"user": ROLE_MAY_NOT_USE}),
    "revoke_selected intermediate CA": Route(
        "POST", lambda w, c: CERTS,
        _action("revoke_selected", lambda w, c: [_fresh_intermediate(w, c).certificate], apply="1",
                **REVOKE_CA_FIELDS),
        {**OPERATORS_ONLY, "manager": 403}, 302, {"user": ROLE_MAY_NOT_USE, "manager": ONLY_ADMIN_REVOKES_CA}),
    "revoke_selected OCSP responder": Route(
        "POST", lambda w, c: CERTS,
        _action("revoke_selected", lambda w, c: [_responder(w, c)], apply="1", reason="superseded"),
        {**OPERATORS_ONLY, "manager": 403}, 302,
        {"user": ROLE_MAY_NOT_USE, "manager": ONLY_ADMIN_REVOKES_RESPONDER}),
    "renew_selected": Route(
        "POST", lambda w, c: CERTS, _action("renew_selected", lambda w, c: [_fresh_leaf(w, c)]),
        OPERATORS_ONLY, 302, {"user": ROLE_MAY_NOT_USE}),
    "download_selected": Route(
        "POST", lambda w, c: CERTS, _action("download_selected", lambda w, c: [w["leaf"]]), OTHERS_404),
    "regenerate_crl intermediate": Route(
        "POST", lambda w, c: CAS, _action("regenerate_crl", lambda w, c: [w["intermediate"]]),
        OPERATORS_ONLY, 302, {"user": ROLE_MAY_NOT_USE}),
    "regenerate_crl root": Route(
        "POST", lambda w, c: CAS,
        _action("regenerate_crl", lambda w, c: [w["root"]], apply="1", root_password=ROOT_PASSWORD),
        {**OPERATORS_ONLY, "manager": 403}, 302, {"user": ROLE_MAY_NOT_USE, "manager": ONLY_ADMIN_SIGNS_ROOT}),
    "GET create-root": Route("GET", lambda w, c: f"{CAS}create-root/", expected={
        "user": 403, "manager": 403, "other_manager": 403}),  # another organization's admin: for their own
    "POST create-root": Route(
        "POST", lambda w, c: f"{CAS}create-root/",
        lambda w, c: {"organization": w["organization"].pk, "common_name": f"Matrix {c} Root", "key_type": "ec-p256",
                      "days": "365", "root_password": ROOT_PASSWORD, "root_password_confirm": ROOT_PASSWORD},
        {"user": 403, "manager": 403, "other_manager": 403, "other_admin": 400}, 302),  # not their organization
    "POST create-intermediate": Route(
        "POST", lambda w, c: f"{CAS}create-intermediate/",
        lambda w, c: {"parent": w["root"].pk, "common_name": f"Matrix {c} Sub CA", "key_type": "ec-p256",
                      "days": "365", "path_length": "0", "root_password": ROOT_PASSWORD},
        {"user": 403, "manager": 403, "other_manager": 403, "other_admin": 400}, 302),
}


@pytest.fixture
def world(organization, hierarchy, leaf) -> dict:
    return {"organization": organization, "root": hierarchy.root, "intermediate": hierarchy.intermediate,
            "leaf": leaf}


@pytest.fixture
def browsers(make_principal_client, organization, other_organization) -> dict[str, Client]:
    """Signed in with the session cookie, as a browser is (errors are pages, not JSON)."""
    def cookie(role, org=None):
        return make_principal_client(role, org, via="cookie")

    return {"anonymous": Client(), "user": cookie("user", organization), "manager": cookie("manager", organization),
            "admin": cookie("admin", organization), "global_admin": cookie("admin"),
            "other_manager": cookie("manager", other_organization),
            "other_admin": cookie("admin", other_organization)}


def _state(data_dir: Path) -> dict[str, object]:
    from organizations.models import ApiKey

    return {
        "api_keys": sorted(ApiKey.objects.values_list("pk", "revoked_at")),
        "certificates": sorted(Certificate.objects.values_list("pk", "revoked_at", "revocation_reason")),
        "cas": CertificateAuthority.objects.count(),
        "crls": sorted(CertificateRevocationList.objects.values_list("pk", flat=True)),
        "organizations": Organization.objects.count(),
        "files": sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*") if path.is_file()),
        "success_events": AuditEvent.objects.filter(outcome="success").count(),
    }


def _check(route: Route, name: str, world, browsers, caller: str, data_dir: Path) -> None:
    expected = 302 if caller == "anonymous" else route.expected.get(caller, route.default)
    url = route.url(world, caller)
    data = route.data(world, caller) if route.data else None
    before = _state(data_dir)
    client = browsers[caller]
    response = client.get(url) if route.method == "GET" else client.post(url, data)
    where = (name, caller, response.status_code, response.content[:300])
    assert response.status_code == expected, where
    if caller == "anonymous":
        assert response["Location"].startswith("/auth/login"), where
    if caller == "anonymous" or expected >= 400:
        assert _state(data_dir) == before, where  # refused: nothing changed
        if caller != "anonymous":
            assert response["Content-Type"].startswith("text/html"), where  # a readable page, not JSON
    if caller in route.refusal_text:
        assert route.refusal_text[caller] in response.content.decode(), where
    if caller.startswith("other_") and expected in (400, 403, 404):
        assert world["leaf"].serial not in response.content.decode(), where


@pytest.mark.parametrize("name", list(PAGE_ROUTES))
def test_page_route_for_every_caller(world, browsers, data_dir, name):
    for caller in CALLERS:
        _check(PAGE_ROUTES[name], name, world, browsers, caller, data_dir)


@pytest.mark.parametrize("name", list(ADMIN_ROUTES))
def test_admin_action_for_every_caller(world, browsers, data_dir, name):
    for caller in CALLERS:
        _check(ADMIN_ROUTES[name], name, world, browsers, caller, data_dir)


def test_the_matrix_names_every_page_route():
    """A page added to certificates/urls.py or organizations/urls.py without a row here fails."""
    from certificates.urls import urlpatterns as certificate_pages
    from organizations.urls import urlpatterns as key_pages

    urlpatterns = [*certificate_pages, *key_pages]
    covered = {name.split(" ")[1] for name in PAGE_ROUTES}
    routes = {"/" + str(pattern.pattern).replace("<int:pk>", "{pk}") for pattern in urlpatterns}
    assert routes <= covered, routes - covered
