"""The vault's single exception hierarchy.

Every error the vault raises is a :class:`VaultError`, so the service layer can
map the whole family to one 4xx/5xx policy without catching ``Exception``.

Messages are written for an operator, never for an attacker: they may name a
*relative artifact path* or a *key identifier* (both public), but never key
material, passwords, passphrases, plaintext or ciphertext bytes. Constructors
take only those public values, so a secret cannot leak into a message by
accident. ``UnlockFailed`` is deliberately uninformative: the caller must not
be able to tell a wrong root password from a missing or damaged file.
"""

from __future__ import annotations

__all__ = [
    "ArtifactCorrupt",
    "ArtifactExists",
    "ArtifactNotFound",
    "ArtifactTampered",
    "InvalidArtifactPath",
    "InvalidEncryptionSettings",
    "InvalidKdfParameters",
    "RotationError",
    "RotationInProgress",
    "RotationInterrupted",
    "UnlockFailed",
    "VaultError",
    "WeakPassword",
    "WrongEncryptionKey",
]


class VaultError(Exception):
    """Base class of every error raised by ``certificates.vault``."""


def _where(relpath: str | None) -> str:
    return f" ({relpath})" if relpath else ""


class InvalidArtifactPath(VaultError):
    """A relative artifact path is malformed, escapes the data dir or has no artifact suffix."""


class InvalidEncryptionSettings(VaultError):
    """PKI_ENCRYPTION_KEY / PKI_ENCRYPTION_SALT do not meet the minimum strength."""


class InvalidKdfParameters(VaultError):
    """scrypt parameters are outside the accepted range (too weak or absurdly expensive)."""


class WeakPassword(VaultError):
    """An operator password does not satisfy the password rule (the password is never echoed)."""


class ArtifactNotFound(VaultError):
    """The artifact file does not exist."""

    def __init__(self, relpath: str) -> None:
        super().__init__(f"Artifact not found{_where(relpath)}.")
        self.relpath = relpath


class ArtifactExists(VaultError):
    """Refusing to overwrite an artifact that must be written only once (a CA key, its password)."""

    def __init__(self, relpath: str) -> None:
        super().__init__(f"Artifact already exists and will not be overwritten{_where(relpath)}.")
        self.relpath = relpath


class ArtifactCorrupt(VaultError):
    """The blob is not a vault artifact: bad magic, unknown version or truncated."""

    def __init__(self, reason: str, relpath: str | None = None) -> None:
        super().__init__(f"Artifact is corrupt: {reason}{_where(relpath)}.")
        self.reason = reason
        self.relpath = relpath


class WrongEncryptionKey(VaultError):
    """The artifact was sealed under another master key (detected from its header's key id).

    Raised before any decryption is attempted; backup validation and key rotation
    rely on it to tell "other installation / other key" apart from "damaged".
    """

    def __init__(self, found_key_id: bytes, expected_key_id: bytes, relpath: str | None = None) -> None:
        super().__init__(
            "Artifact was sealed under a different PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT "
            f"(artifact key id {found_key_id.hex()}, current key id {expected_key_id.hex()}){_where(relpath)}."
        )
        self.found_key_id = found_key_id
        self.expected_key_id = expected_key_id
        self.relpath = relpath


class ArtifactTampered(VaultError):
    """Authentication failed: the bytes were modified, or the file was moved/copied to another path."""

    def __init__(self, relpath: str | None = None, layer: str = "artifact") -> None:
        super().__init__(
            f"The {layer} failed authentication: it was modified or moved from another path{_where(relpath)}."
        )
        self.relpath = relpath


class UnlockFailed(VaultError):
    """The root CA key could not be unlocked. Deliberately says nothing about why."""

    MESSAGE = "The CA key could not be unlocked."

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class RotationError(VaultError):
    """Key rotation cannot proceed (the message names the offending relative path or journal)."""


class RotationInProgress(RotationError):
    """A rotation towards another key was started and has not completed."""


class RotationInterrupted(RotationError):
    """Raised by the ``fail_after`` test hook to simulate a process killed mid-rotation."""
