"""Encryption at rest: the master key and the outer AES-256-GCM layer of every artifact.

Outer blob layout (version 1, all integers big-endian)::

    offset  size  field
    0       4     magic  b"PKIV"
    4       1     format version (1)
    5       8     key id = HMAC-SHA256(master_key, b"key-id")[:8]
    13      12    random nonce
    25      n+16  AES-256-GCM ciphertext || tag
    AAD = the 25-byte header || UTF-8 canonical relative path

Why each piece is there:

* the key id lets backup validation and rotation tell *which* key sealed a blob
  from its header alone, without a trial decryption, and report a wrong key as
  such instead of as "tampered";
* the header is authenticated (it is in the AAD), so nobody can relabel a blob;
* the relative path is authenticated, so a ciphertext copied or moved to another
  path (e.g. one CA's key file dropped into another CA's directory) fails;
* the AES key is not the master key itself but a sub-key derived from it with
  HKDF-Expand, so the key id (an HMAC under the master key) and the cipher never
  use the same key for two purposes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
import threading
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from .errors import ArtifactCorrupt, ArtifactTampered, InvalidEncryptionSettings, WrongEncryptionKey
from .paths import normalize_relpath

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "KEY_ID_SIZE",
    "MAGIC",
    "MIN_PASSPHRASE_LENGTH",
    "MIN_SALT_BYTES",
    "PBKDF2_ITERATIONS",
    "ArtifactCipher",
    "ArtifactHeader",
    "MasterKeyCacheInfo",
    "clear_master_key_cache",
    "compute_key_id",
    "derive_master_key",
    "master_key_cache_info",
    "parse_header",
]

MAGIC = b"PKIV"
FORMAT_VERSION = 1
KEY_ID_SIZE = 8
NONCE_SIZE = 12
TAG_SIZE = 16
_HEADER = struct.Struct(f">4sB{KEY_ID_SIZE}s{NONCE_SIZE}s")
HEADER_SIZE = _HEADER.size  # 25

MASTER_KEY_SIZE = 32
PBKDF2_ITERATIONS = 600_000  # OWASP 2023 guidance for PBKDF2-HMAC-SHA256
MIN_PASSPHRASE_LENGTH = 32
MIN_SALT_BYTES = 16

_KEY_ID_LABEL = b"key-id"
_AEAD_SUBKEY_INFO = b"pki-vault/v1/artifact-aes-256-gcm"


# --------------------------------------------------------------------------- master key


@dataclass(frozen=True, slots=True)
class MasterKeyCacheInfo:
    """Counters of the process-level master-key cache (what tests and benchmarks look at)."""

    derivations: int  # PBKDF2 runs since the process started
    hits: int  # calls answered from the cache
    entries: int  # (passphrase, salt) pairs currently cached


class _MasterKeyCache:
    """Process-level memo of PBKDF2 results.

    PBKDF2 with 600,000 iterations costs ~75 ms; paying it per file or per request
    would make the vault unusable, so it runs once per process per (passphrase,
    salt). Entries are keyed by an HMAC-SHA256 of the inputs under a random
    per-process key: the passphrase is never a dict key, and even the key is not
    an unsalted hash that a memory dump could turn into a fast passphrase oracle.
    The lock also makes concurrent first calls derive once, not once per thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[bytes, bytes] = {}
        self._lookup_key = secrets.token_bytes(32)
        self._derivations = 0
        self._hits = 0

    def _fingerprint(self, passphrase: bytes, salt: bytes) -> bytes:
        message = struct.pack(">I", len(passphrase)) + passphrase + salt
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()

    def get_or_derive(self, passphrase: bytes, salt: bytes) -> bytes:
        fingerprint = self._fingerprint(passphrase, salt)
        with self._lock:
            cached = self._entries.get(fingerprint)
            if cached is not None:
                self._hits += 1
                return cached
            kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=MASTER_KEY_SIZE, salt=salt, iterations=PBKDF2_ITERATIONS)
            key = kdf.derive(passphrase)
            self._derivations += 1
            self._entries[fingerprint] = key
            return key

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def info(self) -> MasterKeyCacheInfo:
        with self._lock:
            return MasterKeyCacheInfo(self._derivations, self._hits, len(self._entries))


_MASTER_KEYS = _MasterKeyCache()


def _text_to_bytes(value: str | bytes) -> bytes:
    """NFKC-normalise text before encoding, so the same passphrase typed on two OSes is the same key."""
    if isinstance(value, bytes):
        return value
    return unicodedata.normalize("NFKC", value).encode("utf-8")


def derive_master_key(passphrase: str, salt: str | bytes) -> bytes:
    """Derive the 32-byte master key from ``PKI_ENCRYPTION_KEY`` and ``PKI_ENCRYPTION_SALT``.

    PBKDF2-HMAC-SHA256, 600,000 iterations, memoised per process (see
    :class:`_MasterKeyCache`). The minimum strengths are enforced here too, not
    only in settings, because this is the function whose output they protect.
    """
    if not isinstance(passphrase, str) or len(unicodedata.normalize("NFKC", passphrase)) < MIN_PASSPHRASE_LENGTH:
        raise InvalidEncryptionSettings(
            f"PKI_ENCRYPTION_KEY must be a string of at least {MIN_PASSPHRASE_LENGTH} characters."
        )
    if not isinstance(salt, str | bytes):
        raise InvalidEncryptionSettings("PKI_ENCRYPTION_SALT must be a string or bytes.")
    salt_bytes = _text_to_bytes(salt)
    if len(salt_bytes) < MIN_SALT_BYTES:
        raise InvalidEncryptionSettings(f"PKI_ENCRYPTION_SALT must be at least {MIN_SALT_BYTES} bytes.")
    return _MASTER_KEYS.get_or_derive(_text_to_bytes(passphrase), salt_bytes)


def master_key_cache_info() -> MasterKeyCacheInfo:
    """How many PBKDF2 derivations and cache hits this process has seen."""
    return _MASTER_KEYS.info()


def clear_master_key_cache() -> None:
    """Forget every memoised master key (tests; after a key rotation). Counters keep counting."""
    _MASTER_KEYS.clear()


def compute_key_id(master_key: bytes) -> bytes:
    """The public 8-byte identifier of a master key: HMAC-SHA256(master_key, b"key-id")[:8]."""
    return hmac.new(master_key, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_SIZE]


# --------------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class ArtifactHeader:
    """The parsed, *unauthenticated* header of an outer blob (authenticated only once decrypted)."""

    version: int
    key_id: bytes
    nonce: bytes

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.key_id, self.nonce)


def parse_header(blob: bytes, relpath: str | None = None) -> ArtifactHeader:
    """Parse an outer blob's header; raise ``ArtifactCorrupt`` if it is not a vault artifact.

    Cheap and key-free: rotation and backup validation use it to read the key id.
    """
    if len(blob) < HEADER_SIZE + TAG_SIZE:
        raise ArtifactCorrupt("truncated", relpath)
    magic, version, key_id, nonce = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ArtifactCorrupt("not a vault artifact (bad magic)", relpath)
    if version != FORMAT_VERSION:
        raise ArtifactCorrupt(f"unsupported format version {version}", relpath)
    return ArtifactHeader(version=version, key_id=key_id, nonce=nonce)


# --------------------------------------------------------------------------- cipher


class ArtifactCipher:
    """Seals and opens artifacts under one master key (AES-256-GCM, path-bound).

    Holds only the derived AEAD object and the public key id; its ``repr`` shows
    the key id and nothing else, and it refuses to be pickled so the key cannot
    end up in a cache backend or a task queue by accident.
    """

    __slots__ = ("_aead", "_key_id")

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes | bytearray) or len(master_key) != MASTER_KEY_SIZE:
            raise InvalidEncryptionSettings(f"The master key must be exactly {MASTER_KEY_SIZE} bytes.")
        master_key = bytes(master_key)
        self._key_id = compute_key_id(master_key)
        subkey = HKDFExpand(algorithm=hashes.SHA256(), length=32, info=_AEAD_SUBKEY_INFO).derive(master_key)
        self._aead = AESGCM(subkey)

    @classmethod
    def from_settings_values(cls, passphrase: str, salt: str | bytes) -> ArtifactCipher:
        """Build a cipher from ``PKI_ENCRYPTION_KEY``/``PKI_ENCRYPTION_SALT`` (PBKDF2 memoised)."""
        return cls(derive_master_key(passphrase, salt))

    @property
    def key_id(self) -> bytes:
        """The public 8-byte identifier written into every blob this cipher seals."""
        return self._key_id

    def encrypt(self, plaintext: bytes, relpath: str) -> bytes:
        """Seal ``plaintext`` for the file at ``relpath`` (a fresh random nonce per call)."""
        canonical = normalize_relpath(relpath)
        header = ArtifactHeader(FORMAT_VERSION, self._key_id, os.urandom(NONCE_SIZE)).pack()
        return header + self._aead.encrypt(header[-NONCE_SIZE:], bytes(plaintext), _aad(header, canonical))

    def decrypt(self, blob: bytes, relpath: str) -> bytes:
        """Open a blob read from ``relpath``.

        Raises ``ArtifactCorrupt`` (not an artifact), ``WrongEncryptionKey`` (sealed
        under another master key, detected from the header) or ``ArtifactTampered``
        (modified, or read from another path than it was sealed for).
        """
        canonical = normalize_relpath(relpath)
        header = parse_header(blob, canonical)
        if not hmac.compare_digest(header.key_id, self._key_id):
            raise WrongEncryptionKey(header.key_id, self._key_id, canonical)
        raw_header = bytes(blob[:HEADER_SIZE])
        try:
            return self._aead.decrypt(header.nonce, bytes(blob[HEADER_SIZE:]), _aad(raw_header, canonical))
        except InvalidTag:
            _raise_tampered(canonical)

    def __repr__(self) -> str:
        return f"ArtifactCipher(key_id={self._key_id.hex()!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("ArtifactCipher holds key material and cannot be pickled.")


def _aad(header: bytes, canonical_relpath: str) -> bytes:
    # The header has a fixed size, so header || path is unambiguous.
    return header + canonical_relpath.encode("utf-8")


def _raise_tampered(relpath: str) -> NoReturn:
    # ``from None``: the InvalidTag context adds nothing and keeps tracebacks short.
    raise ArtifactTampered(relpath) from None
