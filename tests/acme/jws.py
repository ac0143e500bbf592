"""A small ACME client for the tests: real JWS signed with `cryptography` keys, over any transport.

It speaks exactly what RFC 8555 asks (flattened JSON JWS, nonces, kid/jwk), and lets a test bend
any one part of a request (the url, the nonce, the algorithm, the signature) to see it refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from acme_server.services.jose import jwk_of_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict) -> str:
    return b64(hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest())


def algorithm_of(key) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return "EdDSA"


def sign(key, signing_input: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        hash_class = hashes.SHA256 if size == 32 else hashes.SHA384
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hash_class())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(signing_input)


def public_jwk(key) -> dict:
    return jwk_of_key(key.public_key())


def jws(key, protected: dict, payload: object | None, *, signature: bytes | None = None) -> dict:
    """A flattened JWS; payload None means POST-as-GET (empty payload)."""
    protected_b64 = b64(json.dumps(protected).encode())
    payload_b64 = "" if payload is None else b64(json.dumps(payload).encode())
    signing_input = f"{protected_b64}.{payload_b64}".encode()
    return {"protected": protected_b64, "payload": payload_b64,
            "signature": b64(signature if signature is not None else sign(key, signing_input))}


def eab_binding(key_id: str, hmac_key_b64: str, account_jwk: dict, url: str, alg: str = "HS256") -> dict:
    protected_b64 = b64(json.dumps({"alg": alg, "kid": key_id, "url": url}).encode())
    payload_b64 = b64(json.dumps(account_jwk).encode())
    raw_key = base64.urlsafe_b64decode(hmac_key_b64 + "=" * (-len(hmac_key_b64) % 4))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(raw_key, f"{protected_b64}.{payload_b64}".encode(), digest).digest()
    return {"protected": protected_b64, "payload": payload_b64, "signature": b64(signature)}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def problem(self) -> str | None:
        if self.headers.get("content-type", "").startswith("application/problem+json"):
            return self.json()["type"].removeprefix("urn:ietf:params:acme:error:")
        return None


Transport = Callable[[str, str, bytes | None, dict[str, str]], Answer]


@dataclass
class AcmeTestClient:
    transport: Transport
    directory_url: str
    key: object
    kid: str | None = None
    directory: dict = field(default_factory=dict)
    nonce: str | None = None

    def __post_init__(self) -> None:
        self.directory = self.transport("GET", self.directory_url, None, {}).json()

    def fresh_nonce(self) -> str:
        answer = self.transport("HEAD", self.directory["newNonce"], None, {})
        return answer.headers["replay-nonce"]

    def post(self, url: str, payload: object | None, *, key=None, use_jwk: bool | None = None,
             protected: dict | None = None, nonce: str | None = None, signature: bytes | None = None,
             content_type: str = "application/jose+json", raw_body: bytes | None = None) -> Answer:
        key = key or self.key
        if use_jwk is None:
            use_jwk = self.kid is None
        header = {"alg": algorithm_of(key), "nonce": nonce or self.nonce or self.fresh_nonce(), "url": url}
        header.update({"jwk": public_jwk(key)} if use_jwk else {"kid": self.kid})
        header.update(protected or {})
        header = {name: value for name, value in header.items() if value is not None}
        body = raw_body if raw_body is not None else json.dumps(jws(key, header, payload, signature=signature)).encode()
        self.nonce = None
        answer = self.transport("POST", url, body, {"Content-Type": content_type})
        self.nonce = answer.headers.get("replay-nonce")
        return answer

    def new_account(self, eab: tuple[str, str] | None = None, **payload) -> Answer:
        body = {"termsOfServiceAgreed": True, **payload}
        if eab is not None:
            body["externalAccountBinding"] = eab_binding(eab[0], eab[1], public_jwk(self.key),
                                                         self.directory["newAccount"])
        answer = self.post(self.directory["newAccount"], body, use_jwk=True)
        if answer.status in (200, 201):
            self.kid = answer.headers["location"]
        return answer

    def key_authorization(self, token: str) -> str:
        return f"{token}.{thumbprint(public_jwk(self.key))}"
