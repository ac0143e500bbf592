"""The JOSE pieces ACME needs (RFC 7515, 7517, 7518, 7638, 8037), verified with `cryptography` only.

Pure functions: no Django, no database. Accepted account-key algorithms (RFC 8555 6.2):
ES256 (P-256), ES384 (P-384), RS256 (RSA of at least 2048 bits) and EdDSA (Ed25519). `none`
and the HMAC algorithms are refused for account keys; HS256/384/512 only sign an external
account binding (7.3.4), checked by `verify_hmac`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from acme_server.services.problems import AcmeProblem

ACCOUNT_ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_CURVES = {"P-256": (ec.SECP256R1, 32, "ES256", hashes.SHA256), "P-384": (ec.SECP384R1, 48, "ES384", hashes.SHA384)}

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def b64url_decode(text: object, what: str = "value") -> bytes:
    """Base64url without padding (RFC 7515 2); anything else is malformed."""
    if not isinstance(text, str) or "=" in text:
        raise AcmeProblem("malformed", f"The {what} is not base64url text without padding.")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AcmeProblem("malformed", f"The {what} is not valid base64url.") from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: object, what: str) -> int:
    return int.from_bytes(b64url_decode(value, f"JWK member {what}"), "big")


@dataclass(frozen=True)
class Jwk:
    """A parsed public JWK: the key, the one algorithm it may sign with, and its RFC 7638 thumbprint."""

    key: PublicKey
    algorithm: str
    members: dict[str, str]  # the required members only (what the thumbprint hashes)

    @property
    def thumbprint(self) -> str:
        canonical = json.dumps(self.members, sort_keys=True, separators=(",", ":")).encode()
        return b64url_encode(hashlib.sha256(canonical).digest())


def parse_jwk(jwk: object) -> Jwk:
    """A public JWK, or badPublicKey / malformed. Private members (`d`, `p`…) are refused."""
    if not isinstance(jwk, dict):
        raise AcmeProblem("malformed", "The jwk header must be a JSON object.")
    if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise AcmeProblem("badPublicKey", "The JWK holds private key material.")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            return _ec_jwk(jwk)
        if kty == "RSA":
            return _rsa_jwk(jwk)
        if kty == "OKP":
            return _okp_jwk(jwk)
    except AcmeProblem:
        raise
    except (ValueError, TypeError):
        raise AcmeProblem("badPublicKey", "The JWK is not a valid public key.") from None
    raise AcmeProblem("badPublicKey", "Only EC (P-256, P-384), RSA and OKP (Ed25519) keys are accepted.")


def _ec_jwk(jwk: dict) -> Jwk:
    crv = jwk.get("crv")
    if crv not in _CURVES:
        raise AcmeProblem("badPublicKey", "Only the P-256 and P-384 curves are accepted.")
    curve, size, algorithm, _hash = _CURVES[crv]
    x, y = b64url_decode(jwk.get("x"), "JWK member x"), b64url_decode(jwk.get("y"), "JWK member y")
    if len(x) != size or len(y) != size:
        raise AcmeProblem("badPublicKey", "The EC key's coordinates have the wrong length.")
    key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()).public_key()
    return Jwk(key, algorithm, {"crv": crv, "kty": "EC", "x": jwk["x"], "y": jwk["y"]})


def _rsa_jwk(jwk: dict) -> Jwk:
    n, e = _int(jwk.get("n"), "n"), _int(jwk.get("e"), "e")
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
        raise AcmeProblem("badPublicKey", f"RSA keys must have between {MIN_RSA_BITS} and {MAX_RSA_BITS} bits.")
    if e < 3 or e % 2 == 0:
        raise AcmeProblem("badPublicKey", "The RSA public exponent is not acceptable.")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return Jwk(key, "RS256", {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]})


def _okp_jwk(jwk: dict) -> Jwk:
    if jwk.get("crv") != "Ed25519":
        raise AcmeProblem("badPublicKey", "Only the Ed25519 OKP curve is accepted.")
    x = b64url_decode(jwk.get("x"), "JWK member x")
    if len(x) != 32:
        raise AcmeProblem("badPublicKey", "The Ed25519 key has the wrong length.")
    return Jwk(ed25519.Ed25519PublicKey.from_public_bytes(x), "EdDSA", {"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]})


def jwk_of_key(key: PublicKey) -> dict[str, str]:
    """The public JWK of a `cryptography` key (used to compare a certificate's key with a jwk header)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}.get(key.curve.name)
        if crv is None:
            raise AcmeProblem("badPublicKey", "That curve is not accepted.")
        size = _CURVES[crv][1]
        numbers = key.public_numbers()
        return {"crv": crv, "kty": "EC", "x": b64url_encode(numbers.x.to_bytes(size, "big")),
                "y": b64url_encode(numbers.y.to_bytes(size, "big"))}
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": b64url_encode(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")), "kty": "RSA",
                "n": b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))}
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))}
    raise AcmeProblem("badPublicKey", "That key type is not accepted.")


def check_algorithm(alg: object, jwk: Jwk | None = None) -> str:
    """RFC 8555 6.2: refuse `none`, MAC algorithms and anything not listed; the alg must fit the key."""
    if alg not in ACCOUNT_ALGORITHMS:
        raise AcmeProblem("badSignatureAlgorithm", "The JWS algorithm is not accepted for account keys.",
                          algorithms=list(ACCOUNT_ALGORITHMS))
    if jwk is not None and jwk.algorithm != alg:
        raise AcmeProblem("badSignatureAlgorithm", f"A {jwk.members['kty']} key of this kind signs with "
                          f"{jwk.algorithm}, not {alg}.", algorithms=list(ACCOUNT_ALGORITHMS))
    return str(alg)


def verify_signature(jwk: Jwk, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """Whether `signature` (JWS encoding: raw r||s for ECDSA) signs `signing_input` under `jwk`."""
    check_algorithm(alg, jwk)
    try:
        if isinstance(jwk.key, ec.EllipticCurvePublicKey):
            _curve, size, _alg, hash_class = _CURVES[jwk.members["crv"]]
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            jwk.key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_class()))
        elif isinstance(jwk.key, rsa.RSAPublicKey):
            jwk.key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            jwk.key.verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


def verify_hmac(alg: object, key: bytes, signing_input: bytes, signature: bytes) -> bool:
    """An EAB signature (RFC 8555 7.3.4: a MAC algorithm), compared in constant time."""
    digest = HMAC_ALGORITHMS.get(alg)  # type: ignore[arg-type]
    if digest is None:
        raise AcmeProblem("badSignatureAlgorithm", "The external account binding must use HS256, HS384 or HS512.")
    return hmac.compare_digest(hmac.new(key, signing_input, digest).digest(), signature)


@dataclass(frozen=True)
class FlattenedJws:
    """A flattened JSON JWS (RFC 7515 7.2.2), decoded but not yet verified."""

    protected: dict[str, Any]
    payload_raw: bytes  # b"" for POST-as-GET (RFC 8555 6.3)
    signing_input: bytes
    signature: bytes

    @property
    def is_post_as_get(self) -> bool:
        return self.payload_raw == b""

    def payload(self) -> Any:
        if self.is_post_as_get:
            return None
        try:
            return json.loads(self.payload_raw)
        except (ValueError, UnicodeDecodeError):
            raise AcmeProblem("malformed", "The JWS payload is not JSON.") from None


def parse_flattened(body: bytes | str | object) -> FlattenedJws:
    """Decode a flattened JWS; any other serialization, an unprotected header or several signatures: malformed."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise AcmeProblem("malformed", "The request body is not JSON.") from None
    if not isinstance(body, dict):
        raise AcmeProblem("malformed", "The request body must be a flattened JWS JSON object.")
    if "signatures" in body or "header" in body:  # RFC 8555 6.2: one signature, no unprotected header
        raise AcmeProblem("malformed", "Only the flattened JWS serialization with a protected header is accepted.")
    protected_b64, payload_b64, signature_b64 = body.get("protected"), body.get("payload"), body.get("signature")
    if not all(isinstance(part, str) for part in (protected_b64, payload_b64, signature_b64)) or not protected_b64:
        raise AcmeProblem("malformed", "The JWS needs protected, payload and signature members.")
    try:
        protected = json.loads(b64url_decode(protected_b64, "protected header"))
    except (ValueError, UnicodeDecodeError):
        raise AcmeProblem("malformed", "The protected header is not JSON.") from None
    if not isinstance(protected, dict):
        raise AcmeProblem("malformed", "The protected header must be a JSON object.")
    return FlattenedJws(protected, b64url_decode(payload_b64, "payload"),
                        f"{protected_b64}.{payload_b64}".encode(), b64url_decode(signature_b64, "signature"))
