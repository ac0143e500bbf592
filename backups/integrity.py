"""The backup manifest's MAC: an archive this installation wrote, unchanged, or nothing.

The manifest lists the SHA-256 and size of every member, so one MAC over it covers the whole
archive. Its key derives from the encryption key (HKDF-Expand of the vault's master key,
info "pki-backup/v1/manifest-mac") and never enters the database or the archive: a global
admin who downloads a backup, edits rows and recomputes the hashes cannot MAC the result,
so the restore refuses it before reading a single row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from django.conf import settings

from certificates.vault.at_rest import derive_master_key

MAC_FIELD = "mac"
_INFO = b"pki-backup/v1/manifest-mac"


def _manifest_key() -> bytes:
    master_key = derive_master_key(settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT)
    return HKDFExpand(algorithm=hashes.SHA256(), length=32, info=_INFO).derive(master_key)


def _canonical(manifest: Mapping[str, object]) -> bytes:
    fields = {name: value for name, value in manifest.items() if name != MAC_FIELD}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def manifest_mac(manifest: Mapping[str, object]) -> str:
    """HMAC-SHA256 of the manifest's canonical JSON (every field but `mac`), hex."""
    return hmac.digest(_manifest_key(), _canonical(manifest), hashlib.sha256).hex()


def manifest_is_authentic(manifest: Mapping[str, object]) -> bool:
    mac = manifest.get(MAC_FIELD)
    return isinstance(mac, str) and hmac.compare_digest(manifest_mac(manifest), mac)
