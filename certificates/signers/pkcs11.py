"""The PKCS#11 backend: CA keys generated on a token (an HSM; SoftHSM2 in the tests) and used there.

A key is created non-extractable and sensitive (CKA_EXTRACTABLE false, CKA_SENSITIVE true), so
its value never leaves the token; the CA row records the token label and the key's CKA_LABEL
and CKA_ID, never the PIN. `cryptography`'s builders sign through the key object's ``sign``
method: :class:`_TokenECKey` and :class:`_TokenRSAKey` are key objects whose ``sign`` asks the
token (ECDSA over the digest, or RSA PKCS#1 v1.5 with the token hashing), so the TBS structure
is built by `cryptography` and only the signature comes from the token.

Who gives the PIN: a root's, the operator per operation (like the root password; the session
logs out when the signer is released); an intermediate's, the file named by
`PKI_PKCS11_PIN_FILE`, read when the server first signs with that token. A root should have a
token of its own: PKCS#11 logs in per application and token, so the root's log-out would end
the intermediates' session on a shared token; creating a CA refuses to mix them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key
from django.conf import settings
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as TokenKeyType
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from certificates.crypto.keys import KeyType, PublicKey
from certificates.crypto.signing import KeySigner, Signer

if TYPE_CHECKING:
    from certificates.models import CertificateAuthority

_CURVES = {KeyType.EC_P256: ("secp256r1", ec.SECP256R1()), KeyType.EC_P384: ("secp384r1", ec.SECP384R1()),
           KeyType.EC_P521: ("secp521r1", ec.SECP521R1())}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_RSA_MECHANISMS = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha384": Mechanism.SHA384_RSA_PKCS,
                   "sha512": Mechanism.SHA512_RSA_PKCS}
TOKEN_KEY_TYPES = tuple(_CURVES) + tuple(_RSA_BITS)
KEY_ID_BYTES = 16


class TokenError(Exception):
    """The token refused or is missing; the message names the token, never the PIN."""


class TokenLoginFailed(TokenError):
    """Wrong PIN, locked PIN or no such token: one answer for all (like a wrong root password)."""


def _library() -> Any:
    try:
        return pkcs11.lib(settings.PKI_PKCS11_MODULE)
    except (pkcs11.PKCS11Error, OSError, RuntimeError) as error:
        raise TokenError(f"The PKCS#11 library {settings.PKI_PKCS11_MODULE} cannot be loaded.") from error


def _token(label: str) -> Any:
    try:
        return _library().get_token(token_label=label)
    except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned):
        raise TokenLoginFailed(f"No single PKCS#11 token is labelled '{label}'.") from None


def _open(label: str, pin: str) -> Any:
    token = _token(label)
    try:
        return token.open(user_pin=pin, rw=True)
    except pkcs11.PKCS11Error:
        raise TokenLoginFailed(f"The PKCS#11 token '{label}' refused the PIN.") from None


@contextmanager
def token_session(label: str, pin: str) -> Iterator[Any]:
    """A logged-in read-write session on the token `label`, logged out and closed at the end."""
    session = _open(label, pin)
    try:
        yield session
    finally:
        session.close()


class _TokenKey:
    """What both token key classes share: the token object, its lock and the public key."""

    def __init__(self, handle: Any, public: PublicKey, lock: threading.Lock | threading.RLock) -> None:
        self._handle, self._public, self._lock = handle, public, lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on a PKCS#11 token>"

    def public_key(self) -> Any:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[union-attr]

    def private_numbers(self) -> Any:
        raise TokenError("A token-held key cannot be exported.")

    def private_bytes(self, *args: object) -> bytes:
        raise TokenError("A token-held key cannot be exported.")

    def __copy__(self) -> _TokenKey:
        return self

    def __deepcopy__(self, memo: dict) -> _TokenKey:
        return self

    def _sign_on_token(self, data: bytes, mechanism: Mechanism) -> bytes:
        with self._lock:  # one operation at a time per session (PKCS#11 sessions are not thread-safe)
            return self._handle.sign(data, mechanism=mechanism)


class _TokenECKey(_TokenKey, ec.EllipticCurvePrivateKey):
    """ECDSA on the token: the digest is computed here (CKM_ECDSA), r||s becomes DER (RFC 5480)."""

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve  # type: ignore[union-attr]

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            raise TokenError("Pre-hashed data is not signed on the token.")
        digest = hashes.Hash(algorithm)
        digest.update(data)
        raw = self._sign_on_token(digest.finalize(), Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def exchange(self, *args: object) -> bytes:
        raise TokenError("A CA key only signs.")


class _TokenRSAKey(_TokenKey, rsa.RSAPrivateKey):
    """RSA PKCS#1 v1.5 on the token (CKM_SHA*_RSA_PKCS: the token hashes and pads)."""

    def sign(self, data: bytes, pad: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        mechanism = _RSA_MECHANISMS.get(getattr(algorithm, "name", ""))
        if not isinstance(pad, padding.PKCS1v15) or mechanism is None:
            raise TokenError("The token signs RSA PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512 only.")
        return self._sign_on_token(data, mechanism)

    def decrypt(self, *args: object) -> bytes:
        raise TokenError("A CA key only signs.")


def _public_key_of(public: Any) -> PublicKey:
    if public.key_type == TokenKeyType.EC:
        return load_der_public_key(encode_ec_public_key(public))  # type: ignore[return-value]
    return rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                int.from_bytes(public[Attribute.MODULUS], "big")).public_key()


def _key_object(session: Any, key_id: str, lock: threading.Lock | threading.RLock) -> _TokenKey:
    identifier = bytes.fromhex(key_id)
    try:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=identifier)
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=identifier)
    except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
        raise TokenError("The CA's key is not (or not once) on its PKCS#11 token.") from None
    key_class = _TokenECKey if private.key_type == TokenKeyType.EC else _TokenRSAKey
    return key_class(private, _public_key_of(public), lock)


#: What a token key is made with: it can sign and nothing else, and it never leaves the token.
PRIVATE_TEMPLATE = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
                    Attribute.UNWRAP: False, Attribute.DERIVE: False}
PUBLIC_TEMPLATE = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}


@dataclass(frozen=True)
class TokenKeyRef:
    """Where a CA's key is: what the CA row stores (no secret)."""

    token_label: str
    key_label: str
    key_id: str


def generate_key(session: Any, token_label: str, key_type: KeyType, key_label: str) -> TokenKeyRef:
    """A new key pair on the token, non-extractable and sensitive; answers where it is."""
    identifier = os.urandom(KEY_ID_BYTES)
    common = {"store": True, "label": key_label, "id": identifier,
              "public_template": PUBLIC_TEMPLATE, "private_template": PRIVATE_TEMPLATE}
    if key_type in _CURVES:
        parameters = session.create_domain_parameters(
            TokenKeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[key_type][0])}, local=True)
        parameters.generate_keypair(**common)
    elif key_type in _RSA_BITS:
        session.generate_keypair(TokenKeyType.RSA, _RSA_BITS[key_type], **common)
    else:
        raise TokenError(f"A {key_type.value} key cannot be made on a PKCS#11 token here: use "
                         f"{', '.join(kind.value for kind in TOKEN_KEY_TYPES)}.")
    return TokenKeyRef(token_label=token_label, key_label=key_label, key_id=identifier.hex())


def destroy_key(session: Any, key_id: str) -> None:
    """Remove a key pair this process just made and did not use (its CA was not recorded)."""
    identifier = bytes.fromhex(key_id)
    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for found in session.get_objects({Attribute.CLASS: object_class, Attribute.ID: identifier}):
            found.destroy()


def signer_in_session(session: Any, key_id: str, lock: threading.Lock | threading.RLock | None = None) -> Signer:
    """The signer of the key `key_id` in an open session (valid while the session is)."""
    return KeySigner(_key_object(session, key_id, lock or threading.Lock()))


_root_locks: dict[str, threading.Lock] = {}


@contextmanager
def operator_session(label: str, pin: str) -> Iterator[Any]:
    """A session on a root's token, logged in with the operator's PIN for this block only.

    One at a time per token in this process: a second log-in would be refused as already
    done, and the first block's log-out would end the second's session.
    """
    lock = _root_locks.setdefault(label, threading.Lock())
    with lock, token_session(label, pin) as session:
        yield session


@contextmanager
def root_signer(ca: CertificateAuthority, pin: str) -> Iterator[Signer]:
    """A root's token signer, logged in with the operator's PIN for this block only."""
    with operator_session(ca.token_label, pin) as session:
        yield signer_in_session(session, ca.key_id)


# --- Intermediates: one long-lived session per token, logged in with the PIN file ---------------

_sessions: dict[tuple[str, str], tuple[Any, threading.RLock]] = {}
_signers: dict[tuple[str, str, str], Signer] = {}
_sessions_lock = threading.Lock()


def server_pin() -> str:
    path = settings.PKI_PKCS11_PIN_FILE
    if not path:
        raise TokenError("PKI_PKCS11_PIN_FILE is not set: the server cannot log in to the token of this CA.")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        raise TokenError("PKI_PKCS11_PIN_FILE cannot be read.") from None


def _server_session_locked(label: str) -> tuple[Any, threading.RLock]:
    """The session and its lock: the keys of one session sign one operation at a time (re-entrant,
    so a thread that holds it, e.g. creating a CA, can sign with another key of the session)."""
    session_key = (settings.PKI_PKCS11_MODULE, label)
    found = _sessions.get(session_key)
    if found is None:
        found = _sessions[session_key] = (_open(label, server_pin()), threading.RLock())
    return found


@contextmanager
def server_session(label: str) -> Iterator[tuple[Any, threading.RLock]]:
    """The server's long-lived session on the intermediates' token `label` and its lock, held for
    the block (the session stays open after it)."""
    with _sessions_lock:
        session, lock = _server_session_locked(label)
    with lock:
        yield session, lock


def intermediate_signer(ca: CertificateAuthority) -> Signer:
    """The cached signer of a token-held intermediate (its session stays open for the hot path)."""
    memo = (settings.PKI_PKCS11_MODULE, ca.token_label, ca.key_id)
    found = _signers.get(memo)
    if found is not None:
        return found
    with _sessions_lock:
        session, lock = _server_session_locked(ca.token_label)
        found = _signers[memo] = KeySigner(_key_object(session, ca.key_id, lock))
    return found


def forget_all() -> None:
    """Close the intermediates' sessions (restore, tests, a token re-configured)."""
    with _sessions_lock:
        _signers.clear()
        sessions = [session for session, _lock in _sessions.values()]
        _sessions.clear()
    for session in sessions:
        try:
            session.close()
        except pkcs11.PKCS11Error:
            continue


def reinitialize() -> None:
    """C_Finalize + C_Initialize: the module re-reads its configuration (SOFTHSM2_CONF in the tests)."""
    forget_all()
    if settings.PKI_PKCS11_MODULE in pkcs11._loaded:
        _library().reinitialize()
