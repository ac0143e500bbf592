"""The audit trail's own keys, which live outside the database.

The hash chain alone proves order and integrity against someone who cannot write the
table; whoever can (a database owner, or a global admin editing a backup) could edit an
event and recompute every hash after it. So each event also carries a MAC of its hash
under a key the database never sees, and checkpoints are signed:

    master    = PBKDF2(PKI_ENCRYPTION_KEY, PKI_ENCRYPTION_SALT)   (the vault's, derived once per process)
    mac_key   = HKDF-Expand(master, "pki-audit/v1/chain-mac", 32)
    event.mac = HMAC-SHA256(mac_key, "pki-audit-mac/1:" || event.hash)      (hex)
    signing   = Ed25519 key from HKDF-Expand(master, "pki-audit/v1/checkpoint-ed25519", 32)

Because an event's hash covers the previous event's hash, one valid MAC vouches for the
whole chain up to that event: rewriting anything before it breaks a link that only the
key holder can MAC again. The checkpoint key is asymmetric so that an off-site copy of a
checkpoint can be checked by anyone holding the public key, and cannot be forged by
anyone without the environment's secrets.

Rotating PKI_ENCRYPTION_KEY changes these keys; `rotate_encryption_key` re-MACs the chain
under the new ones in one transaction and records both checkpoint public keys in its
event, so checkpoints signed before the rotation still verify.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from certificates.vault.at_rest import compute_key_id, derive_master_key

MAC_INFO = b"pki-audit/v1/chain-mac"
SIGNING_INFO = b"pki-audit/v1/checkpoint-ed25519"
MAC_LABEL = b"pki-audit-mac/1:"
MAC_LENGTH = 64  # hex characters


def _expand(master_key: bytes, info: bytes) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=32, info=info).derive(master_key)


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte Ed25519 public key, base64: how checkpoints name the key that signed them."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse what `public_key_text` wrote; ValueError when it is not a 32-byte Ed25519 key."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeEncodeError, TypeError) as error:
        raise ValueError(f"not an Ed25519 public key: {error}") from None


def verify_signature(public_key: str, signature: str, message: bytes) -> bool:
    """Whether `signature` (base64) is `public_key`'s (base64) Ed25519 signature over `message`."""
    try:
        key = public_key_from_text(public_key)
        key.verify(base64.b64decode(signature.encode("ascii"), validate=True), message)
    except (ValueError, InvalidSignature, UnicodeEncodeError, TypeError):
        return False
    return True


@dataclass(frozen=True, eq=False)
class AuditKeys:
    """The MAC key of the chain and the checkpoint signing key. Never pickled, never printed."""

    _mac_key: bytes = field(repr=False)
    _signing_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_master_key(cls, master_key: bytes) -> AuditKeys:
        signing = Ed25519PrivateKey.from_private_bytes(_expand(master_key, SIGNING_INFO))
        return cls(_expand(master_key, MAC_INFO), signing)

    def mac(self, event_hash: str) -> str:
        """The MAC of one event, over its (hex) chain hash."""
        return hmac.digest(self._mac_key, MAC_LABEL + event_hash.encode("ascii"), hashlib.sha256).hex()

    def mac_matches(self, event_hash: str, mac: object) -> bool:
        return isinstance(mac, str) and isinstance(event_hash, str) and hmac.compare_digest(self.mac(event_hash), mac)

    @functools.cached_property
    def public_key(self) -> str:
        return public_key_text(self._signing_key.public_key())

    @property
    def public_key_pem(self) -> str:
        return self._signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._signing_key.sign(message)).decode("ascii")

    def __reduce__(self) -> NoReturn:
        raise TypeError("AuditKeys hold key material and cannot be pickled.")


_KEYS_BY_MASTER_ID: dict[bytes, AuditKeys] = {}


def audit_keys_for(passphrase: str, salt: str) -> AuditKeys:
    """The audit keys of one (PKI_ENCRYPTION_KEY, PKI_ENCRYPTION_SALT); PBKDF2 is the vault's memoised one.

    Kept per process under the master key's public id, never under the passphrase itself.
    """
    master_key = derive_master_key(passphrase, salt)
    key_id = compute_key_id(master_key)
    keys = _KEYS_BY_MASTER_ID.get(key_id)
    if keys is None:
        keys = _KEYS_BY_MASTER_ID.setdefault(key_id, AuditKeys.from_master_key(master_key))
    return keys


def audit_keys() -> AuditKeys:
    """The audit keys of the running configuration."""
    from django.conf import settings

    return audit_keys_for(settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT)
