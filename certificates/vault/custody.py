"""CA key custody: the inner envelope, the root CA's two-part key, intermediate keys.

A CA's artifacts live in a directory the caller chooses (e.g. ``cas/<uuid>``)::

    <ca_dir>/.pwd.enc      outer(32 random bytes)              the CA's system password
    <ca_dir>/key.pem.enc   outer(inner(PKCS#8 DER private key))

The outer layer is the store's (master key from PKI_ENCRYPTION_KEY). The inner
layer is AES-256-GCM under a per-CA key-encryption key (KEK), so the private key
survives a rotation of PKI_ENCRYPTION_KEY untouched and, for a root CA, is not
recoverable from the disk and the environment alone.

Inner envelope layout (version 1, integers big-endian)::

    offset  size  field
    0       4     magic b"PKIK"
    4       1     version (1)
    5       1     kind: 1 = root (two-part KEK), 2 = intermediate
    -- root only (kind 1) --
    6       1     log2(scrypt n)
    7       4     scrypt r
    11      4     scrypt p
    15      16    per-CA scrypt salt
    -- all kinds --
    ..      12    random nonce
    ..      n+16  AES-256-GCM(KEK, PKCS#8 DER) || tag
    AAD = header (magic .. nonce) || purpose label || canonical relpath of key.pem.enc

KEKs:

* root: ``HMAC-SHA256(key=system password, msg=scrypt(NFKC(root password), salt, n, r, p))``.
  The system password alone (disk + environment) is useless without the operator's
  password, and the operator's password alone is useless without ``.pwd.enc``; the
  scrypt step makes every guess of the operator password cost ~128 MiB and ~0.25 s.
  The scrypt parameters and salt are public: they are in the header (unlocking
  needs only the password) and returned as :class:`RootKeyParams` for the database.
* intermediate: ``HKDF-SHA256(system password, info="pki-vault/v1/intermediate-kek")``,
  so issuance needs no operator; protection at rest is the outer layer's.

Python cannot wipe memory reliably (``bytes`` are immutable and may be copied), so
"drop references" is all the vault can promise: the root key is never cached and
the context manager releases its reference on exit.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import struct
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactTampered,
    InvalidKdfParameters,
    UnlockFailed,
    WeakPassword,
)
from .paths import PASSWORD_FILENAME, join_relpath, validate_artifact_relpath
from .storage import ArtifactStore

__all__ = [
    "KEY_FILENAME",
    "MIN_ROOT_PASSWORD_LENGTH",
    "MIN_SCRYPT_N",
    "CacheInfo",
    "IntermediateKeyCache",
    "RootKeyParams",
    "ScryptParams",
    "check_root_password",
    "delete_ca_key",
    "load_intermediate_key",
    "load_secret",
    "seal_intermediate_key",
    "seal_root_key",
    "store_secret",
    "unlock_root_key",
    "unlocked_root_key",
]

PrivateKey = CertificateIssuerPrivateKeyTypes
_ISSUER_KEY_TYPES: tuple[type, ...] = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)

KEY_FILENAME = "key.pem.enc"
SYSTEM_PASSWORD_BYTES = 32
SCRYPT_SALT_BYTES = 16
KEK_BYTES = 32

MIN_ROOT_PASSWORD_LENGTH = 12
MAX_ROOT_PASSWORD_LENGTH = 1024  # bounds the work an unauthenticated caller can ask of scrypt
MIN_SCRYPT_N = 2**10
# Upper bounds: the parameters are read from a header *before* it is authenticated,
# so a planted header must not be able to ask for gigabytes of memory.
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_R = 32
MAX_SCRYPT_P = 16
MAX_SCRYPT_MEMORY = 1 << 30

ENVELOPE_MAGIC = b"PKIK"
ENVELOPE_VERSION = 1
KIND_ROOT = 1
KIND_INTERMEDIATE = 2
NONCE_SIZE = 12
_PREFIX = struct.Struct(">4sBB")
_ROOT_PARAMS = struct.Struct(f">BII{SCRYPT_SALT_BYTES}s")
_LABELS = {KIND_ROOT: b"pki-vault/v1/ca-key/root", KIND_INTERMEDIATE: b"pki-vault/v1/ca-key/intermediate"}
_INTERMEDIATE_KEK_INFO = b"pki-vault/v1/intermediate-kek"
_ENVELOPE_LAYER = "CA key envelope"


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost parameters. Defaults are OWASP's (n=2**17, r=8, p=1: ~128 MiB per guess)."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        for name in ("n", "r", "p"):
            if type(getattr(self, name)) is not int:
                raise InvalidKdfParameters(f"scrypt {name} must be an integer.")
        if self.n < MIN_SCRYPT_N or self.n > MAX_SCRYPT_N or self.n & (self.n - 1):
            raise InvalidKdfParameters(f"scrypt n must be a power of two between 2**10 and 2**20 (got {self.n}).")
        if not 1 <= self.r <= MAX_SCRYPT_R or not 1 <= self.p <= MAX_SCRYPT_P:
            raise InvalidKdfParameters(f"scrypt r must be 1..{MAX_SCRYPT_R} and p 1..{MAX_SCRYPT_P}.")
        if self.memory_bytes > MAX_SCRYPT_MEMORY:
            raise InvalidKdfParameters("scrypt parameters would need more than 1 GiB of memory.")

    @property
    def memory_bytes(self) -> int:
        """Approximate memory one derivation needs (128 * n * r bytes)."""
        return 128 * self.n * self.r

    @property
    def log2_n(self) -> int:
        return self.n.bit_length() - 1


@dataclass(frozen=True, slots=True)
class RootKeyParams:
    """The public, per-CA parameters of a root key's password stretching (store them in the database).

    Not secret: they are also in the envelope header. Keeping a copy in the
    database documents the cost of the KDF each root was sealed with and lets a
    future migration find roots sealed with outdated parameters.
    """

    scrypt: ScryptParams
    salt: bytes = field(repr=False)
    envelope_version: int = ENVELOPE_VERSION

    def __post_init__(self) -> None:
        if len(self.salt) != SCRYPT_SALT_BYTES:
            raise InvalidKdfParameters(f"The scrypt salt must be {SCRYPT_SALT_BYTES} bytes.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``salt`` in hex)."""
        return {
            "kdf": "scrypt",
            "n": self.scrypt.n,
            "r": self.scrypt.r,
            "p": self.scrypt.p,
            "salt": self.salt.hex(),
            "envelope_version": self.envelope_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RootKeyParams:
        if data.get("kdf") != "scrypt":
            raise InvalidKdfParameters("Unknown key derivation function in root key parameters.")
        try:
            salt = bytes.fromhex(data["salt"])
            scrypt = ScryptParams(n=data["n"], r=data["r"], p=data["p"])
            version = int(data.get("envelope_version", ENVELOPE_VERSION))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidKdfParameters("Malformed root key parameters.") from exc
        return cls(scrypt=scrypt, salt=salt, envelope_version=version)


# --------------------------------------------------------------------------- passwords and KEKs


def check_root_password(root_password: str) -> bytes:
    """Apply the root password rule and return the UTF-8 bytes of its NFKC form.

    NFKC first, so the same password typed on a keyboard that composes characters
    differently still unlocks. The error names the rule, never the password.
    """
    if not isinstance(root_password, str):
        raise WeakPassword("The root CA password must be text.")
    normalized = unicodedata.normalize("NFKC", root_password)
    if len(normalized) < MIN_ROOT_PASSWORD_LENGTH:
        raise WeakPassword(f"The root CA password must be at least {MIN_ROOT_PASSWORD_LENGTH} characters long.")
    if len(normalized) > MAX_ROOT_PASSWORD_LENGTH:
        raise WeakPassword(f"The root CA password must be at most {MAX_ROOT_PASSWORD_LENGTH} characters long.")
    return normalized.encode("utf-8")


def _root_kek(system_password: bytes, password: bytes, params: RootKeyParams) -> bytes:
    s = params.scrypt
    stretched = Scrypt(salt=params.salt, length=KEK_BYTES, n=s.n, r=s.r, p=s.p).derive(password)
    return hmac.new(system_password, stretched, "sha256").digest()


def _intermediate_kek(system_password: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEK_BYTES, salt=None, info=_INTERMEDIATE_KEK_INFO).derive(
        system_password
    )


# --------------------------------------------------------------------------- inner envelope


@dataclass(frozen=True, slots=True)
class _Envelope:
    kind: int
    root_params: RootKeyParams | None
    nonce: bytes
    header: bytes  # the raw bytes magic .. nonce, authenticated as AAD
    ciphertext: bytes


def _envelope_header(kind: int, root_params: RootKeyParams | None, nonce: bytes) -> bytes:
    header = _PREFIX.pack(ENVELOPE_MAGIC, ENVELOPE_VERSION, kind)
    if kind == KIND_ROOT:
        assert root_params is not None
        s = root_params.scrypt
        header += _ROOT_PARAMS.pack(s.log2_n, s.r, s.p, root_params.salt)
    return header + nonce


def _envelope_aad(header: bytes, kind: int, key_relpath: str) -> bytes:
    # header and label have fixed lengths for a given kind, so the concatenation is unambiguous
    return header + _LABELS[kind] + key_relpath.encode("utf-8")


def _seal_envelope(kek: bytes, kind: int, root_params: RootKeyParams | None, key_der: bytes, key_relpath: str) -> bytes:
    header = _envelope_header(kind, root_params, os.urandom(NONCE_SIZE))
    return header + AESGCM(kek).encrypt(header[-NONCE_SIZE:], key_der, _envelope_aad(header, kind, key_relpath))


def _parse_envelope(blob: bytes, key_relpath: str) -> _Envelope:
    if len(blob) < _PREFIX.size:
        raise ArtifactCorrupt("truncated CA key envelope", key_relpath)
    magic, version, kind = _PREFIX.unpack_from(blob)
    if magic != ENVELOPE_MAGIC:
        raise ArtifactCorrupt("not a CA key envelope", key_relpath)
    if version != ENVELOPE_VERSION:
        raise ArtifactCorrupt(f"unsupported CA key envelope version {version}", key_relpath)
    offset = _PREFIX.size
    root_params = None
    if kind == KIND_ROOT:
        if len(blob) < offset + _ROOT_PARAMS.size:
            raise ArtifactCorrupt("truncated CA key envelope", key_relpath)
        log2_n, r, p, salt = _ROOT_PARAMS.unpack_from(blob, offset)
        if log2_n > 63:
            raise ArtifactCorrupt("invalid scrypt parameters in CA key envelope", key_relpath)
        try:
            root_params = RootKeyParams(ScryptParams(n=1 << log2_n, r=r, p=p), salt=salt)
        except InvalidKdfParameters:
            raise ArtifactCorrupt("invalid scrypt parameters in CA key envelope", key_relpath) from None
        offset += _ROOT_PARAMS.size
    elif kind != KIND_INTERMEDIATE:
        raise ArtifactCorrupt(f"unknown CA key kind {kind}", key_relpath)
    end = offset + NONCE_SIZE
    if len(blob) < end + 16:
        raise ArtifactCorrupt("truncated CA key envelope", key_relpath)
    return _Envelope(kind, root_params, blob[offset:end], blob[:end], blob[end:])


def _open_envelope(envelope: _Envelope, kek: bytes, key_relpath: str) -> bytes:
    try:
        aad = _envelope_aad(envelope.header, envelope.kind, key_relpath)
        return AESGCM(kek).decrypt(envelope.nonce, envelope.ciphertext, aad)
    except InvalidTag:
        _raise_envelope_tampered(key_relpath)


def _raise_envelope_tampered(key_relpath: str) -> NoReturn:
    raise ArtifactTampered(key_relpath, layer=_ENVELOPE_LAYER) from None


# --------------------------------------------------------------------------- key (de)serialisation


def _serialize_private_key(private_key: PrivateKey) -> bytes:
    if not isinstance(private_key, _ISSUER_KEY_TYPES):
        raise TypeError("Only RSA, DSA, EC, Ed25519 and Ed448 private keys can be sealed.")
    return private_key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _load_private_key(der: bytes, key_relpath: str) -> PrivateKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise ArtifactCorrupt("the sealed private key cannot be parsed", key_relpath) from None
    if not isinstance(key, _ISSUER_KEY_TYPES):
        raise ArtifactCorrupt("the sealed key is not a signing key", key_relpath)
    return key


# --------------------------------------------------------------------------- CA artifacts


@dataclass(frozen=True, slots=True)
class _CAPaths:
    password: str
    key: str


def _ca_paths(ca_dir: str) -> _CAPaths:
    return _CAPaths(password=join_relpath(ca_dir, PASSWORD_FILENAME), key=join_relpath(ca_dir, KEY_FILENAME))


def _write_ca_artifacts(store: ArtifactStore, paths: _CAPaths, system_password: bytes, envelope: bytes) -> None:
    """Write ``.pwd.enc`` then ``key.pem.enc``, never overwriting; undo our own half-done work."""
    for relpath in (paths.password, paths.key):
        if store.exists(relpath):
            raise ArtifactExists(relpath)
    store.write(paths.password, system_password, overwrite=False)
    try:
        store.write(paths.key, envelope, overwrite=False)
    except BaseException:
        store.delete(paths.password, missing_ok=True)  # ours: the exclusive write above succeeded
        raise


def seal_root_key(
    store: ArtifactStore,
    ca_dir: str,
    private_key: PrivateKey,
    root_password: str,
    params: ScryptParams | None = None,
) -> RootKeyParams:
    """Seal a root CA key under the two-part KEK; write ``.pwd.enc`` and ``key.pem.enc``.

    Refuses to overwrite an existing key or password (``ArtifactExists``) and a
    password that breaks the rule (``WeakPassword``). Returns the public KDF
    parameters for the database.
    """
    password = check_root_password(root_password)
    paths = _ca_paths(ca_dir)
    key_params = RootKeyParams(scrypt=params or ScryptParams(), salt=os.urandom(SCRYPT_SALT_BYTES))
    system_password = os.urandom(SYSTEM_PASSWORD_BYTES)
    kek = _root_kek(system_password, password, key_params)
    envelope = _seal_envelope(kek, KIND_ROOT, key_params, _serialize_private_key(private_key), paths.key)
    _write_ca_artifacts(store, paths, system_password, envelope)
    return key_params


def _unlock_root_key(store: ArtifactStore, ca_dir: str, root_password: str) -> PrivateKey:
    password = check_root_password(root_password)
    paths = _ca_paths(ca_dir)
    envelope = _parse_envelope(store.read(paths.key), paths.key)
    if envelope.kind != KIND_ROOT or envelope.root_params is None:
        raise ArtifactCorrupt("not a root CA key", paths.key)
    kek = _root_kek(store.read(paths.password), password, envelope.root_params)
    return _load_private_key(_open_envelope(envelope, kek, paths.key), paths.key)


def unlock_root_key(store: ArtifactStore, ca_dir: str, root_password: str) -> PrivateKey:
    """Unlock a root CA key with the operator's password. Never cached.

    Every failure (wrong or malformed password, missing or tampered file, wrong
    master key) raises the same ``UnlockFailed``, with no cause attached and
    nothing logged, so the answer cannot be used to probe why.
    """
    key: PrivateKey | None = None
    with contextlib.suppress(Exception):
        key = _unlock_root_key(store, ca_dir, root_password)
    if key is None:
        raise UnlockFailed  # raised outside the handler: no __context__ to inspect
    return key


@contextlib.contextmanager
def unlocked_root_key(store: ArtifactStore, ca_dir: str, root_password: str) -> Iterator[PrivateKey]:
    """``with unlocked_root_key(store, ca_dir, pwd) as key:`` - the vault's reference ends with the block."""
    key: PrivateKey | None = unlock_root_key(store, ca_dir, root_password)
    try:
        yield key
    finally:
        del key


def seal_intermediate_key(store: ArtifactStore, ca_dir: str, private_key: PrivateKey) -> None:
    """Seal an intermediate CA key under a KEK derived from its own system password (no operator needed)."""
    paths = _ca_paths(ca_dir)
    system_password = os.urandom(SYSTEM_PASSWORD_BYTES)
    envelope = _seal_envelope(
        _intermediate_kek(system_password), KIND_INTERMEDIATE, None, _serialize_private_key(private_key), paths.key
    )
    _write_ca_artifacts(store, paths, system_password, envelope)


def load_intermediate_key(store: ArtifactStore, ca_dir: str) -> PrivateKey:
    """Load an intermediate CA key (~ms for EC, ~30 ms for RSA: use :class:`IntermediateKeyCache`).

    Errors are the specific ``VaultError`` (not found, wrong master key, tampered,
    corrupt): intermediate keys have no operator secret whose guessing we must hide.
    """
    paths = _ca_paths(ca_dir)
    envelope = _parse_envelope(store.read(paths.key), paths.key)
    if envelope.kind != KIND_INTERMEDIATE:
        raise ArtifactCorrupt("this is a root CA key; it needs the root password", paths.key)
    kek = _intermediate_kek(store.read(paths.password))
    return _load_private_key(_open_envelope(envelope, kek, paths.key), paths.key)


def delete_ca_key(store: ArtifactStore, ca_dir: str) -> None:
    """Remove a CA's ``key.pem.enc`` and ``.pwd.enc`` (idempotent).

    For the service layer to undo a CA creation whose database transaction rolled
    back, or to retire a CA's key. The key goes first so an interrupted call never
    leaves a key without the password that proves it was complete. This unlinks;
    it is not secure erasure (file systems and SSDs keep old blocks).
    """
    paths = _ca_paths(ca_dir)
    store.delete(paths.key, missing_ok=True)
    store.delete(paths.password, missing_ok=True)


# --------------------------------------------------------------------------- other secrets


def store_secret(store: ArtifactStore, relpath: str, data: bytes, *, overwrite: bool = False) -> str:
    """Store a small secret (e.g. a PKCS#12 password) encrypted at rest; return its canonical relpath.

    Only the outer layer: these secrets are released to authorised users by the
    service layer anyway. Write-once by default, like the CA artifacts.
    """
    return store.write(validate_artifact_relpath(relpath), data, overwrite=overwrite)


def load_secret(store: ArtifactStore, relpath: str) -> bytes:
    """Read back a secret written by :func:`store_secret`."""
    return store.read(relpath)


# --------------------------------------------------------------------------- intermediate key cache

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    evictions: int
    size: int
    max_entries: int


class IntermediateKeyCache:
    """Bounded, thread-safe LRU of unlocked intermediate keys, keyed by a caller-given CA id.

    Loading an RSA key costs ~30 ms (PKCS#8 parse + key checks), too much for every
    issuance or OCSP response. The caller must ``invalidate`` a CA on revocation,
    renewal or rotation; an optional TTL bounds how long a key stays in memory.

    Concurrency: loads run outside the main lock, one at a time per CA id. A load
    that overlaps an ``invalidate``/``clear`` is returned to its caller but not
    cached, so an invalidation can never be undone by a load that started before it.
    """

    def __init__(
        self,
        max_entries: int = 64,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1.")
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive or None.")
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._epoch = 0
        self._hits = self._misses = self._evictions = 0

    def get_or_load(self, ca_id: Hashable, loader: Callable[[], K]) -> K:
        """Return the cached key for ``ca_id`` or call ``loader()`` once and cache its result."""
        with self._lock:
            found, key = self._lookup(ca_id)
            if found:
                return key
            load_lock = self._loading.setdefault(ca_id, threading.Lock())
        with load_lock:
            with self._lock:
                found, key = self._lookup(ca_id)
                if found:
                    return key
                self._misses += 1
                epoch = self._epoch
            try:
                loaded = loader()
                with self._lock:
                    if epoch == self._epoch:
                        self._insert(ca_id, loaded)
            finally:
                with self._lock:
                    if self._loading.get(ca_id) is load_lock:
                        del self._loading[ca_id]
            return loaded

    def invalidate(self, ca_id: Hashable) -> bool:
        """Forget ``ca_id``'s key; True if it was cached."""
        with self._lock:
            self._epoch += 1
            return self._entries.pop(ca_id, None) is not None

    def clear(self) -> None:
        """Forget every key (e.g. after an encryption-key rotation)."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, self._evictions, len(self._entries), self._max_entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, ca_id: object) -> bool:
        with self._lock:
            entry = self._entries.get(ca_id)  # type: ignore[call-overload]
            return entry is not None and not self._expired(entry[1])

    def __repr__(self) -> str:
        info = self.cache_info()
        return f"IntermediateKeyCache(size={info.size}, max_entries={info.max_entries}, ttl_seconds={self._ttl})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("IntermediateKeyCache holds private keys and cannot be pickled.")

    # -- internals, called with self._lock held

    def _expired(self, loaded_at: float) -> bool:
        return self._ttl is not None and self._clock() - loaded_at >= self._ttl

    def _lookup(self, ca_id: Hashable) -> tuple[bool, Any]:
        entry = self._entries.get(ca_id)
        if entry is None:
            return False, None
        if self._expired(entry[1]):
            del self._entries[ca_id]
            return False, None
        self._entries.move_to_end(ca_id)
        self._hits += 1
        return True, entry[0]

    def _insert(self, ca_id: Hashable, key: Any) -> None:
        self._entries[ca_id] = (key, self._clock())
        self._entries.move_to_end(ca_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
            self._evictions += 1
