"""Rotating the encryption-at-rest key: every artifact re-sealed under a new key and salt.

The vault does the crash-safe, resumable work (`rotate_artifacts`: atomic per file,
a journal, files already under the new key skipped). This layer reads the new
values from the environment with the same rules as start-up, drops cached keys,
MACs the audit chain under the new audit keys and records the audit event. Run it
while the application is stopped: `/ready` answers 503 while a rotation journal exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from audit.actions import AuditAction
from audit.keys import AuditKeys, audit_keys, audit_keys_for
from audit.maintenance import chain_keyed_with, rekey_chain
from audit.services import lock_chain, record_event
from certificates.errors import InvalidInput, storage_errors
from certificates.keystore import artifact_cipher
from certificates.signers import forget_all_signing_keys
from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.errors import RotationError
from certificates.vault.rotation import RotationReport, rotate_artifacts
from pki_project.actor import Actor
from pki_project.config import ConfigError, validate_required_secrets

NEW_KEY_VARIABLE = "PKI_NEW_ENCRYPTION_KEY"
NEW_SALT_VARIABLE = "PKI_NEW_ENCRYPTION_SALT"


def _new_values_from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> tuple[str, str]:
    """PKI_NEW_ENCRYPTION_KEY / PKI_NEW_ENCRYPTION_SALT, checked like the live settings."""
    environ = os.environ if environ is None else environ
    candidate = {
        "PKI_JWT_SECRET": settings.PKI_JWT_SECRET,
        "PKI_ENCRYPTION_KEY": environ.get(NEW_KEY_VARIABLE, ""),
        "PKI_ENCRYPTION_SALT": environ.get(NEW_SALT_VARIABLE, ""),
    }
    try:
        validate_required_secrets(candidate)
    except ConfigError as error:
        message = str(error).replace("PKI_ENCRYPTION_KEY", NEW_KEY_VARIABLE)
        raise InvalidInput(message.replace("PKI_ENCRYPTION_SALT", NEW_SALT_VARIABLE), code="invalid_new_key") from None
    return candidate["PKI_ENCRYPTION_KEY"], candidate["PKI_ENCRYPTION_SALT"]


def new_cipher_from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> ArtifactCipher:
    """The cipher for PKI_NEW_ENCRYPTION_KEY / PKI_NEW_ENCRYPTION_SALT, checked like the live settings."""
    return ArtifactCipher.from_settings_values(*_new_values_from_environment(environ))


def rotate_encryption_key(
    *,
    actor: Actor,
    progress: Callable[[int, int, str], None] | None = None,
    fail_after: int | None = None,
) -> RotationReport:
    new_values = _new_values_from_environment()
    new_cipher = ArtifactCipher.from_settings_values(*new_values)
    forget_all_signing_keys()
    try:
        with storage_errors("the rotation stopped. Free space (or make it writable) and run it again to finish."):
            report = rotate_artifacts(Path(settings.PKI_DATA_DIR), artifact_cipher(), new_cipher, progress,
                                      fail_after)
    except RotationError as error:
        raise InvalidInput(str(error), code="rotation_failed") from None
    finally:
        forget_all_signing_keys()
    _move_audit_chain(report, actor, old=audit_keys(), new=audit_keys_for(*new_values))
    return report


def _move_audit_chain(report: RotationReport, actor: Actor, *, old: AuditKeys, new: AuditKeys) -> None:
    """The audit keys derive from the encryption key: MAC the chain under the new ones, in one transaction.

    The event names both checkpoint public keys, so checkpoints signed before the rotation
    still verify afterwards. A re-run after a crash finds the chain already keyed with the
    new keys (the transaction committed) or still with the old ones (it did not), never a mix.
    """
    with transaction.atomic():
        lock_chain()
        rekeyed = 0 if chain_keyed_with(new) else rekey_chain(old, new)
        record_event(
            AuditAction.ENCRYPTION_KEY_ROTATE, **actor.audit_kwargs(), target_type="data_dir", keys=new,
            details={"rotated": report.rotated, "already_done": report.already_done, "resumed": report.resumed,
                     "old_key_id": report.old_key_id, "new_key_id": report.new_key_id, "audit_events_rekeyed": rekeyed,
                     "audit_public_key_old": old.public_key, "audit_public_key_new": new.public_key},
        )
