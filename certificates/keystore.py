"""The Django side of the vault: the artifact store built from settings, key directories, CA facts.

`certificates.vault` is pure (no Django); this module is the one place that reads
the encryption settings and hands the vault what it needs. Keys are opened only by
`certificates.signers`; services sign through a signer and never open a key file themselves.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from django.conf import settings

from certificates.crypto.builders import PublicationUrls
from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.custody import ScryptParams, delete_ca_key
from certificates.vault.storage import ArtifactStore

if TYPE_CHECKING:
    from certificates.models import CertificateAuthority

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


@contextmanager
def key_removed_on_failure(store: ArtifactStore, key_directory: str) -> Iterator[None]:
    """Undo a freshly sealed key (CA or OCSP responder) when the step that records it fails.

    An empty `key_directory` (a key held by a token) has nothing to undo here.
    """
    if not key_directory:
        yield
        return
    try:
        yield
    except BaseException:
        with suppress(OSError):  # a read-only disk refuses the clean-up too: keep the first error
            delete_ca_key(store, key_directory)  # no orphan key outlives its rolled-back row
        raise


def new_certificate_directory() -> str:
    return f"certs/{uuid.uuid4().hex}"


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
