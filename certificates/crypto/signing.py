"""The signing seam: what signs a certificate, a CRL or an OCSP answer, without showing its key.

The builders of this package take a :class:`Signer` (or, for the pure tests and tools, a
private key, which :func:`as_signer` wraps). A signer offers its public key and three
operations; where its key lives (the file vault, a PKCS#11 token) is its own business.
`cryptography` signs through the key object's ``sign`` method, so a key held by a token is
a key object whose ``sign`` asks the token (see ``certificates.signers.pkcs11``).
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp

from .keys import PrivateKey, PublicKey, signature_hash_for


@runtime_checkable
class Signer(Protocol):
    """Signs for one key; the key itself never leaves it."""

    def public_key(self) -> PublicKey: ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate: ...

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList: ...

    def sign_ocsp(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse: ...


class KeySigner:
    """A :class:`Signer` over a `cryptography` private key object (in memory or token-backed).

    The digest follows the key (BR 7.1.3.2, see :func:`signature_hash_for`).
    """

    __slots__ = ("_key",)

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"<KeySigner {type(self._key).__name__}>"

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, signature_hash_for(self._key))  # type: ignore[arg-type]

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self._key, signature_hash_for(self._key))  # type: ignore[arg-type]

    def sign_ocsp(self, builder: ocsp.OCSPResponseBuilder) -> ocsp.OCSPResponse:
        return builder.sign(self._key, signature_hash_for(self._key))  # type: ignore[arg-type]


#: What the builders accept as the signing side.
IssuerKey: TypeAlias = Signer | PrivateKey


def as_signer(issuer: IssuerKey) -> Signer:
    """`issuer` as a :class:`Signer` (a bare private key is wrapped)."""
    if isinstance(issuer, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return KeySigner(issuer)
    return issuer
