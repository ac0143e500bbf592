"""The file-vault backend: CA keys sealed by `certificates.vault`, opened here and nowhere else.

A root's key is two-part (the system password in ``.pwd.enc`` and the operator's root
password, see `certificates.vault.custody`): it is unlocked per operation and never cached.
An intermediate's key and a delegated OCSP responder's key open with their own system
password and stay in a bounded in-memory cache for the hot path (an RSA key load costs ~30 ms).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from certificates.crypto.keys import KeyType, PrivateKey, PublicKey, generate_private_key
from certificates.crypto.signing import KeySigner, Signer
from certificates.keystore import artifact_store, root_kdf_params
from certificates.vault.custody import (
    IntermediateKeyCache,
    load_intermediate_key,
    seal_intermediate_key,
    seal_root_key,
    unlock_root_key,
)
from certificates.vault.storage import ArtifactStore

if TYPE_CHECKING:
    from certificates.models import CertificateAuthority

# Unlocked intermediate keys. Never the root key: that one is unlocked per operation.
INTERMEDIATE_KEYS = IntermediateKeyCache(max_entries=64)
# Unlocked keys of delegated OCSP responders (RFC 6960 4.2.2.2), keyed by the responder
# certificate's fingerprint; all dropped whenever a CA's key is.
OCSP_RESPONDER_KEYS = IntermediateKeyCache(max_entries=128)


def _cache_key(ca: CertificateAuthority) -> Hashable:
    # The data directory and fingerprint are part of the key so that a restore or a
    # test with another data directory can never be served a stale key.
    return (str(settings.PKI_DATA_DIR), ca.pk, ca.certificate.fingerprint_sha256, ca.key_directory)


def intermediate_signer(ca: CertificateAuthority) -> Signer:
    """The signer of an intermediate CA whose key is in the vault (cached)."""
    return KeySigner(INTERMEDIATE_KEYS.get_or_load(
        _cache_key(ca), lambda: load_intermediate_key(artifact_store(), ca.key_directory)))


def root_signer(ca: CertificateAuthority, root_password: str) -> Signer:
    """The signer of a root CA, unlocked with the operator's password (raises `UnlockFailed`)."""
    return KeySigner(unlock_root_key(artifact_store(), ca.key_directory, root_password))


def responder_signer(responder_fingerprint_sha256: str, key_directory: str) -> Signer:
    """The signer of a delegated OCSP responder (its key is sealed like an intermediate key)."""
    cache_key = (str(settings.PKI_DATA_DIR), responder_fingerprint_sha256, key_directory)
    return KeySigner(OCSP_RESPONDER_KEYS.get_or_load(
        cache_key, lambda: load_intermediate_key(artifact_store(), key_directory)))


def forget(ca: CertificateAuthority) -> None:
    INTERMEDIATE_KEYS.invalidate(_cache_key(ca))
    OCSP_RESPONDER_KEYS.clear()  # a handful of entries, reloaded on the next OCSP answer


def forget_all() -> None:
    INTERMEDIATE_KEYS.clear()
    OCSP_RESPONDER_KEYS.clear()


@dataclass
class FreshVaultKey:
    """A key generated in memory, to be sealed in the vault once its certificate is built."""

    _key: PrivateKey

    @classmethod
    def generate(cls, key_type: KeyType) -> FreshVaultKey:
        return cls(generate_private_key(key_type))

    @property
    def signer(self) -> Signer:
        return KeySigner(self._key)

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def seal_root(self, store: ArtifactStore, key_directory: str, root_password: str) -> dict:
        """Seal as a root's two-part key; answers the public KDF parameters for the CA row."""
        return seal_root_key(store, key_directory, self._key, root_password, root_kdf_params()).to_dict()

    def seal_intermediate(self, store: ArtifactStore, key_directory: str) -> None:
        seal_intermediate_key(store, key_directory, self._key)
