"""OCSP (RFC 6960): requests from cryptography and openssl, responses verified by
``openssl ocsp`` and lint_ocsp_response, and malformed requests refused cleanly."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certificates.crypto import (
    PROFILES,
    KeyType,
    MalformedOCSPRequest,
    OCSPCertId,
    PolicyError,
    build_end_entity_certificate,
    build_ocsp_responder_certificate,
    build_ocsp_response,
    build_subject,
    cert_id_matches_issuer,
    ocsp_error_response,
    ocsp_request_from_get_path,
    parse_ocsp_request,
    parse_san,
)
from tests.crypto.helpers import (
    INTER_URLS,
    Chain,
    assert_lints_clean,
    assert_openssl_ok,
    cached_chain,
    cached_key,
    openssl,
    write_pem,
)

# RFC 6960 CertIDs still default to SHA-1 (a name/key hash, not a signature).
SHA1 = hashes.SHA1()  # noqa: S303
KEY_TYPES = [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _leaf(chain: Chain, host: str = "ocsp-leaf.example.com") -> x509.Certificate:
    return build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(chain.key_type, "leaf").public_key(),
        build_subject(host),
        [parse_san(f"DNS:{host}")],
        PROFILES["server"],
        30,
        INTER_URLS,
    )


def _responder(chain: Chain) -> tuple[x509.Certificate, object]:
    key = cached_key(chain.key_type, "ocsp")
    cert = build_ocsp_responder_certificate(
        chain.inter,
        chain.inter_key,
        key.public_key(),
        build_subject("Test OCSP Responder", "Acme Test PKI", country="DE"),
        days=7,
        urls=INTER_URLS,
    )
    return cert, key


def _request(leaf: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm, nonce: bytes | None):
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _openssl_check(
    tmp_path: Path, chain: Chain, request_der: bytes, response_der: bytes, status: str, *, lint: bool = True
) -> str:
    req = tmp_path / "req.der"
    resp = tmp_path / "resp.der"
    req.write_bytes(request_der)
    resp.write_bytes(response_der)
    root_pem = write_pem(tmp_path / "root.pem", chain.root)
    inter_pem = write_pem(tmp_path / "inter.pem", chain.inter)
    result = openssl(
        "ocsp",
        "-reqin",
        req,
        "-respin",
        resp,
        "-issuer",
        inter_pem,
        "-CAfile",
        root_pem,
        "-verify_other",
        inter_pem,
        "-resp_text",
    )
    assert_openssl_ok(result, "Response verify OK")
    output = result.stdout + result.stderr
    assert f"Cert Status: {status}" in output, output
    assert "Nonce Verify error" not in output, output
    if lint:
        assert_lints_clean("lint_ocsp_response", resp)
    return output


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=str)
@pytest.mark.parametrize("algorithm", [SHA1, hashes.SHA256()], ids=lambda a: a.name)
def test_delegated_responder_good_revoked_unknown(
    key_type: KeyType, algorithm: hashes.HashAlgorithm, tmp_path: Path
) -> None:
    chain = cached_chain(key_type)
    leaf = _leaf(chain)
    responder, responder_key = _responder(chain)
    request_der = _request(leaf, chain.inter, algorithm, nonce=b"0123456789abcdef")
    request = parse_ocsp_request(request_der)
    assert cert_id_matches_issuer(request, chain.inter)
    assert not cert_id_matches_issuer(request, chain.root)
    assert request.serial_number == leaf.serial_number

    now = _now()
    good = build_ocsp_response(request, chain.inter, responder, responder_key, "good", this_update=now)
    # The CertID hash does not change the response's structure: lint once per key type.
    lint = algorithm.name == "sha256"
    _openssl_check(tmp_path, chain, request_der, good, "good", lint=lint)

    revoked = build_ocsp_response(
        request,
        chain.inter,
        responder,
        responder_key,
        "revoked",
        revoked_at=now - timedelta(hours=1),
        reason=x509.ReasonFlags.key_compromise,
        this_update=now,
        next_update=now + timedelta(hours=12),
    )
    output = _openssl_check(tmp_path, chain, request_der, revoked, "revoked", lint=lint)
    assert "keyCompromise" in output

    unknown = build_ocsp_response(request, chain.inter, responder, responder_key, "unknown")
    _openssl_check(tmp_path, chain, request_der, unknown, "unknown", lint=lint)

    parsed = ocsp.load_der_ocsp_response(good)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.responder_key_hash is not None  # responderID byKey
    assert parsed.certificates == [responder]
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert parsed.hash_algorithm.name == algorithm.name


def test_ca_signs_its_own_responses(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P384)
    leaf = _leaf(chain)
    request_der = _request(leaf, chain.inter, SHA1, nonce=None)
    request = parse_ocsp_request(request_der)
    response = build_ocsp_response(request, chain.inter, chain.inter, chain.inter_key, "good")
    _openssl_check(tmp_path, chain, request_der, response, "good")
    parsed = ocsp.load_der_ocsp_response(response)
    assert parsed.certificates == []
    with pytest.raises(x509.ExtensionNotFound):
        parsed.extensions.get_extension_for_class(x509.OCSPNonce)


@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_openssl_generated_request_with_nonce(digest: str, tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256)
    leaf = _leaf(chain)
    inter_pem = write_pem(tmp_path / "inter.pem", chain.inter)
    leaf_pem = write_pem(tmp_path / "leaf.pem", leaf)
    req = tmp_path / "openssl-req.der"
    assert_openssl_ok(openssl("ocsp", digest, "-issuer", inter_pem, "-cert", leaf_pem, "-reqout", req))
    request = parse_ocsp_request(req.read_bytes())
    assert cert_id_matches_issuer(request, chain.inter)
    responder, responder_key = _responder(chain)
    response = build_ocsp_response(request, chain.inter, responder, responder_key, "good")
    _openssl_check(tmp_path, chain, req.read_bytes(), response, "good")


def test_unknown_serial_by_cert_id(tmp_path: Path) -> None:
    chain = cached_chain(KeyType.EC_P256)
    cert_id = OCSPCertId.for_serial(chain.inter, 0x424242, hashes.SHA256())
    request_der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(cert_id.issuer_name_hash, cert_id.issuer_key_hash, 0x424242, hashes.SHA256())
        .build()
        .public_bytes(Encoding.DER)
    )
    responder, responder_key = _responder(chain)
    response = build_ocsp_response(cert_id, chain.inter, responder, responder_key, "unknown")
    _openssl_check(tmp_path, chain, request_der, response, "unknown")


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_responder_certificate(key_type: KeyType, tmp_path: Path) -> None:
    chain = cached_chain(key_type)
    responder, _ = _responder(chain)
    ext = responder.extensions
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert ext.get_extension_for_class(x509.OCSPNoCheck)
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign
    assert responder.not_valid_after_utc - responder.not_valid_before_utc < timedelta(days=8)
    path = write_pem(tmp_path / "responder.pem", responder)
    assert_lints_clean("lint_pkix_cert", path)
    if key_type is not KeyType.ED25519:  # BR 6.1.5: RSA/ECDSA only (see test_chain)
        assert_lints_clean("lint_cabf_serverauth_cert", path, "-t", "OCSP-RESPONDER")


def test_unauthorised_responders_and_foreign_requests() -> None:
    chain = cached_chain(KeyType.EC_P256)
    other = cached_chain(KeyType.EC_P384)
    leaf = _leaf(chain)
    request = parse_ocsp_request(_request(leaf, chain.inter, SHA1, None))
    # A leaf without id-kp-OCSPSigning may not sign responses for its CA.
    with pytest.raises(PolicyError) as err:
        build_ocsp_response(request, chain.inter, leaf, cached_key(KeyType.EC_P256, "leaf"), "good")
    assert err.value.code == "ocsp_unauthorized"
    # Another CA's responder may not answer for this CA.
    other_responder, other_key = _responder(other)
    with pytest.raises(PolicyError) as err:
        build_ocsp_response(request, chain.inter, other_responder, other_key, "good")
    assert err.value.code == "ocsp_unauthorized"
    # A request about another CA's certificate.
    with pytest.raises(PolicyError) as err:
        build_ocsp_response(request, other.inter, other.inter, other.inter_key, "good")
    assert err.value.code == "ocsp_unauthorized"
    with pytest.raises(Exception, match="status"):
        build_ocsp_response(request, chain.inter, chain.inter, chain.inter_key, "revoked-ish")
    with pytest.raises(Exception, match="revocation time"):
        build_ocsp_response(request, chain.inter, chain.inter, chain.inter_key, "revoked")


@pytest.mark.parametrize("status", ["malformedRequest", "unauthorized", "internalError", "tryLater"])
def test_error_responses(status: str, tmp_path: Path) -> None:
    der = ocsp_error_response(status)
    parsed = ocsp.load_der_ocsp_response(der)
    assert parsed.response_status.name.replace("_", "").lower() == status.lower()
    path = tmp_path / "err.der"
    path.write_bytes(der)
    assert_lints_clean("lint_ocsp_response", path)
    with pytest.raises(ValueError, match="unknown"):
        ocsp_error_response("nope")


def _malformed_inputs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, object]]:
    chain = cached_chain(KeyType.EC_P256)
    leaf = _leaf(chain)
    good = _request(leaf, chain.inter, SHA1, b"nonce")
    tmp = tmp_path_factory.mktemp("ocsp-multi")
    inter_pem = write_pem(tmp / "inter.pem", chain.inter)
    multi = tmp / "multi.der"
    assert_openssl_ok(openssl("ocsp", "-issuer", inter_pem, "-serial", "1", "-serial", "2", "-reqout", multi))
    return [
        ("empty", b""),
        ("garbage", b"not an ocsp request"),
        ("random", bytes(random.Random(6960).getrandbits(8) for _ in range(300))),
        ("truncated", good[:-7]),
        ("trailing junk", good + b"\x00"),
        ("oversized", good + b"\x00" * 20_000),
        ("certificate", chain.root.public_bytes(Encoding.DER)),
        ("str", "MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ"),
        ("nonce too long", _request(leaf, chain.inter, SHA1, b"n" * 33)),
        ("two requests", multi.read_bytes()),
    ]


def test_malformed_requests(tmp_path_factory: pytest.TempPathFactory) -> None:
    for label, data in _malformed_inputs(tmp_path_factory):
        with pytest.raises(MalformedOCSPRequest) as err:
            parse_ocsp_request(data)  # type: ignore[arg-type]
        assert err.value.code == "ocsp_malformed", label


def test_mutated_requests_only_raise_malformed() -> None:
    chain = cached_chain(KeyType.EC_P256)
    good = _request(_leaf(chain), chain.inter, hashes.SHA256(), b"0123456789abcdef")
    rng = random.Random(6960)
    for _ in range(400):
        data = bytearray(good)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        try:
            request = parse_ocsp_request(bytes(data))
        except MalformedOCSPRequest:
            continue
        cert_id_matches_issuer(request, chain.inter)


def test_get_path_decoding() -> None:
    chain = cached_chain(KeyType.EC_P256)
    leaf = _leaf(chain)
    der = _request(leaf, chain.inter, SHA1, b"nonce-for-get")
    encoded = base64.b64encode(der).decode()
    for segment in (quote(encoded, safe=""), encoded, base64.urlsafe_b64encode(der).decode().rstrip("=")):
        request = ocsp_request_from_get_path(segment)
        assert request.serial_number == leaf.serial_number
    for junk in ("", "%%%", "!!!!", "QUJD"):
        with pytest.raises(MalformedOCSPRequest):
            ocsp_request_from_get_path(junk)
