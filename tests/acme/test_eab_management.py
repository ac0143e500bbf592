"""EAB credentials: the API, the command and the admin; shown once, sealed at rest, scoped per organization."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from acme_server.models import Account, ExternalAccountKey
from acme_server.services.eab import create_eab_key
from audit.models import AuditEvent
from certificates.keystore import artifact_store
from pki_project.actor import Actor

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_api_creates_a_key_shown_once(make_principal_client, acme_org, issuing_ca, role, data_dir, make_client):
    client = make_principal_client(role, acme_org)
    response = client.post("/api/v1/acme/eab/", {"ca": issuing_ca.slug, "label": "web"},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Cache-Control"] == "no-store"
    assert body["organization"] == acme_org.slug
    assert body["ca"] == issuing_ca.slug
    credential = ExternalAccountKey.objects.get(key_id=body["key_id"])
    sealed = (data_dir / credential.hmac_key_path).read_bytes()
    assert body["hmac_key"].encode() not in sealed  # sealed, not stored as given
    assert AuditEvent.objects.get(action="acme.eab_create").details["key_id"] == body["key_id"]
    assert "hmac_key" not in json.dumps(AuditEvent.objects.get(action="acme.eab_create").details)
    # the credential works with a real binding
    assert make_client().new_account(eab=(body["key_id"], body["hmac_key"])).status == 201


def test_api_refusals_change_nothing(make_principal_client, acme_org, foreign_ca):
    user = make_principal_client("user", acme_org)
    assert user.post("/api/v1/acme/eab/", {}, content_type="application/json").status_code == 403
    manager = make_principal_client("manager", acme_org)
    response = manager.post("/api/v1/acme/eab/", {"organization": foreign_ca.organization.slug},
                            content_type="application/json")
    assert response.status_code == 404
    response = manager.post("/api/v1/acme/eab/", {"ca": foreign_ca.slug}, content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"]
    response = manager.post("/api/v1/acme/eab/", {"label": ["x"]}, content_type="application/json")
    assert response.status_code == 400
    assert not ExternalAccountKey.objects.exists()


def test_global_admin_names_the_organization(make_principal_client, acme_org, data_dir):
    admin = make_principal_client("admin")
    assert admin.post("/api/v1/acme/eab/", {}, content_type="application/json").status_code == 400
    response = admin.post("/api/v1/acme/eab/", {"organization": acme_org.slug}, content_type="application/json")
    assert response.status_code == 201


def test_command_prints_key_id_and_hmac_once(acme_org, issuing_ca):
    out = StringIO()
    call_command("create_acme_eab", "--organization", acme_org.slug, "--ca", issuing_ca.slug, "--json", stdout=out)
    payload = json.loads(out.getvalue())
    credential = ExternalAccountKey.objects.get(key_id=payload["key_id"])
    assert credential.ca_id == issuing_ca.pk
    assert artifact_store().read(credential.hmac_key_path)  # sealed where the vault keeps secrets
    with pytest.raises(CommandError, match="No organization"):
        call_command("create_acme_eab", "--organization", "nope", stdout=StringIO())
    with pytest.raises(CommandError, match="intermediate"):
        call_command("create_acme_eab", "--organization", acme_org.slug, "--ca", issuing_ca.parent.slug,
                     stdout=StringIO())
    assert ExternalAccountKey.objects.count() == 1


def test_admin_shows_the_key_once_and_scopes_to_the_organization(make_principal_client, acme_org, foreign_ca,
                                                                 client_with_account):
    foreign = create_eab_key(foreign_ca.organization, actor=Actor.operator("tests"))
    admin = make_principal_client("admin", acme_org, via="cookie")
    page = admin.get("/admin/acme_server/externalaccountkey/add/")
    assert page.status_code == 200
    created = admin.post("/admin/acme_server/externalaccountkey/add/", {"organization": acme_org.pk, "label": "x"})
    assert created.status_code == 200
    credential = ExternalAccountKey.objects.filter(label="x").get()
    assert credential.key_id in created.content.decode()
    listing = admin.get("/admin/acme_server/externalaccountkey/").content.decode()
    assert credential.key_id in listing
    assert foreign.credential.key_id not in listing
    assert admin.get(f"/admin/acme_server/externalaccountkey/{foreign.credential.pk}/change/").status_code in (302,
                                                                                                              404)
    accounts = admin.get("/admin/acme_server/account/").content.decode()
    assert Account.objects.get().name in accounts
    refused = admin.post("/admin/acme_server/externalaccountkey/add/", {"organization": foreign_ca.organization.pk})
    assert refused.status_code == 200
    assert ExternalAccountKey.objects.filter(organization=foreign_ca.organization).count() == 1


def test_admin_revokes_a_key(make_principal_client, acme_org, eab_key):
    admin = make_principal_client("admin", acme_org, via="cookie")
    credential = ExternalAccountKey.objects.get(key_id=eab_key[0])
    response = admin.post("/admin/acme_server/externalaccountkey/",
                          {"action": "revoke_selected", "_selected_action": [credential.pk]})
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.revoked_at is not None
    assert AuditEvent.objects.filter(action="acme.eab_revoke").count() == 1


def test_certificate_admin_names_the_acme_account(make_principal_client, acme_org, client_with_account, outcomes):
    from certificates.models import Certificate
    from tests.acme.flow import issue

    issue(client_with_account, outcomes, "www.example.com")
    certificate = Certificate.objects.get(acme_order__isnull=False)
    admin = make_principal_client("admin", acme_org, via="cookie")
    page = admin.get(f"/admin/certificates/certificate/{certificate.pk}/change/").content.decode()
    assert f"account {Account.objects.get().name}" in page


def test_api_lists_reads_and_revokes_without_the_hmac_key(make_principal_client, acme_org, eab_key, foreign_ca,
                                                          make_client):
    """A credential is listed and read without its HMAC key; revoking it refuses the next binding."""
    foreign = create_eab_key(foreign_ca.organization, actor=Actor.operator("tests")).credential
    manager = make_principal_client("manager", acme_org)
    credential = ExternalAccountKey.objects.get(key_id=eab_key[0])
    listing = manager.get("/api/v1/acme/eab/")
    assert listing.status_code == 200
    assert [row["key_id"] for row in listing.json()["results"]] == [credential.key_id]
    assert eab_key[1] not in listing.content.decode()
    assert "hmac_key" not in listing.json()["results"][0]
    detail = manager.get(f"/api/v1/acme/eab/{credential.pk}/").json()
    assert detail["organization"] == acme_org.slug
    assert detail["revoked_at"] is None
    assert detail["account"] is None
    assert manager.get(f"/api/v1/acme/eab/{foreign.pk}/").status_code == 404
    assert manager.post(f"/api/v1/acme/eab/{foreign.pk}/revoke/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None

    revoked = manager.post(f"/api/v1/acme/eab/{credential.pk}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert AuditEvent.objects.get(action="acme.eab_revoke").target_id == str(credential.pk)
    again = manager.post(f"/api/v1/acme/eab/{credential.pk}/revoke/")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "already_revoked"
    assert AuditEvent.objects.filter(action="acme.eab_revoke").count() == 1
    assert make_client().new_account(eab=eab_key).problem == "unauthorized"


def test_api_listing_names_the_bound_account_and_refuses_users(make_principal_client, acme_org, client_with_account):
    admin = make_principal_client("admin", acme_org)
    row = admin.get("/api/v1/acme/eab/").json()["results"][0]
    assert row["account"] == Account.objects.get().name
    assert row["used_at"] is not None
    user = make_principal_client("user", acme_org)
    assert user.get("/api/v1/acme/eab/").status_code == 403
    assert user.post(f"/api/v1/acme/eab/{row['id']}/revoke/").status_code == 403
    assert ExternalAccountKey.objects.get(pk=row["id"]).revoked_at is None


def test_global_admin_lists_every_organization(make_principal_client, acme_org, eab_key, foreign_ca):
    create_eab_key(foreign_ca.organization, actor=Actor.operator("tests"))
    admin = make_principal_client("admin")
    assert admin.get("/api/v1/acme/eab/").json()["count"] == 2


def test_command_revokes_by_key_id(acme_org, eab_key):
    out = StringIO()
    call_command("revoke_acme_eab", eab_key[0], "--json", stdout=out)
    assert json.loads(out.getvalue())["key_id"] == eab_key[0]
    assert ExternalAccountKey.objects.get(key_id=eab_key[0]).revoked_at is not None
    with pytest.raises(CommandError, match="already revoked"):
        call_command("revoke_acme_eab", eab_key[0], stdout=StringIO())
    with pytest.raises(CommandError, match="No ACME external account key"):
        call_command("revoke_acme_eab", "nope", stdout=StringIO())
    assert AuditEvent.objects.filter(action="acme.eab_revoke").count() == 1


def test_acme_certificates_name_their_account_in_the_inventory(make_principal_client, acme_org, client_with_account,
                                                               outcomes):
    """The certificate page, the API detail, the dashboard and the admin's channel filter all tell ACME apart."""
    from certificates.models import Certificate
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from tests.acme.flow import issue
    from tests.certificates.csrs import make_csr

    issue(client_with_account, outcomes, "www.example.com")
    acme_certificate = Certificate.objects.get(acme_order__isnull=False)
    other = issue_certificate(acme_certificate.issuer, IssuanceRequest(profile="server", csr=make_csr("b.example.com")),
                              actor=Actor.operator("tests"))
    account, order = Account.objects.get(), acme_certificate.acme_order
    manager = make_principal_client("manager", acme_org, via="cookie")

    page = manager.get(f"/certificates/{acme_certificate.pk}").content.decode()
    assert f"account <code>{account.name}</code>, order <code>{order.name}</code>" in page
    assert "order <code>" not in manager.get(f"/certificates/{other.pk}").content.decode()

    api = make_principal_client("manager", acme_org)
    assert api.get(f"/api/v1/certificates/{acme_certificate.pk}/").json()["acme"] == {"account": account.name,
                                                                                     "order": order.name}
    assert api.get(f"/api/v1/certificates/{other.pk}/").json()["acme"] is None

    dashboard = manager.get("/").content.decode()
    assert "Issued through ACME" in dashboard
    assert f"acme:{account.name}" in dashboard  # the recent certificates name who asked

    admin = make_principal_client("admin", acme_org, via="cookie")
    acme_only = admin.get("/admin/certificates/certificate/?channel=acme").content.decode()
    assert acme_certificate.serial[:16] in acme_only
    assert other.serial[:16] not in acme_only


def test_the_created_key_has_a_location_and_is_never_replayed(make_principal_client, acme_org):
    """The generic Location of every 201 names the new detail route; the HMAC key is never stored for a replay."""
    manager = make_principal_client("manager", acme_org)
    first = manager.post("/api/v1/acme/eab/", {"label": "a"}, content_type="application/json",
                         headers={"Idempotency-Key": "eab-once"})
    assert first.status_code == 201
    assert first["Location"].endswith(f"/api/v1/acme/eab/{first.json()['id']}/")
    again = manager.post("/api/v1/acme/eab/", {"label": "a"}, content_type="application/json",
                         headers={"Idempotency-Key": "eab-once"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "idempotency_secret_shown"
    assert first.json()["hmac_key"] not in again.content.decode()
    assert ExternalAccountKey.objects.count() == 1
