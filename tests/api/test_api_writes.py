"""Every API POST: JSON bodies only, `Idempotency-Key` honoured, and a 201 that says where the new object is."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from certificates.idempotency import IdempotencyKey
from certificates.models import CertificateAuthority
from organizations.models import ApiKey, Organization
from tests.api.conftest import ROOT_PASSWORD, make_csr, post_json, snapshot
from tests.api.test_profiles import tls_profile

pytestmark = pytest.mark.django_db


def _root_body(organization, name="Replayed Root") -> dict:
    return {"kind": "root", "name": name, "organization": organization.slug, "root_password": ROOT_PASSWORD,
            "key_type": "ec-p256", "days": 3650}


# --- JSON only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "application/xml"])
def test_a_body_that_is_not_json_is_415_and_creates_nothing(clients, content_type):
    users = get_user_model().objects.count()
    response = clients["global_admin"].post(
        "/api/v1/api-keys/", b"user=sneaky&role=admin&organization=", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert get_user_model().objects.count() == users


@pytest.mark.parametrize("blank", ["", " "])
def test_an_empty_organization_never_makes_a_global_admin(clients, blank):
    users = get_user_model().objects.count()
    response = post_json(clients["global_admin"], "/api/v1/api-keys/",
                         {"user": "sneaky", "role": "admin", "organization": blank})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "organization" in response.json()["error"]["fields"]
    assert get_user_model().objects.count() == users


def test_the_login_form_still_signs_in(make_principal_client, organization):
    """/auth/session is not DRF: the HTML login form (urlencoded) keeps working."""
    from django.test import Client

    from organizations.services import create_api_key
    from tests.factories import UserFactory

    user = UserFactory(organization=organization, role="user")
    key = create_api_key(user, label="form").key
    response = Client().post("/auth/session", {"api_key": key, "next": "/"})
    assert response.status_code == 302
    assert response.cookies["pki_session"].value


# --- Idempotency-Key on every POST -------------------------------------------------------------


def test_a_ca_creation_is_replayed_not_repeated(clients, organization, data_dir):
    body = _root_body(organization)
    first = post_json(clients["global_admin"], "/api/v1/cas/", body, headers={"Idempotency-Key": "root-1"})
    assert first.status_code == 201, first.content
    before = snapshot(data_dir)
    again = post_json(clients["global_admin"], "/api/v1/cas/", body, headers={"Idempotency-Key": "root-1"})
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"] == f"/api/v1/cas/{first.json()['id']}/"
    assert snapshot(data_dir) == before
    assert CertificateAuthority.objects.filter(name="Replayed Root").count() == 1


def test_an_organization_creation_is_replayed(clients):
    body = {"name": "Once Only"}
    first = post_json(clients["global_admin"], "/api/v1/organizations/", body, headers={"Idempotency-Key": "org-1"})
    again = post_json(clients["global_admin"], "/api/v1/organizations/", body, headers={"Idempotency-Key": "org-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert Organization.objects.filter(name="Once Only").count() == 1


def test_a_key_used_on_another_operation_is_refused(clients, organization):
    assert post_json(clients["global_admin"], "/api/v1/organizations/", {"name": "Org A"},
                     headers={"Idempotency-Key": "shared"}).status_code == 201
    response = post_json(clients["global_admin"], "/api/v1/cas/", _root_body(organization),
                         headers={"Idempotency-Key": "shared"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not CertificateAuthority.objects.filter(name="Replayed Root").exists()


def test_a_one_time_secret_is_never_stored_nor_shown_again(clients):
    first = post_json(clients["manager"], "/api/v1/api-keys/", {"label": "ci"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    secret = first.json()["key"]
    stored = IdempotencyKey.objects.get(key="k-1")
    assert stored.response_body is None
    assert secret not in str(stored.response_body) + stored.location
    again = post_json(clients["manager"], "/api/v1/api-keys/", {"label": "ci"}, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "idempotency_secret_shown"
    assert secret not in again.content.decode()
    assert again["Location"] == first["Location"]
    assert ApiKey.objects.filter(label="ci").count() == 1


def test_a_refused_request_keeps_no_claim_and_changes_nothing(clients, other_organization, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", _root_body(other_organization),
                         headers={"Idempotency-Key": "nope"})
    assert response.status_code in (403, 404)
    assert not IdempotencyKey.objects.exists()
    assert snapshot(data_dir) == before


def test_revocation_under_a_key_revokes_once_and_audits_once(clients, issued):
    url = f"/api/v1/certificates/{issued.pk}/revoke/"
    body = {"reason": "keyCompromise"}
    first = post_json(clients["manager"], url, body, headers={"Idempotency-Key": "rv-1"})
    assert first.status_code == 200, first.content
    again = post_json(clients["manager"], url, body, headers={"Idempotency-Key": "rv-1"})
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert AuditEvent.objects.filter(action="certificate.revoke", target_id=str(issued.pk)).count() == 1


# --- Location ---------------------------------------------------------------------------------------


def test_every_201_names_what_it_created(clients, intermediate_ca, issued):
    created = [
        post_json(clients["manager"], "/api/v1/certificates/",
                  {"ca": intermediate_ca.slug, "profile": "server", "csr": make_csr("loc.example.com").decode()}),
        post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/renew/", {}),
        post_json(clients["global_admin"], "/api/v1/organizations/", {"name": "Located"}),
        post_json(clients["manager"], "/api/v1/api-keys/", {"label": "loc"}),
        post_json(clients["manager"], "/api/v1/profiles/", tls_profile("located")),
    ]
    for response in created:
        assert response.status_code == 201, response.content
        location = response["Location"]
        assert location.endswith(f"/{response.json()['id']}/"), location
    for response in created[:3]:
        reader = clients["global_admin"]
        assert reader.get(response["Location"]).status_code == 200
    crl = post_json(clients["manager"], f"/api/v1/cas/{intermediate_ca.pk}/crl/", {})
    assert crl.status_code == 201
    assert crl["Location"] == f"/pki/crl/{intermediate_ca.slug}.crl"


def test_an_api_key_is_readable_by_whom_may_see_it(clients, make_principal_client, organization,
                                                    other_organization):
    created = post_json(clients["user"], "/api/v1/api-keys/", {"label": "mine"})
    location = created["Location"]
    mine = clients["user"].get(location)
    assert mine.status_code == 200
    assert mine.json()["label"] == "mine"
    assert "key" not in mine.json()
    assert clients["admin"].get(location).status_code == 200  # their organization's admin
    assert clients["global_admin"].get(location).status_code == 200
    assert clients["manager"].get(location).status_code == 404  # another user's key
    assert make_principal_client("admin", other_organization).get(location).status_code == 404
    assert clients["anonymous"].get(location).status_code == 401
