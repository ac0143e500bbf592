"""The Django side of key custody: vault objects built from settings, and the key cache.

`certificates.vault` is pure (no Django); this module is the one place that reads
the encryption settings and hands the vault what it needs. Services call
`ca_signing_key()` and never open a key file themselves.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from django.conf import settings

from certificates.crypto.builders import PublicationUrls
from certificates.crypto.keys import PrivateKey
from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.custody import (
    IntermediateKeyCache,
    ScryptParams,
    load_intermediate_key,
)
from certificates.vault.storage import ArtifactStore

if TYPE_CHECKING:
    from certificates.models import CertificateAuthority

# Unlocked intermediate keys, kept for the hot path (an RSA key load costs ~30 ms).
# Never the root key: that one is unlocked per operation with the operator's password.
INTERMEDIATE_KEYS = IntermediateKeyCache(max_entries=64)
# Unlocked keys of delegated OCSP responders (RFC 6960 4.2.2.2), keyed by the responder
# certificate's fingerprint; all dropped whenever a CA's key is.
OCSP_RESPONDER_KEYS = IntermediateKeyCache(max_entries=128)


def artifact_cipher() -> ArtifactCipher:
    """The at-rest cipher; PBKDF2 runs once per process per (key, salt), memoized in the vault."""
    return ArtifactCipher.from_settings_values(settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT)


@functools.lru_cache(maxsize=8)
def _store_for(data_dir: str, encryption_key: str, salt: str) -> ArtifactStore:
    return ArtifactStore(Path(data_dir), ArtifactCipher.from_settings_values(encryption_key, salt))


def artifact_store() -> ArtifactStore:
    """The store for the current settings; built once per (data dir, key, salt), not per call (hot path)."""
    return _store_for(str(settings.PKI_DATA_DIR), settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT)


def root_kdf_params() -> ScryptParams:
    """scrypt cost for new root keys: n = 2**PKI_ROOT_KDF_LOG2_N (17 by default, OWASP), r = 8, p = 1."""
    return ScryptParams(n=2**settings.PKI_ROOT_KDF_LOG2_N)


def new_ca_key_directory() -> str:
    """A fresh directory for one CA's key artifacts; random, so names never collide or leak."""
    return f"cas/{uuid.uuid4().hex}"


def new_certificate_directory() -> str:
    return f"certs/{uuid.uuid4().hex}"


def _cache_key(ca: CertificateAuthority) -> tuple[str, int, str, str]:
    # The data directory and fingerprint are part of the key so that a restore or a
    # test with another data directory can never be served a stale key.
    return (str(settings.PKI_DATA_DIR), ca.pk, ca.certificate.fingerprint_sha256, ca.key_directory)


def intermediate_signing_key(ca: CertificateAuthority) -> PrivateKey:
    """The unlocked key of an intermediate CA, from the cache or the vault."""
    return INTERMEDIATE_KEYS.get_or_load(
        _cache_key(ca), lambda: load_intermediate_key(artifact_store(), ca.key_directory)
    )


@functools.lru_cache(maxsize=256)
def _parsed_certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def ca_certificate(ca: CertificateAuthority) -> x509.Certificate:
    """A CA's certificate, parsed once per process (it signs every issuance and OCSP answer)."""
    return _parsed_certificate(bytes(ca.certificate.der))


_chain_constraints: dict[tuple[str, int, str], tuple[x509.NameConstraints, ...]] = {}


def chain_name_constraints(ca: CertificateAuthority) -> tuple[x509.NameConstraints, ...]:
    """The nameConstraints of `ca` and of every CA above it (RFC 5280 6.1.4 (g): all of them bind
    what `ca` signs); read once per process and CA (a CA's chain never changes)."""
    from certificates.selectors import ca_chain  # selectors imports the models, which import this module

    memo_key = (str(settings.PKI_DATA_DIR), ca.pk, ca.certificate.fingerprint_sha256)
    found = _chain_constraints.get(memo_key)
    if found is None:
        constraints = []
        for authority in ca_chain(ca):
            try:
                constraints.append(
                    ca_certificate(authority).extensions.get_extension_for_class(x509.NameConstraints).value)
            except x509.ExtensionNotFound:
                continue
        if len(_chain_constraints) > 1024:
            _chain_constraints.clear()
        found = _chain_constraints[memo_key] = tuple(constraints)
    return found


def forget_signing_key(ca: CertificateAuthority) -> None:
    """Drop a CA's unlocked key from memory (revocation, renewal, rotation, restore), and its OCSP responders' keys."""
    INTERMEDIATE_KEYS.invalidate(_cache_key(ca))
    OCSP_RESPONDER_KEYS.clear()  # a handful of entries, reloaded on the next OCSP answer


def forget_all_signing_keys() -> None:
    INTERMEDIATE_KEYS.clear()
    OCSP_RESPONDER_KEYS.clear()


def ocsp_responder_key(responder_fingerprint_sha256: str, key_directory: str) -> PrivateKey:
    """The unlocked key of a delegated OCSP responder (sealed like an intermediate key)."""
    cache_key = (str(settings.PKI_DATA_DIR), responder_fingerprint_sha256, key_directory)
    return OCSP_RESPONDER_KEYS.get_or_load(cache_key, lambda: load_intermediate_key(artifact_store(), key_directory))


def publication_urls(ca: CertificateAuthority) -> PublicationUrls:
    """The public URLs of a CA's CRL, OCSP responder and certificate (the contract's /pki/ routes).

    An intermediate also publishes delta CRLs (RFC 5280 5.2.4), so what it issues carries
    freshestCRL (4.2.1.15); a root does not (each of its signatures needs the operator).
    """
    return _publication_urls(settings.PKI_BASE_URL, ca.slug, ca.is_root)


@functools.lru_cache(maxsize=1024)
def _publication_urls(base: str, slug: str, is_root: bool) -> PublicationUrls:
    """Built and validated once per CA: every certificate the CA issues carries them."""
    return PublicationUrls(
        crl_url=f"{base}/pki/crl/{slug}.crl",
        ocsp_url=f"{base}/pki/ocsp/{slug}/",
        ca_issuers_url=f"{base}/pki/ca/{slug}.crt",
        delta_crl_url=None if is_root else f"{base}/pki/crl/{slug}.delta.crl",
    )
