"""Key generation, classification and (unencrypted) serialisation.

Only the algorithms the CA/Browser Forum Baseline Requirements section 6.1.5
accept (RSA >= 2048 bits, ECDSA on P-256/P-384/P-521) plus Ed25519 (RFC 8410)
for private use are supported. Everything else is refused with
:class:`InvalidRequestError` (code ``weak_key``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import InvalidRequestError

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: The only RSA public exponent accepted (BR 6.1.6 requires an odd exponent
#: >= 3; we are stricter and accept the universal F4 only).
RSA_PUBLIC_EXPONENT = 65537


class KeyType(StrEnum):
    """The key types the CA can generate and accepts in requests."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    EC_P521 = "ec-p521"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("ec-")


_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
    KeyType.EC_P521: ec.SECP521R1(),
}
_CURVE_NAMES: dict[str, KeyType] = {curve.name: kt for kt, curve in _CURVES.items()}
_RSA_SIZES: dict[int, KeyType] = {
    2048: KeyType.RSA_2048,
    3072: KeyType.RSA_3072,
    4096: KeyType.RSA_4096,
}


def parse_key_type(value: str | KeyType) -> KeyType:
    """Return the :class:`KeyType` named ``value`` or raise InvalidRequestError."""
    try:
        return KeyType(value)
    except ValueError:
        allowed = ", ".join(kt.value for kt in KeyType)
        raise InvalidRequestError(f"unknown key type; expected one of: {allowed}", code="key_type_invalid") from None


def generate_private_key(key_type: KeyType | str) -> PrivateKey:
    """Generate a fresh private key of ``key_type``."""
    key_type = parse_key_type(key_type)
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if key_type.is_ec:
        return ec.generate_private_key(_CURVES[key_type])
    size = int(key_type.value.removeprefix("rsa-"))
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=size)


def key_type_of(key: object) -> KeyType:
    """Classify a public or private key, refusing anything weak or unsupported.

    Raises :class:`InvalidRequestError` (code ``weak_key``) for RSA keys under
    2048 bits or with an exponent other than 65537, DSA, curves other than
    P-256/P-384/P-521 (BR 6.1.5), Ed448, X25519/X448, and any other key; and
    code ``unsupported_key`` for RSA moduli that are strong but not exactly
    2048, 3072 or 4096 bits.
    """
    # EC and Ed25519 keys are classified as they are: deriving an Ed25519 public key is a scalar
    # Multiplication (about 9 us), and signing calls this for the issuer's private key.
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        key_type = _CURVE_NAMES.get(key.curve.name)
        if key_type is None:
            raise InvalidRequestError("unsupported elliptic curve; use P-256, P-384 or P-521", code="weak_key")
        return key_type
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return KeyType.ED25519
    public = _public_of(key)
    if isinstance(public, rsa.RSAPublicKey):
        return _rsa_key_type(public)
    raise InvalidRequestError(
        "unsupported key algorithm; use RSA (2048+ bits), ECDSA P-256/P-384/P-521 or Ed25519",
        code="weak_key",
    )


def _public_of(key: object) -> object:
    """Return the public half of ``key`` if it is a private key."""
    public_key = getattr(key, "public_key", None)
    if callable(public_key):
        return public_key()
    return key


def _rsa_key_type(public: rsa.RSAPublicKey) -> KeyType:
    numbers = public.public_numbers()
    if public.key_size < 2048:
        raise InvalidRequestError(
            f"RSA key of {public.key_size} bits is too weak; at least 2048 bits are required",
            code="weak_key",
        )
    if numbers.e != RSA_PUBLIC_EXPONENT:
        raise InvalidRequestError("RSA public exponent must be 65537", code="weak_key")
    key_type = _RSA_SIZES.get(public.key_size)
    if key_type is None:
        raise InvalidRequestError("unsupported RSA key size; use 2048, 3072 or 4096 bits", code="unsupported_key")
    return key_type


def signature_hash_for(private_key: PrivateKey) -> hashes.HashAlgorithm | None:
    """Return the digest to sign with ``private_key`` (None for Ed25519).

    Follows BR 7.1.3.2: ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512;
    RSA PKCS#1 v1.5 with SHA-256 up to 3072 bits and SHA-512 for 4096 bits.
    Ed25519 signs the message itself (RFC 8410 section 6), so no digest.
    """
    key_type = key_type_of(private_key)
    if key_type is KeyType.ED25519:
        return None
    if key_type in (KeyType.EC_P384,):
        return hashes.SHA384()
    if key_type in (KeyType.EC_P521, KeyType.RSA_4096):
        return hashes.SHA512()
    return hashes.SHA256()


def private_key_to_der(key: PrivateKey) -> bytes:
    """Serialise ``key`` as unencrypted PKCS#8 DER (the vault encrypts it)."""
    key_type_of(key)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_der(data: bytes) -> PrivateKey:
    """Load an unencrypted PKCS#8 (or traditional) DER private key.

    Raises :class:`InvalidRequestError` (code ``key_malformed``) for anything
    that is not a supported private key; the message never echoes the input.
    """
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidRequestError("not a valid unencrypted DER private key", code="key_malformed") from None
    key_type_of(key)
    return key  # type: ignore[return-value]


def public_key_to_pem(key: PublicKey | PrivateKey) -> bytes:
    """Return the SubjectPublicKeyInfo PEM of a public (or private) key."""
    public = _public_of(key)
    return public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
