"""Fixtures for the ACME tests: a CA hierarchy, an EAB key, a protocol client on Django's test client,
and pebble-challtestsrv for the validators.

The protocol tests replace `validate_challenge` with an answer they choose (they test the server,
not the validator); the validator tests aim the real validator at challtestsrv.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from acme_server.services import eab as eab_service
from acme_server.services import validation_runner
from certificates.models import CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from organizations.models import Organization
from pki_project.actor import Actor
from tests.acme.challenge_servers import ChallTestSrv
from tests.acme.jws import AcmeTestClient, Answer

ROOT_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def challtestsrv() -> Iterator[ChallTestSrv]:
    """Debian's pebble-challtestsrv on loopback ports: mock HTTP, DNS and TLS-ALPN answers, one per module."""
    server = ChallTestSrv().start()
    yield server
    server.stop()


@pytest.fixture
def acme_org(db) -> Organization:
    return Organization.objects.create(name="Acme Tests", slug="acmetests")


@pytest.fixture
def foreign_org(db) -> Organization:
    return Organization.objects.create(name="Foreign", slug="foreign")


@pytest.fixture
def root_ca(acme_org: Organization, data_dir) -> CertificateAuthority:
    return create_root_ca(organization=acme_org, common_name="ACME Test Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=Actor.operator("tests"))


@pytest.fixture
def issuing_ca(root_ca: CertificateAuthority) -> CertificateAuthority:
    return create_intermediate_ca(parent=root_ca, common_name="ACME Test Issuing", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, slug="acme-issuing",
                                  permitted_names=["example.com", "10.0.0.0/8"], actor=Actor.operator("tests"))


@pytest.fixture
def foreign_ca(foreign_org: Organization, data_dir) -> CertificateAuthority:
    root = create_root_ca(organization=foreign_org, common_name="Foreign Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=Actor.operator("tests"))
    return create_intermediate_ca(parent=root, common_name="Foreign Issuing", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, slug="foreign-issuing",
                                  actor=Actor.operator("tests"))


@pytest.fixture
def eab_key(acme_org, issuing_ca) -> tuple[str, str]:
    created = eab_service.create_eab_key(acme_org, actor=Actor.operator("tests"))
    return created.credential.key_id, created.hmac_key


def django_transport(client: Client) -> callable:
    def send(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        path = url.removeprefix("http://testserver")
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
        if method == "POST":
            response = client.post(path, body or b"", content_type=headers.get("Content-Type", ""), **extra)
        elif method == "HEAD":
            response = client.head(path, **extra)
        else:
            response = client.get(path, **extra)
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)

    return send


@pytest.fixture
def transport():
    return django_transport(Client())


@pytest.fixture
def make_client(transport, issuing_ca):
    def make(key=None, ca: CertificateAuthority | None = None) -> AcmeTestClient:
        return AcmeTestClient(transport, f"http://testserver/acme/{(ca or issuing_ca).slug}/directory",
                              key or ec.generate_private_key(ec.SECP256R1()))

    return make


@pytest.fixture
def client_with_account(make_client, eab_key) -> AcmeTestClient:
    client = make_client()
    answer = client.new_account(eab=eab_key, contact=["mailto:ops@example.com"])
    assert answer.status == 201, answer.body
    return client


@pytest.fixture
def outcomes(monkeypatch, django_capture_on_commit_callbacks):
    """Validation runs inline (the test's transaction holds the data) with an outcome the test sets."""
    from acme_server import validation

    chosen = {"valid": True, "problem_type": None, "detail": "ok"}
    calls: list[tuple] = []

    def validate_challenge(challenge_type, identifier_type, identifier_value, token, key_authorization):
        calls.append((challenge_type, identifier_type, identifier_value, token, key_authorization))
        return validation.ChallengeOutcome(chosen["valid"], chosen["problem_type"], chosen["detail"])

    monkeypatch.setattr(validation, "validate_challenge", validate_challenge)
    monkeypatch.setattr(validation_runner, "submit", lambda pk: validation_runner.validate_now(pk))

    @dataclass
    class Outcomes:
        def fail(self, problem_type="urn:ietf:params:acme:error:incorrectResponse", detail="wrong answer"):
            chosen.update(valid=False, problem_type=problem_type, detail=detail)

        @property
        def calls(self):
            return calls

        def capture(self):
            return django_capture_on_commit_callbacks(execute=True)

    return Outcomes()
