"""The ACME rows of tests/audit/test_coverage.py: each ACME action, done over the protocol, leaves one event."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from acme_server import validation
from acme_server.models import Account, Challenge
from acme_server.services import validation_runner
from acme_server.services.eab import create_eab_key, revoke_eab_key
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from pki_project.actor import Actor
from tests.acme.conftest import django_transport
from tests.acme.flow import b64, csr_der, new_order
from tests.acme.jws import AcmeTestClient, jws, public_jwk
from tests.factories import OrganizationFactory

ROOT_PASSWORD = "correct horse battery staple"


def _setup(world):
    organization = OrganizationFactory()
    operator = Actor.operator("tests")
    root = create_root_ca(organization=organization, common_name="ACME Coverage Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)
    ca = create_intermediate_ca(parent=root, common_name="ACME Coverage Issuing", root_password=ROOT_PASSWORD,
                                key_type="ec-p256", days=1825, path_length=0, actor=operator)
    world.monkeypatch.setattr(validation_runner, "submit", lambda pk: None)  # the row runs the pool's job itself
    world.monkeypatch.setattr(validation, "validate_challenge",
                              lambda *args: validation.ChallengeOutcome(True, None, "ok"))
    return organization, ca


def _client(world, with_account: bool = True) -> tuple[AcmeTestClient, object]:
    organization, ca = _setup(world)
    client = AcmeTestClient(django_transport(Client()), f"http://testserver/acme/{ca.slug}/directory",
                            ec.generate_private_key(ec.SECP256R1()))
    if with_account:
        created = create_eab_key(organization, actor=Actor.operator("tests"))
        assert client.new_account(eab=(created.credential.key_id, created.hmac_key)).status == 201
    return client, organization


def _account_label() -> str:
    return f"acme:{Account.objects.get().name}"


def _expected(**kwargs):
    from tests.audit.test_coverage import Expected

    return Expected(**kwargs)


def _prove(client) -> dict:
    answer = new_order(client, "www.example.com")
    authz = client.post(answer.json()["authorizations"][0], None).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    assert client.post(challenge["url"], {}).status == 200
    return {"order": answer.json(), "url": answer.headers["location"], "challenge": challenge}


def eab_create(world):
    organization, _ca = _setup(world)
    admin = world.make_client("admin", organization)
    world.mark()
    response = admin.post("/api/v1/acme/eab/", {}, content_type="application/json")
    assert response.status_code == 201
    return _expected(actor_username=admin.user.username, organization_id=organization.pk, target_type="acme_eab",
                     target_id=str(response.json()["id"]))


def eab_revoke(world):
    organization, _ca = _setup(world)
    created = create_eab_key(organization, actor=Actor.operator("tests"))
    world.mark()
    revoke_eab_key(created.credential, actor=Actor.operator("revoke"))
    return _expected(actor_label="cli:revoke", organization_id=organization.pk, target_type="acme_eab",
                     target_id=str(created.credential.pk), details={"key_id": created.credential.key_id})


def account_create(world):
    client, organization = _client(world, with_account=False)
    created = create_eab_key(organization, actor=Actor.operator("tests"))
    world.mark()
    assert client.new_account(eab=(created.credential.key_id, created.hmac_key)).status == 201
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_account",
                     details={"eab_key_id": created.credential.key_id})


def account_update(world):
    client, organization = _client(world)
    world.mark()
    assert client.post(client.kid, {"contact": ["mailto:new@example.com"]}).status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_account",
                     details={"changed": ["contacts"]})


def account_deactivate(world):
    client, organization = _client(world)
    world.mark()
    assert client.post(client.kid, {"status": "deactivated"}).status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_account")


def account_key_change(world):
    client, organization = _client(world)
    new_key = ec.generate_private_key(ec.SECP256R1())
    url = client.directory["keyChange"]
    inner = jws(new_key, {"alg": "ES256", "jwk": public_jwk(new_key), "url": url},
                {"account": client.kid, "oldKey": public_jwk(client.key)})
    world.mark()
    assert client.post(url, inner).status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_account")


def order_create(world):
    client, organization = _client(world)
    world.mark()
    assert new_order(client, "www.example.com").status == 201
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_order",
                     details={"identifiers": ["www.example.com"]})


def authorization_deactivate(world):
    client, organization = _client(world)
    authz_url = new_order(client, "www.example.com").json()["authorizations"][0]
    world.mark()
    assert client.post(authz_url, {"status": "deactivated"}).status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk,
                     target_type="acme_authorization")


def challenge_validate(world):
    client, organization = _client(world)
    proof = _prove(client)
    world.mark()
    validation_runner.validate_now(Challenge.objects.get(name=proof["challenge"]["url"].rsplit("/", 1)[1]).pk)
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_challenge",
                     details={"type": "http-01"})


def order_finalize(world):
    client, organization = _client(world)
    proof = _prove(client)
    validation_runner.validate_now(Challenge.objects.get(name=proof["challenge"]["url"].rsplit("/", 1)[1]).pk)
    der, _key = csr_der(["www.example.com"])
    world.mark()
    assert client.post(proof["order"]["finalize"], {"csr": b64(der)}).status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="acme_order")


def certificate_revoke(world):
    client, organization = _client(world)
    proof = _prove(client)
    validation_runner.validate_now(Challenge.objects.get(name=proof["challenge"]["url"].rsplit("/", 1)[1]).pk)
    der, _key = csr_der(["www.example.com"])
    order = client.post(proof["order"]["finalize"], {"csr": b64(der)}).json()
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(client.post(order["certificate"], None).body)[0]
    world.mark()
    answer = client.post(client.directory["revokeCert"],
                         {"certificate": b64(leaf.public_bytes(serialization.Encoding.DER))})
    assert answer.status == 200
    return _expected(actor_label=_account_label(), organization_id=organization.pk, target_type="certificate",
                     details={"reason": "unspecified", "signed_by": "account"})


