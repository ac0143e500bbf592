"""PKCS#12 bundles opened by openssl with the right password and refused with a wrong one."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certificates.crypto import (
    PROFILES,
    InvalidRequestError,
    KeyType,
    build_end_entity_certificate,
    build_pkcs12,
    build_subject,
    generate_pkcs12_password,
    parse_san,
)
from tests.crypto.helpers import INTER_URLS, assert_openssl_ok, cached_chain, cached_key, openssl


def _leaf(key_type: KeyType) -> x509.Certificate:
    chain = cached_chain(key_type)
    return build_end_entity_certificate(
        chain.inter,
        chain.inter_key,
        cached_key(key_type, "leaf").public_key(),
        build_subject("p12.example.com"),
        [parse_san("DNS:p12.example.com")],
        PROFILES["server"],
        30,
        INTER_URLS,
    )


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_3072, KeyType.ED25519], ids=str)
def test_pkcs12_opens_with_openssl(key_type: KeyType, tmp_path: Path) -> None:
    chain = cached_chain(key_type)
    leaf = _leaf(key_type)
    key = cached_key(key_type, "leaf")
    password = generate_pkcs12_password()
    data = build_pkcs12(key, leaf, [chain.inter, chain.root], password.encode(), b"p12.example.com")
    path = tmp_path / "bundle.p12"
    path.write_bytes(data)

    result = openssl("pkcs12", "-in", path, "-passin", f"pass:{password}", "-info", "-noout")
    assert_openssl_ok(result)
    details = result.stderr + result.stdout
    assert "PBES2" in details, details
    assert "AES-256-CBC" in details.upper() or "aes-256-cbc" in details, details
    assert "sha256" in details.lower(), details

    result = openssl("pkcs12", "-in", path, "-passin", f"pass:{password}", "-nokeys")
    assert_openssl_ok(result)
    assert result.stdout.count("BEGIN CERTIFICATE") == 3
    assert "friendlyName: p12.example.com" in result.stdout

    wrong = openssl("pkcs12", "-in", path, "-passin", "pass:wrong-password", "-info", "-noout")
    assert wrong.returncode != 0

    loaded = pkcs12.load_pkcs12(data, password.encode())
    assert loaded.key is not None
    assert loaded.key.public_key() == key.public_key()
    assert loaded.cert is not None
    assert loaded.cert.certificate == leaf
    assert [c.certificate for c in loaded.additional_certs] == [chain.inter, chain.root]


def test_pkcs12_refuses_bad_input() -> None:
    leaf = _leaf(KeyType.EC_P256)
    key = cached_key(KeyType.EC_P256, "leaf")
    with pytest.raises(InvalidRequestError) as err:
        build_pkcs12(key, leaf, [], b"", None)
    assert err.value.code == "password_invalid"
    with pytest.raises(InvalidRequestError) as err:
        build_pkcs12(cached_key(KeyType.EC_P256, "other"), leaf, [], b"pw", None)
    assert err.value.code == "key_mismatch"


def test_generated_passwords() -> None:
    passwords = {generate_pkcs12_password() for _ in range(100)}
    assert len(passwords) == 100
    for password in passwords:
        assert len(password) >= 22  # 128 bits in base64url
        assert all(c.isalnum() or c in "-_" for c in password)
