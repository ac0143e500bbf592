"""Key types, weak-key refusal, signature hashes, DER round trips and serial numbers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from certificates.crypto import (
    InvalidRequestError,
    KeyType,
    key_type_of,
    parse_key_type,
    private_key_from_der,
    private_key_to_der,
    random_serial,
    serial_from_hex,
    serial_to_hex,
    signature_hash_for,
)
from tests.crypto.helpers import cached_key

EXPECTED_HASH = {
    KeyType.EC_P256: "sha256",
    KeyType.EC_P384: "sha384",
    KeyType.EC_P521: "sha512",
    KeyType.RSA_2048: "sha256",
    KeyType.RSA_3072: "sha256",
    KeyType.RSA_4096: "sha512",
    KeyType.ED25519: None,
}


@pytest.mark.parametrize("key_type", list(KeyType), ids=str)
def test_generate_classify_hash_and_round_trip(key_type: KeyType) -> None:
    key = cached_key(key_type, "leaf")
    assert key_type_of(key) is key_type
    assert key_type_of(key.public_key()) is key_type
    algorithm = signature_hash_for(key)
    assert (algorithm.name if algorithm else None) == EXPECTED_HASH[key_type]
    der = private_key_to_der(key)
    assert der[0] == 0x30
    loaded = private_key_from_der(der)
    assert loaded.public_key() == key.public_key()


def test_key_type_values_and_parsing() -> None:
    assert [kt.value for kt in KeyType] == [
        "ec-p256",
        "ec-p384",
        "ec-p521",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ed25519",
    ]
    assert parse_key_type("rsa-3072") is KeyType.RSA_3072
    assert isinstance(KeyType.EC_P256, str)
    with pytest.raises(InvalidRequestError) as err:
        parse_key_type("rsa-1024")
    assert err.value.code == "key_type_invalid"


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.fixture(scope="module")
def rsa_exponent_3() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=2048)


@pytest.mark.parametrize(
    ("make_key", "code"),
    [
        (lambda: ec.generate_private_key(ec.SECP256K1()), "weak_key"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "weak_key"),
        (lambda: dsa.generate_private_key(2048), "weak_key"),
        (ed448.Ed448PrivateKey.generate, "weak_key"),
        (x25519.X25519PrivateKey.generate, "weak_key"),
        (lambda: "not a key", "weak_key"),
    ],
    ids=["secp256k1", "p224", "dsa", "ed448", "x25519", "junk"],
)
def test_unsupported_keys_are_refused(make_key, code: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        key_type_of(make_key())
    assert err.value.code == code


def test_weak_rsa_refused(rsa_1024: rsa.RSAPrivateKey, rsa_exponent_3: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidRequestError, match="1024 bits") as err:
        key_type_of(rsa_1024)
    assert err.value.code == "weak_key"
    with pytest.raises(InvalidRequestError, match="65537") as err:
        key_type_of(rsa_exponent_3.public_key())
    assert err.value.code == "weak_key"


def test_private_key_from_der_refuses_junk(rsa_1024: rsa.RSAPrivateKey) -> None:
    for junk in (b"", b"\x30\x03\x02\x01\x00", b"garbage" * 10):
        with pytest.raises(InvalidRequestError) as err:
            private_key_from_der(junk)
        assert err.value.code == "key_malformed"
    with pytest.raises(InvalidRequestError) as err:
        private_key_from_der(private_key_to_der_unchecked(rsa_1024))
    assert err.value.code == "weak_key"


def private_key_to_der_unchecked(key: rsa.RSAPrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_ed25519_has_no_hash() -> None:
    assert signature_hash_for(ed25519.Ed25519PrivateKey.generate()) is None


def test_random_serials() -> None:
    serials = {random_serial() for _ in range(2000)}
    assert len(serials) == 2000
    assert all(0 < s < 2**159 for s in serials)
    # DER INTEGER content of a positive number below 2**159 is at most 20 octets.
    assert all(len(s.to_bytes((s.bit_length() + 8) // 8, "big")) <= 20 for s in serials)
    # 159 random bits: some serials use the top bits.
    assert max(s.bit_length() for s in serials) >= 150


@pytest.mark.parametrize(
    ("serial", "text"),
    [(1, "01"), (0xABC, "0abc"), (0xFF, "ff"), (2**159 - 1, "7f" + "ff" * 19)],
)
def test_serial_hex_round_trip(serial: int, text: str) -> None:
    assert serial_to_hex(serial) == text
    assert serial_from_hex(text) == serial
    assert serial_from_hex(text.upper()) == serial


def test_serial_from_hex_accepts_colons_and_case() -> None:
    assert serial_from_hex("0A:BC:DE") == 0x0ABCDE
    assert serial_from_hex("  7f:FF ") == 0x7FFF


@pytest.mark.parametrize("junk", ["", "xyz", "0x12", "00", "12-34", "1" * 43, "ab\ncd", "\u0661\u0662"])
def test_serial_from_hex_refuses_junk(junk: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        serial_from_hex(junk)
    assert err.value.code == "serial_invalid"


def test_serial_to_hex_refuses_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        serial_to_hex(0)
