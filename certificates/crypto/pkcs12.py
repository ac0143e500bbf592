"""PKCS#12 bundles (RFC 7292) for keys generated on the server."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from .errors import InvalidRequestError
from .keys import KeyType, PrivateKey, PublicKey, generate_private_key

#: PBKDF2 iterations for the PBES2 key/cert encryption and the PKCS#12 MAC KDF.
#: The passwords handed out are random 192-bit strings
#: (:func:`generate_pkcs12_password`), so the count only matters for
#: operator-chosen passwords; 200,000 keeps imports on Windows, macOS and
#: OpenSSL well under a second while costing a guesser the same per guess.
PKCS12_KDF_ROUNDS = 200_000


def generate_pkcs12_password() -> str:
    """A random URL-safe password carrying 192 bits of entropy (32 characters)."""
    return secrets.token_urlsafe(24)


def build_pkcs12(
    private_key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: bytes,
    friendly_name: bytes | None,
    kdf_rounds: int = PKCS12_KDF_ROUNDS,
) -> bytes:
    """Serialise key, certificate and chain as an encrypted PKCS#12 file.

    Uses PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for both the key and
    the certificates, and an HMAC-SHA256 integrity MAC (instead of the legacy
    RC2/3DES + SHA-1 defaults). ``chain`` is the issuing chain, nearest first.
    """
    if not isinstance(password, bytes) or not password:
        raise InvalidRequestError("a PKCS#12 file needs a non-empty password", code="password_invalid")
    if certificate.public_key() != private_key.public_key():
        raise InvalidRequestError("the private key does not match the certificate", code="key_mismatch")
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(kdf_rounds)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name, private_key, certificate, list(chain) or None, encryption
    )


class SubscriberKey:
    """A key generated on the server for a subscriber: only its public half and its PKCS#12 leave here."""

    __slots__ = ("_key",)

    def __init__(self, key_type: KeyType | str) -> None:
        self._key = generate_private_key(key_type)

    def __repr__(self) -> str:
        return "<SubscriberKey>"

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def pkcs12(self, certificate: x509.Certificate, chain: Sequence[x509.Certificate], password: bytes,
               friendly_name: bytes | None = None) -> bytes:
        """:func:`build_pkcs12` of this key with its certificate and chain."""
        return build_pkcs12(self._key, certificate, chain, password, friendly_name)
