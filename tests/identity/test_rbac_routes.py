"""Every route of the URLconf, walked as every kind of caller, answers what rbac.json implies.

The cases are enumerated from the URLconf and rbac.json at collection time, so a route
another app adds is covered automatically. For each (route, method):

* anonymous: `["public"]` routes answer (not 401/403, no login redirect); API routes
  answer 401 JSON; pages redirect to /auth/login;
* a signed-in role that rbac.json does not list: 403 and exactly one `rbac.deny` audit event;
* a listed role: RBAC lets it through (no 401, no `rbac.deny` event; the view may still
  answer 400/404/405, or 403 for its own rules, e.g. creating organizations is for
  *global* admins); never a 5xx;
* a manager of another organization on a route that names an object: 404, never its data.

`{placeholders}` are filled from `OBJECT_IDS` (route key -> a function of the test world
returning an object of the main organization: organizations, API keys, audit events, CAs
and certificates, the last two made on first use), else from `PLACEHOLDERS`, else a
dummy id. Add new object routes to `OBJECT_IDS` so the other-organization 404 is checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client

from audit.models import AuditEvent
from organizations.roles import PUBLIC
from pki_project.middleware.rbac import SUBTREE, current_policy, served_routes
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

DUMMY_ID = "999999"


@dataclass
class World:
    organization: object
    other_organization: object
    clients: dict[str, Client]
    _certificate: object = None

    def certificate(self):
        """A certificate (and its CA) of the main organization, made on first use."""
        if self._certificate is None:
            from certificates.services.issuance import IssuanceRequest, issue_certificate
            from pki_project.actor import Actor
            from tests.api.conftest import _hierarchy
            from tests.certificates.csrs import make_csr

            operator = Actor.operator("tests")
            _root, intermediate = _hierarchy(self.organization, operator, "RBAC walk")
            self._certificate = issue_certificate(
                intermediate, IssuanceRequest(profile="server", csr=make_csr("rbac.example.com")), actor=operator)
        return self._certificate


# Routes naming an object: how to get one of the main organization's objects.
OBJECT_IDS: dict[str, Callable[[World], object]] = {
    "/api/v1/organizations/{id}/": lambda world: world.organization.pk,
    # a fresh key of a plain user of the main organization (revoking it harms no caller)
    "/api/v1/api-keys/{id}/revoke/": lambda world: ApiKeyFactory(
        user=UserFactory(role="user", organization=world.organization)).pk,
    "/api/v1/api-keys/{id}/": lambda world: ApiKeyFactory(
        user=UserFactory(role="user", organization=world.organization)).pk,
    "/api/v1/audit-events/{id}/": lambda world: AuditEvent.objects.filter(
        organization_id=world.organization.pk).order_by("seq").values_list("pk", flat=True).first(),
}
_CA_ROUTES = ["/api/v1/cas/{id}/", "/api/v1/cas/{id}/crl/"]
_CERTIFICATE_ROUTES = [
    "/api/v1/certificates/{id}/", "/api/v1/certificates/{id}/renew/", "/api/v1/certificates/{id}/revoke/",
    "/api/v1/certificates/{id}/download/", "/api/v1/certificates/{id}/pkcs12-password/",
    "/certificates/{pk}", "/certificates/{pk}/download", "/certificates/{pk}/pkcs12-password",
    "/certificates/{pk}/revoke", "/certificates/{pk}/renew",
]
OBJECT_IDS.update({key: (lambda world: world.certificate().issuer_id) for key in _CA_ROUTES})
OBJECT_IDS["/api/v1/client-certificate-bindings/{id}/"] = lambda world: _client_certificate_binding(world).pk


def _client_certificate_binding(world: World):
    """A fresh client certificate of the main organization, bound to a fresh plain user of it."""
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from organizations.client_certificates import bind_client_certificate
    from pki_project.actor import Actor
    from tests.certificates.csrs import make_csr

    operator = Actor.operator("tests")
    certificate = issue_certificate(world.certificate().issuer, IssuanceRequest(
        profile="client", csr=make_csr("robot", sans=[])), actor=operator)
    user = UserFactory(role="user", organization=world.organization)
    return bind_client_certificate(user, certificate, actor=operator)
OBJECT_IDS.update({key: (lambda world: world.certificate().pk) for key in _CERTIFICATE_ROUTES})


def _content_type_id(world: World) -> int:
    from django.contrib.contenttypes.models import ContentType

    from organizations.models import Organization

    return ContentType.objects.get_for_model(Organization).pk


# Placeholders of routes without an OBJECT_IDS entry (chiefly the Django admin's).
PLACEHOLDERS: dict[str, Callable[[World], object]] = {
    "app_label": lambda world: "organizations",
    "object_id": lambda world: world.organization.pk,
    "content_type_id": _content_type_id,
    "url": lambda world: "no-such-page/",
}

CALLERS = ["anonymous", "user", "manager", "admin", "global_admin", "other_manager"]
ROLE_OF = {"user": "user", "manager": "manager", "admin": "admin", "global_admin": "admin",
           "other_manager": "manager"}


def _cases() -> list[tuple[str, str]]:
    policy = current_policy()
    cases = []
    for route in served_routes():
        if route.key.endswith(SUBTREE):
            continue  # static files: served by WhiteNoise before routing (tested in test_headers)
        methods = set(route.methods or ())
        if not methods:
            methods = {m for (m, key) in policy.exact if key == route.key and m != "*"} or {"GET"}
        cases.extend((route.key, method) for method in sorted(methods))
    return sorted(set(cases))


CASES = _cases()


@pytest.fixture
def world() -> World:
    organization, other = OrganizationFactory(), OrganizationFactory()
    clients: dict[str, Client] = {"anonymous": Client()}
    for caller in CALLERS[1:]:
        if caller == "global_admin":
            user = UserFactory(role="admin")
        else:
            user = UserFactory(role=ROLE_OF[caller],
                               organization=other if caller == "other_manager" else organization)
        key = ApiKeyFactory(user=user)
        clients[caller] = Client(headers={"Authorization": f"Bearer {key.plain_key}"})
    return World(organization, other, clients)


def concrete_url(key: str, world: World) -> str:
    if key in OBJECT_IDS:
        value = str(OBJECT_IDS[key](world))
        return re.sub(r"\{\w+\}", value, key)
    return re.sub(r"\{(\w+)\}", lambda m: str(PLACEHOLDERS.get(m.group(1), lambda w: DUMMY_ID)(world)), key)


def send(client: Client, method: str, url: str, is_api: bool):
    """API routes get an empty JSON object; pages an empty form, as a browser would send."""
    if is_api or url == "/auth/session":
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            return client.generic(method, url, b"{}", content_type="application/json")
        return client.generic(method, url, headers={"Accept": "application/json"})
    return client.generic(method, url, b"", content_type="application/x-www-form-urlencoded",
                          headers={"Accept": "text/html"})


def denials() -> int:
    return AuditEvent.objects.filter(action="rbac.deny").count()


def test_every_served_route_is_walked():
    keys = {key for key, _method in CASES}
    assert "/api/v1/organizations/" in keys
    assert "/auth/session" in keys
    assert any(key.startswith("/admin/") for key in keys)


@pytest.mark.parametrize(("key", "method"), CASES, ids=[f"{m} {k}" for k, m in CASES])
def test_route_answers_what_rbac_json_implies(world, key, method):
    roles = current_policy().roles_for(method, key)
    assert roles is not None, f"{method} {key} has no rbac.json entry"
    is_api = key.startswith("/api/")
    for caller in CALLERS:
        url = concrete_url(key, world)
        before = denials()
        response = send(world.clients[caller], method, url, is_api)
        status = response.status_code
        where = f"{caller}: {method} {url} -> {status}"
        assert status < 500, where
        location = response.get("Location", "")
        if PUBLIC in roles:
            assert status not in (401, 403), where  # (signing out does redirect to the login page)
            assert denials() == before, where
        elif caller == "anonymous":
            if is_api:
                assert status == 401, where
                assert response.json()["error"]["code"] == "not_authenticated", where
            else:
                assert status == 302, where
                assert location.startswith("/auth/login"), where
        elif ROLE_OF[caller] not in roles:
            assert status == 403, where
            assert denials() == before + 1, where
        else:
            assert status != 401, where
            assert not location.startswith("/auth/login"), where
            assert denials() == before, where
            if caller == "other_manager" and key in OBJECT_IDS:
                assert status == 404, where


def test_other_organization_is_invisible_in_lists_and_details(make_principal_client, organization,
                                                             other_organization):
    for role in ("user", "manager", "admin"):
        client = make_principal_client(role, organization)
        listed = client.get("/api/v1/organizations/").json()
        assert [row["id"] for row in listed["results"]] == [organization.pk], role
        assert client.get(f"/api/v1/organizations/{organization.pk}/").status_code == 200
        response = client.get(f"/api/v1/organizations/{other_organization.pk}/")
        assert response.status_code == 404, role
        assert other_organization.name not in response.content.decode()
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
    global_admin = make_principal_client("admin")
    slugs = {row["slug"] for row in global_admin.get("/api/v1/organizations/").json()["results"]}
    assert {organization.slug, other_organization.slug} <= slugs


def test_unknown_routes_answer_404_without_detail(make_principal_client):
    assert Client().get("/api/v1/no-such-thing/").status_code == 404
    response = make_principal_client("manager").get("/api/v1/no-such-thing/")
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}
