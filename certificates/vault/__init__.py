"""The vault: the only code that touches private keys and passwords at rest.

Pure Python on top of ``cryptography`` and the file system (no Django import):
the service layer builds the objects from settings and passes them in::

    cipher = ArtifactCipher.from_settings_values(settings.PKI_ENCRYPTION_KEY, settings.PKI_ENCRYPTION_SALT)
    store = ArtifactStore(settings.PKI_DATA_DIR, cipher)
    params = seal_root_key(store, f"cas/{ca.id}", key, root_password)   # params.to_dict() -> database
    with unlocked_root_key(store, f"cas/{ca.id}", root_password) as root_key:
        ...

Layers: ``at_rest`` (master key, outer AES-GCM format), ``storage`` (atomic
files), ``custody`` (CA keys and secrets), ``rotation`` (re-keying the outer layer).
"""

from .at_rest import ArtifactCipher, clear_master_key_cache, derive_master_key, master_key_cache_info, parse_header
from .custody import (
    IntermediateKeyCache,
    RootKeyParams,
    ScryptParams,
    check_root_password,
    delete_ca_key,
    load_intermediate_key,
    load_secret,
    seal_intermediate_key,
    seal_root_key,
    store_secret,
    unlock_root_key,
    unlocked_root_key,
)
from .errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    InvalidArtifactPath,
    InvalidEncryptionSettings,
    InvalidKdfParameters,
    RotationError,
    RotationInProgress,
    RotationInterrupted,
    UnlockFailed,
    VaultError,
    WeakPassword,
    WrongEncryptionKey,
)
from .rotation import RotationReport, read_rotation_journal, rotate_artifacts
from .storage import ArtifactStore

__all__ = [
    "ArtifactCipher",
    "ArtifactCorrupt",
    "ArtifactExists",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactTampered",
    "IntermediateKeyCache",
    "InvalidArtifactPath",
    "InvalidEncryptionSettings",
    "InvalidKdfParameters",
    "RootKeyParams",
    "RotationError",
    "RotationInProgress",
    "RotationInterrupted",
    "RotationReport",
    "ScryptParams",
    "UnlockFailed",
    "VaultError",
    "WeakPassword",
    "WrongEncryptionKey",
    "check_root_password",
    "clear_master_key_cache",
    "delete_ca_key",
    "derive_master_key",
    "load_intermediate_key",
    "load_secret",
    "master_key_cache_info",
    "parse_header",
    "read_rotation_journal",
    "rotate_artifacts",
    "seal_intermediate_key",
    "seal_root_key",
    "store_secret",
    "unlock_root_key",
    "unlocked_root_key",
]
