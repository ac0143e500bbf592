"""ACME Renewal Information (RFC 9773): the suggested window per certificate and orders that replace one."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from acme_server.models import Order
from certificates.models import Certificate
from certificates.services.revocation import revoke_certificate
from pki_project.actor import Actor
from tests.acme.flow import issue
from tests.acme.test_protocol import assert_refused, state

pytestmark = pytest.mark.django_db


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_id(certificate: x509.Certificate) -> str:
    """RFC 9773 4.1, written out independently of the server: AKI keyIdentifier . serial DER content octets."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = certificate.serial_number
    octets = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return f"{_b64(aki)}.{_b64(octets)}"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def issued(client_with_account, outcomes) -> tuple[x509.Certificate, Certificate]:
    _order, _url, chain = issue(client_with_account, outcomes, "www.example.com", "api.example.com")
    leaf = x509.load_pem_x509_certificates(chain)[0]
    return leaf, Certificate.objects.get(fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex())


def test_the_directory_names_the_renewal_info_endpoint(client_with_account):
    assert client_with_account.directory["renewalInfo"].endswith("/renewal-info")


def test_a_valid_certificate_is_renewed_in_the_last_third(client_with_account, transport, issued):
    leaf, _row = issued
    answer = transport("GET", f"{client_with_account.directory['renewalInfo']}/{cert_id(leaf)}", None, {})
    assert answer.status == 200, answer.body
    assert int(answer.headers["retry-after"]) > 0
    window = answer.json()["suggestedWindow"]
    start, end = _moment(window["start"]), _moment(window["end"])
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert leaf.not_valid_before_utc + lifetime * 0.6 < start < end < leaf.not_valid_after_utc


def test_a_revoked_certificate_is_renewed_at_once(client_with_account, transport, issued):
    leaf, row = issued
    revoke_certificate(row, reason="keyCompromise", actor=Actor.operator("tests"))
    answer = transport("GET", f"{client_with_account.directory['renewalInfo']}/{cert_id(leaf)}", None, {})
    assert answer.status == 200
    window = answer.json()["suggestedWindow"]
    assert _moment(window["end"]) < datetime.now(tz=_moment(window["end"]).tzinfo)


UNKNOWN_SERIAL = _b64(bytes([1, 2, 3]))
NEGATIVE_SERIAL = _b64(bytes([0x80]))
OTHER_KEY_ID = _b64(b"another key identifier")


@pytest.mark.parametrize(("mangle", "status"), [
    (lambda aki, serial: f"{aki}.{UNKNOWN_SERIAL}", 404),  # no such serial
    (lambda aki, serial: f"{OTHER_KEY_ID}.{serial}", 404),  # another CA
    (lambda aki, serial: f"{aki}", 400),
    (lambda aki, serial: f"{aki}=.{serial}", 400),  # padding
    (lambda aki, serial: f"{aki}.{serial}.x", 400),
    (lambda aki, serial: f"{aki}.{NEGATIVE_SERIAL}", 400),  # a negative serial
    (lambda aki, serial: "x" * 300, 400),
])
def test_unknown_and_malformed_cert_ids(client_with_account, transport, issued, mangle, status):
    aki, serial = cert_id(issued[0]).split(".")
    answer = transport("GET", f"{client_with_account.directory['renewalInfo']}/{mangle(aki, serial)}", None, {})
    assert answer.status == status, answer.body
    assert answer.problem == "malformed"


def _replacing(client, names: list[str], replaces: str):
    return client.post(client.directory["newOrder"],
                       {"identifiers": [{"type": "dns", "value": n} for n in names], "replaces": replaces})


def test_an_order_replaces_a_certificate_once(client_with_account, issued):
    leaf, row = issued
    answer = _replacing(client_with_account, ["www.example.com"], cert_id(leaf))
    assert answer.status == 201, answer.body
    assert answer.json()["replaces"] == cert_id(leaf)
    assert Order.objects.get(name=answer.headers["location"].rsplit("/", 1)[1]).replaces == row
    before = state()
    again = _replacing(client_with_account, ["www.example.com"], cert_id(leaf))
    assert_refused(again, "alreadyReplaced", 409)
    assert state() == before


def test_an_invalid_replacement_frees_the_certificate(client_with_account, issued):
    leaf, _row = issued
    first = _replacing(client_with_account, ["www.example.com"], cert_id(leaf))
    Order.objects.filter(name=first.headers["location"].rsplit("/", 1)[1]).update(status="invalid")
    assert _replacing(client_with_account, ["www.example.com"], cert_id(leaf)).status == 201


def test_replacing_needs_the_same_account_and_a_shared_name(client_with_account, make_client, eab_key, issued,
                                                           acme_org, issuing_ca):
    from acme_server.services.eab import create_eab_key

    leaf, _row = issued
    before = state()
    assert_refused(_replacing(client_with_account, ["other.example.com"], cert_id(leaf)), "malformed")
    assert_refused(_replacing(client_with_account, ["www.example.com"], "bad"), "malformed")
    created = create_eab_key(acme_org, actor=Actor.operator("tests"))
    stranger = make_client()
    assert stranger.new_account(eab=(created.credential.key_id, created.hmac_key)).status == 201
    before = state()
    assert_refused(_replacing(stranger, ["www.example.com"], cert_id(leaf)), "unauthorized", 403)
    assert state() == before


def test_the_database_keeps_one_live_replacement_per_certificate(client_with_account, issued):
    """Two newOrders racing past the check: the partial unique constraint keeps one."""
    from django.db import IntegrityError, transaction

    leaf, row = issued
    first = _replacing(client_with_account, ["www.example.com"], cert_id(leaf))
    order = Order.objects.get(name=first.headers["location"].rsplit("/", 1)[1])
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(account=order.account, organization=order.organization, ca=order.ca,
                             identifiers=order.identifiers, expires_at=order.expires_at, replaces=row)
