"""API key scopes beyond the role: allowed CAs, allowed profiles, a maximum validity.

Set by `create_api_key --allowed-ca/--allowed-profile/--max-days`, by `POST /api/v1/api-keys/` and
by the staff page; met by the issuance services, so every channel a key (or a session it opened)
uses obeys them: the API, the staff pages. Refusals are 403 `outside_key_scope` and change nothing.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEvent
from certificates.models import Certificate
from certificates.services.authorities import create_intermediate_ca
from organizations.models import ApiKey
from organizations.services import KeyScope, create_api_key
from tests.api.conftest import ROOT_PASSWORD, make_csr, post_json, snapshot
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_intermediate(root_ca, operator):
    return create_intermediate_ca(parent=root_ca, common_name="Main Second CA", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=365, path_length=0, actor=operator)


def _scoped_client(organization, **scope) -> Client:
    user = UserFactory(role="manager", organization=organization)
    created = create_api_key(user, label="scoped", scope=KeyScope(**scope))
    client = Client(headers={"Authorization": f"Bearer {created.key}"})
    client.plain_key = created.key
    return client


def _issue(client: Client, ca, **fields):
    body = {"ca": ca.slug, "profile": "server", "csr": make_csr("scoped.example.com").decode(), **fields}
    return post_json(client, "/api/v1/certificates/", body)


def test_a_key_limited_to_one_ca_issues_there_and_is_refused_elsewhere(organization, intermediate_ca,
                                                                      second_intermediate, data_dir):
    client = _scoped_client(organization, cas=(intermediate_ca.slug,))
    assert _issue(client, intermediate_ca).status_code == 201
    before = snapshot(data_dir)
    refused = _issue(client, second_intermediate)
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["code"] == "outside_key_scope"
    assert intermediate_ca.slug in refused.json()["error"]["message"]
    assert snapshot(data_dir) == before


def test_a_key_limited_to_a_profile_is_refused_another(organization, intermediate_ca, data_dir):
    client = _scoped_client(organization, profiles=("client",))
    before = snapshot(data_dir)
    refused = _issue(client, intermediate_ca)  # profile server
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "outside_key_scope", "message": "This API key may issue only with the profile(s) client, not 'server'."}
    assert snapshot(data_dir) == before
    allowed = _issue(client, intermediate_ca, profile="client", csr=make_csr("robot-1").decode())
    assert allowed.status_code == 201, allowed.content


def test_a_maximum_validity_refuses_longer_and_shortens_the_default(organization, intermediate_ca, data_dir):
    client = _scoped_client(organization, max_validity_days=10)
    before = snapshot(data_dir)
    refused = _issue(client, intermediate_ca, days=30)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "outside_key_scope"
    assert "at most 10 days" in refused.json()["error"]["message"]
    assert snapshot(data_dir) == before
    exactly = _issue(client, intermediate_ca, days=10)
    assert exactly.status_code == 201
    default = _issue(client, intermediate_ca)
    assert default.status_code == 201
    ten_days, by_default = (Certificate.objects.get(pk=response.json()["id"]) for response in (exactly, default))
    assert by_default.not_after - by_default.not_before == ten_days.not_after - ten_days.not_before


def test_renewal_meets_the_scope_too(organization, second_intermediate, operator, data_dir):
    from certificates.services.issuance import IssuanceRequest, issue_certificate

    leaf = issue_certificate(second_intermediate, IssuanceRequest(profile="server", csr=make_csr("r.example.com")),
                             actor=operator)
    root_only = second_intermediate.parent
    client = _scoped_client(organization, cas=(root_only.slug,))
    before = snapshot(data_dir)
    refused = post_json(client, f"/api/v1/certificates/{leaf.pk}/renew/", {})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "outside_key_scope"
    assert snapshot(data_dir) == before


def test_a_session_opened_with_a_scoped_key_is_held_to_it_on_the_pages(organization, intermediate_ca,
                                                                       second_intermediate, operator, data_dir):
    from certificates.services.issuance import IssuanceRequest, issue_certificate

    leaf = issue_certificate(second_intermediate, IssuanceRequest(profile="server", csr=make_csr("s.example.com")),
                             actor=operator)
    scoped = _scoped_client(organization, cas=(intermediate_ca.slug,))
    browser = Client()
    assert browser.post("/auth/session", {"api_key": scoped.plain_key},
                        content_type="application/json").status_code == 200
    before = snapshot(data_dir)
    issued = browser.post("/certificates/issue", {
        "ca": second_intermediate.pk, "profile": "server", "key_source": "server", "common_name": "p.example.com",
        "sans": "", "key_type": "ec-p256", "days": ""})
    assert issued.status_code == 400  # the form does not even offer the CA
    renewed = browser.post(f"/certificates/{leaf.pk}/renew")  # the service refuses what the page cannot hide
    assert renewed.status_code == 403
    assert (f"This API key may issue only from the CA(s) {intermediate_ca.slug}, not from "
            f"&#x27;{second_intermediate.slug}&#x27;.") in renewed.content.decode()
    assert snapshot(data_dir) == before


def test_the_issue_form_of_a_scoped_session_offers_only_the_scope(organization, intermediate_ca,
                                                                  second_intermediate):
    scoped = _scoped_client(organization, cas=(second_intermediate.slug,), profiles=("client",))
    browser = Client()
    browser.post("/auth/session", {"api_key": scoped.plain_key}, content_type="application/json")
    form = browser.get("/certificates/issue").content.decode()
    assert f'<option value="{second_intermediate.pk}"' in form
    assert f'<option value="{intermediate_ca.pk}"' not in form
    assert '<option value="client"' in form
    assert '<option value="server"' not in form


def test_an_unscoped_key_is_unaffected(clients, intermediate_ca, second_intermediate):
    assert _issue(clients["manager"], second_intermediate, days=100).status_code == 201


def test_the_api_creates_a_scoped_key_and_lists_its_scope(clients, intermediate_ca):
    response = post_json(clients["admin"], "/api/v1/api-keys/", {
        "label": "pipeline", "allowed_cas": [intermediate_ca.slug], "allowed_profiles": ["server"],
        "max_validity_days": 30})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["allowed_cas"], body["allowed_profiles"], body["max_validity_days"]) == (
        [intermediate_ca.slug], ["server"], 30)
    listed = next(key for key in clients["admin"].get("/api/v1/api-keys/").json()["results"]
                  if key["id"] == body["id"])
    assert listed["allowed_cas"] == [intermediate_ca.slug]
    event = AuditEvent.objects.get(action="api_key.create", target_id=str(body["id"]))
    assert event.details["allowed_cas"] == [intermediate_ca.slug]
    assert event.details["max_validity_days"] == 30


@pytest.mark.parametrize(("body", "field"), [
    ({"allowed_cas": ["no-such-ca"]}, "allowed_cas"),
    ({"allowed_profiles": ["no-such-profile"]}, "allowed_profiles"),
    ({"max_validity_days": 0}, "max_validity_days"),
    ({"max_validity_days": 99999}, "max_validity_days"),
])
def test_the_api_refuses_a_bad_scope_and_creates_nothing(clients, body, field):
    keys = ApiKey.objects.count()
    response = post_json(clients["admin"], "/api/v1/api-keys/", {"label": "bad", **body})
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert ApiKey.objects.count() == keys


def test_another_organizations_ca_is_not_a_scope(clients, other_hierarchy):
    keys = ApiKey.objects.count()
    response = post_json(clients["admin"], "/api/v1/api-keys/", {"allowed_cas": [other_hierarchy[1].slug]})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["allowed_cas"] == [
        f"No CA '{other_hierarchy[1].slug}' in the key's organization."]
    assert ApiKey.objects.count() == keys


def _command(*args: str) -> dict:
    out = StringIO()
    call_command("create_api_key", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_creates_a_scoped_key_that_is_enforced(organization, intermediate_ca, second_intermediate):
    payload = _command("--user", "ci-bot", "--role", "manager", "--organization", organization.slug,
                       "--allowed-ca", second_intermediate.slug, "--allowed-profile", "server",
                       "--allowed-profile", "client", "--max-days", "7")
    assert payload["allowed_cas"] == [second_intermediate.slug]
    assert payload["allowed_profiles"] == ["client", "server"]
    assert payload["max_validity_days"] == 7
    client = Client(headers={"Authorization": f"Bearer {payload['key']}"})
    assert _issue(client, intermediate_ca).json()["error"]["code"] == "outside_key_scope"
    assert _issue(client, second_intermediate, days=8).status_code == 403
    assert _issue(client, second_intermediate, days=7).status_code == 201


def test_the_command_refuses_an_unknown_ca_and_creates_no_user(organization):
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError, match=r"No CA 'nope' in the key's organization\."):
        _command("--user", "ghost", "--role", "manager", "--organization", organization.slug, "--allowed-ca", "nope")
    assert not get_user_model().objects.filter(username="ghost").exists()
    with pytest.raises(CommandError, match="between 1 and 3650 days"):
        _command("--user", "ghost", "--role", "manager", "--organization", organization.slug, "--max-days", "0")
    assert not get_user_model().objects.filter(username="ghost").exists()
