"""Certificate fingerprints."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes


def certificate_fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the certificate's DER encoding, as lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def der_fingerprint_sha256(der: bytes) -> str:
    """The same fingerprint from DER already in hand (no re-encoding of the certificate)."""
    return hashlib.sha256(der).hexdigest()
