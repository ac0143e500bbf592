"""CSR loading: a hostile-input table where every bad input fails cleanly."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certificates.crypto import (
    InvalidRequestError,
    KeyType,
    csr_common_name,
    csr_key_type,
    csr_sans,
    load_csr,
    parse_san,
    san_type,
    signature_hash_for,
    vet_csr,
)
from tests.crypto.helpers import assert_openssl_ok, cached_chain, cached_key, openssl


def make_csr(
    key=None,
    common_name: str | None = "www.example.com",
    sans: list[x509.GeneralName] | None = None,
    ca: bool | None = None,
) -> x509.CertificateSigningRequest:
    key = key or cached_key(KeyType.EC_P256, "csr")
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    algorithm = signature_hash_for(key) if not isinstance(key, rsa.RSAPrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


@pytest.fixture(scope="module")
def good_csr() -> x509.CertificateSigningRequest:
    return make_csr(sans=[parse_san("DNS:www.example.com"), parse_san("IP:192.0.2.7")])


@pytest.mark.parametrize("key_type", list(KeyType), ids=str)
def test_load_good_csr_pem_der_and_str(key_type: KeyType) -> None:
    csr = make_csr(cached_key(key_type, "leaf"), sans=[parse_san("DNS:WWW.Example.com")])
    for data in (
        csr.public_bytes(Encoding.PEM),
        csr.public_bytes(Encoding.DER),
        csr.public_bytes(Encoding.PEM).decode(),
    ):
        loaded = load_csr(data)
        assert csr_key_type(loaded) is key_type
        assert csr_common_name(loaded) == "www.example.com"
        assert csr_sans(loaded) == [x509.DNSName("www.example.com")]


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_vetting_returns_what_the_csr_accessors_return(key_type: KeyType) -> None:
    """The issuance path reads these values instead of asking the CSR a second time."""
    sans = [parse_san("DNS:WWW.Example.com"), parse_san("DNS:www.example.com"), parse_san("IP:192.0.2.7")]
    csr = make_csr(cached_key(key_type, "leaf"), sans=sans)
    vetted = vet_csr(csr.public_bytes(Encoding.PEM))
    assert vetted.csr.public_bytes(Encoding.DER) == csr.public_bytes(Encoding.DER)
    assert vetted.key_type is key_type is csr_key_type(vetted.csr)
    assert vetted.public_key == csr.public_key()
    assert vetted.sans == csr_sans(vetted.csr) == [x509.DNSName("www.example.com"), sans[2]]
    assert vetted.common_name == csr_common_name(vetted.csr) == "www.example.com"


def test_csr_without_san_or_cn() -> None:
    csr = load_csr(make_csr(common_name=None).public_bytes(Encoding.PEM))
    assert csr_sans(csr) == []
    assert csr_common_name(csr) is None


def _tampered(csr: x509.CertificateSigningRequest) -> bytes:
    der = bytearray(csr.public_bytes(Encoding.DER))
    # Flip a bit inside the commonName value: still well-formed, signature now wrong.
    index = der.find(b"www.example.com")
    der[index] ^= 0x01
    return bytes(der)


def _hostile_inputs() -> list[tuple[str, object, str]]:
    good = make_csr(sans=[parse_san("DNS:www.example.com")])
    pem = good.public_bytes(Encoding.PEM)
    der = good.public_bytes(Encoding.DER)
    cert = cached_chain(KeyType.EC_P256).root
    big_sans = [x509.DNSName(f"h{i}.example.com") for i in range(10_000)]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return [
        ("empty", b"", "csr_malformed"),
        ("empty str", "", "csr_malformed"),
        ("whitespace", b"   \n\t", "csr_malformed"),
        ("garbage", b"this is not a CSR at all", "csr_malformed"),
        ("random bytes", bytes(random.Random(1).getrandbits(8) for _ in range(700)), "csr_malformed"),
        ("not bytes", 12345, "csr_malformed"),
        ("None", None, "csr_malformed"),
        ("non-ascii str", "-----BEGIN CERTIFICATE REQUEST-----\nü\n", "csr_malformed"),
        ("truncated PEM", pem[: len(pem) // 2], "csr_malformed"),
        ("PEM without end", pem.replace(b"-----END CERTIFICATE REQUEST-----", b""), "csr_malformed"),
        ("truncated DER", der[:-10], "csr_malformed"),
        ("DER plus trailing junk", der + b"\x00\x01", "csr_malformed"),
        ("certificate DER", cert.public_bytes(Encoding.DER), "csr_malformed"),
        ("certificate PEM", cert.public_bytes(Encoding.PEM), "csr_malformed"),
        ("1 MB PEM", b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * 1_000_000, "csr_too_large"),
        ("1 MB str", "x" * 1_000_000, "csr_too_large"),
        ("10,000 SANs", make_csr(sans=big_sans).public_bytes(Encoding.PEM), "csr_too_large"),
        ("101 SANs", make_csr(sans=big_sans[:101]).public_bytes(Encoding.DER), "too_many_sans"),
        ("RSA-1024", make_csr(weak).public_bytes(Encoding.PEM), "weak_key"),
        ("CA:TRUE", make_csr(ca=True).public_bytes(Encoding.PEM), "ca_requested"),
        ("tampered signature", _tampered(good), "csr_bad_signature"),
        (
            "URI SAN",
            make_csr(sans=[x509.UniformResourceIdentifier("http://x.example")]).public_bytes(Encoding.PEM),
            "san_not_allowed",
        ),
        ("bad DNS SAN", make_csr(sans=[x509.DNSName("bad..example.com")]).public_bytes(Encoding.PEM), "san_invalid"),
        (
            "wildcard mid-label",
            make_csr(sans=[x509.DNSName("a.*.example.com")]).public_bytes(Encoding.PEM),
            "san_invalid",
        ),
    ]


HOSTILE = _hostile_inputs()


@pytest.mark.parametrize(("label", "data", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_csr_inputs(label: str, data: object, code: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        load_csr(data)  # type: ignore[arg-type]
    assert err.value.code == code, f"{label}: {err.value!r}"
    message = str(err.value)
    assert message
    assert "Traceback" not in message
    assert len(message) < 200


def test_ca_false_is_fine() -> None:
    assert load_csr(make_csr(ca=False).public_bytes(Encoding.PEM))


def test_exactly_100_sans_is_fine() -> None:
    csr = make_csr(sans=[x509.DNSName(f"h{i}.example.com") for i in range(100)])
    assert len(csr_sans(load_csr(csr.public_bytes(Encoding.DER)))) == 100


def test_mutated_csrs_never_leak_other_exceptions(good_csr: x509.CertificateSigningRequest) -> None:
    """Bit flips and truncations of a valid DER CSR: parse or InvalidRequestError, nothing else."""
    der = good_csr.public_bytes(Encoding.DER)
    rng = random.Random(5280)
    for _ in range(400):
        data = bytearray(der)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(InvalidRequestError):
            load_csr(bytes(data))


def test_openssl_generated_csr_with_text_preamble(tmp_path: Path) -> None:
    """`openssl req -text` output (human-readable text, then PEM) is what people paste."""
    out = tmp_path / "req.pem"
    result = openssl(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        tmp_path / "key.pem",
        "-subj",
        "/CN=www.example.com",
        "-addext",
        "subjectAltName=DNS:www.example.com,IP:192.0.2.7",
        "-text",
        "-out",
        out,
    )
    assert_openssl_ok(result)
    csr = load_csr(out.read_bytes())
    assert csr_key_type(csr) is KeyType.RSA_2048
    assert csr_common_name(csr) == "www.example.com"
    assert [san_type(name) for name in csr_sans(csr)] == ["dns", "ip"]
