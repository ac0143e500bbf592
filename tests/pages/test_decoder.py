"""The plain-words decoder behind the certificate page, the admin detail and the toolbox."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.dashboard import issuance_chart
from certificates.decoder import MAX_INPUT_BYTES, DecodeError, decode, describe_certificate
from certificates.models import Certificate
from certificates.services.records import load_x509
from tests.certificates.csrs import make_csr

pytestmark = pytest.mark.django_db


def test_a_root_and_an_intermediate_are_named_for_what_they_are(hierarchy):
    root = describe_certificate(load_x509(hierarchy.root.certificate))
    assert root.sentences[0].startswith("This is a root CA certificate (it signed itself)")
    assert root.is_ca
    assert root.self_signed
    assert any(e.meaning == "A CA: it may sign certificates, with at most 1 CA level(s) below it."
               for e in root.extensions)
    intermediate = describe_certificate(load_x509(hierarchy.intermediate.certificate))
    assert intermediate.sentences[0].startswith("This is an intermediate CA certificate")
    assert "sign revocation lists (CRLs)" in next(e.meaning for e in intermediate.extensions if e.name == "keyUsage")


def test_pem_der_and_chains_are_read(leaf):
    cert = load_x509(leaf)
    assert decode(cert.public_bytes(Encoding.DER)).serial == leaf.serial.lstrip("0")
    chain = cert.public_bytes(Encoding.PEM) + load_x509(leaf.issuer.certificate).public_bytes(Encoding.PEM)
    assert decode(chain).common_name == "www.example.com"  # the first certificate of a pasted chain
    assert decode(cert.public_bytes(Encoding.PEM)).sha256.replace(":", "").lower() == leaf.fingerprint_sha256


def test_a_csr_with_a_broken_signature_is_called_out():
    pem = make_csr("tampered.example.com")
    csr = x509.load_pem_x509_csr(pem)
    der = csr.public_bytes(Encoding.DER).replace(b"tampered", b"tempered")  # the signed part changes
    description = decode(der)
    assert description.kind == "csr"
    assert description.signature_valid is False
    assert any("does NOT verify" in sentence for sentence in description.sentences)


@pytest.mark.parametrize("data", [b"", b"   ", b"\x00\x01garbage", "-----BEGIN CERTIFICATE-----\n!!\n-----END "
                                  "CERTIFICATE-----", b"x" * (MAX_INPUT_BYTES + 1)])
def test_unreadable_input_is_one_readable_error(data):
    with pytest.raises(DecodeError) as raised:
        decode(data)
    assert raised.value.args[0].endswith(".")


def test_the_chart_counts_issuance_and_expiry_by_month(hierarchy, leaf):
    from django.utils import timezone

    chart = issuance_chart(Certificate.objects.all(), timezone.now())
    current = next(month for month in chart.months if month["current"])
    issued = current["bars"][0]
    assert issued.value == 3  # root, intermediate and leaf all start this month
    assert issued.height == 120
    assert issued.y == chart.baseline - 120
    expiring = sum(month["bars"][1].value for month in chart.months)
    assert expiring == 1  # the leaf expires within a year; the CAs later


def test_a_der_certificate_ending_in_a_whitespace_byte_is_read() -> None:
    """DER is binary: a signature whose last byte is 0x0a or 0x20 must not be "stripped" away."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "whitespace.example.com")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for serial in range(1, 2000):  # about 1 in 40 ECDSA signatures ends in one of the six whitespace bytes
        der = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(serial).not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
               .sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
        if der[-1:].isspace():
            break
    assert der[-1:].isspace()
    assert decode(der).common_name == "whitespace.example.com"
