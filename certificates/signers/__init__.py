"""One door for every use of a CA's private key.

Services never hold a key: they ask for a signer and sign through it::

    with signer_for(ca, root_password=password, actor=actor) as signer:
        build_crl(issuer_certificate, signer, ...)

`signer_for` opens the key where it lives (the CA row's `key_backend`): the file vault
(`signers.vault`: a root's two-part key needs the operator's root password, an intermediate's
opens alone) or a PKCS#11 token (`signers.pkcs11`: a root's token wants the operator's PIN,
given where the root password would be; an intermediate's, the PIN file of the server). A
root's signer is released when its block ends; intermediates' signers are cached.

A new CA key comes from `fresh_ca_key`, which generates it in the chosen backend and answers
the fields its CA row records (`CertificateAuthority.key_backend` and the token fields).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.keys import KeyType, PublicKey
from certificates.crypto.signing import Signer
from certificates.errors import InvalidInput, ServiceError, UnlockRefused
from certificates.vault.errors import UnlockFailed
from pki_project.actor import Actor

from . import pkcs11 as token_backend
from . import vault as vault_backend

if TYPE_CHECKING:
    from certificates.models import CertificateAuthority
    from certificates.vault.storage import ArtifactStore

__all__ = [
    "PKCS11",
    "VAULT",
    "FreshCAKey",
    "Signer",
    "custody_note",
    "forget_all_signing_keys",
    "forget_signing_key",
    "fresh_ca_key",
    "fresh_responder_key",
    "intermediate_signer",
    "responder_signer",
    "server_pin",
    "signer_for",
]

VAULT, PKCS11 = "vault", "pkcs11"
KEY_BACKENDS = (VAULT, PKCS11)


class TokenUnavailable(ServiceError):
    """The PKCS#11 token or its library refused (503: an operator must look at the token)."""

    status = 503
    default_code = "token_unavailable"


def _failed_unlock(ca: CertificateAuthority, actor: Actor) -> UnlockRefused:
    record_event(
        AuditAction.CA_UNLOCK, **actor.audit_kwargs(), outcome="failure", organization_id=ca.organization_id,
        target_type="ca", target_id=str(ca.pk), target_serial=ca.certificate.serial,
    )
    return UnlockRefused()


@contextmanager
def _root_signer(ca: CertificateAuthority, root_password: str | None, actor: Actor) -> Iterator[Signer]:
    if not root_password:
        raise InvalidInput("The root password is required for this operation.", code="root_password_required")
    if ca.key_backend == PKCS11:
        try:
            with token_backend.root_signer(ca, root_password) as signer:
                yield signer
        except token_backend.TokenLoginFailed:
            raise _failed_unlock(ca, actor) from None
        except token_backend.TokenError as error:
            raise TokenUnavailable(str(error)) from None
        return
    try:
        signer: Signer | None = vault_backend.root_signer(ca, root_password)
    except UnlockFailed:
        raise _failed_unlock(ca, actor) from None
    try:
        yield signer
    finally:
        del signer  # the root key lives no longer than this block


def intermediate_signer(ca: CertificateAuthority) -> Signer:
    """The (cached) signer of an intermediate CA: no operator secret is needed."""
    if ca.key_backend == PKCS11:
        try:
            return token_backend.intermediate_signer(ca)
        except token_backend.TokenError as error:
            raise TokenUnavailable(str(error)) from None
    return vault_backend.intermediate_signer(ca)


@contextmanager
def signer_for(ca: CertificateAuthority, *, actor: Actor, root_password: str | None = None) -> Iterator[Signer]:
    """``with signer_for(ca, …) as signer:`` - the signer of `ca` for the block.

    A root needs its root password (for a token-held root: the token's user PIN); a failure
    leaves a failure audit event and one generic error. An intermediate needs nothing.
    """
    if ca.is_root:
        with _root_signer(ca, root_password, actor) as signer:
            yield signer
    else:
        yield intermediate_signer(ca)


def responder_signer(responder_fingerprint_sha256: str, key_directory: str) -> Signer:
    """The signer of a delegated OCSP responder (its short-lived key is always in the vault)."""
    return vault_backend.responder_signer(responder_fingerprint_sha256, key_directory)


@dataclass
class FreshResponderKey:
    """A new delegated OCSP responder key: its public key for the certificate, then sealed."""

    _key: vault_backend.FreshVaultKey

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def seal(self, store: ArtifactStore, key_directory: str) -> None:
        self._key.seal_intermediate(store, key_directory)


def fresh_responder_key(key_type: KeyType) -> FreshResponderKey:
    return FreshResponderKey(vault_backend.FreshVaultKey.generate(key_type))


@dataclass
class FreshCAKey:
    """A CA key just generated in its backend; `row_fields` go on the CA row (no secret among them)."""

    backend: str
    signer: Signer
    row_fields: dict[str, Any] = field(default_factory=dict)
    _vault_key: vault_backend.FreshVaultKey | None = None
    recorded: bool = False  # set once the CA row that names the key has committed: from then on it stays

    def public_key(self) -> PublicKey:
        return self.signer.public_key()

    def seal(self, store: ArtifactStore, key_directory: str, *, root_password: str | None) -> None:
        """Vault keys are sealed now (a root's under the root password); token keys are already stored."""
        if self._vault_key is None:
            return
        if root_password is not None:
            self.row_fields["root_key_params"] = self._vault_key.seal_root(store, key_directory, root_password)
        else:
            self._vault_key.seal_intermediate(store, key_directory)


def _check_token_arguments(key_type: KeyType, token_label: str | None, pin: str | None, *, for_root: bool) -> None:
    if not token_label:
        raise InvalidInput("A key on a PKCS#11 token needs the token's label.", code="token_label_required")
    if for_root and not pin:
        raise InvalidInput("A key on a PKCS#11 token needs the token's user PIN.", code="pin_required")
    if key_type not in token_backend.TOKEN_KEY_TYPES:
        raise InvalidInput(f"A {key_type.value} key cannot be made on a PKCS#11 token: use "
                           f"{', '.join(kind.value for kind in token_backend.TOKEN_KEY_TYPES)}.",
                           code="unsupported_key_type")


def _fresh_token_key(session: Any, lock: Any, key_type: KeyType, key_label: str, token_label: str) -> FreshCAKey:
    ref = token_backend.generate_key(session, token_label, key_type, key_label)
    return FreshCAKey(PKCS11, token_backend.signer_in_session(session, ref.key_id, lock),
                      {"key_backend": PKCS11, "token_label": ref.token_label, "key_label": ref.key_label,
                       "key_id": ref.key_id})


@contextmanager
def _key_making_session(token_label: str, pin: str | None, *, for_root: bool) -> Iterator[tuple[Any, Any]]:
    """A root's key is made in the operator's session (its PIN), an intermediate's in the server's."""
    if for_root:
        with token_backend.operator_session(token_label, pin) as session:  # type: ignore[arg-type]
            yield session, None
    else:
        with token_backend.server_session(token_label) as (session, lock):
            yield session, lock


@contextmanager
def _destroyed_on_failure(session: Any, key: FreshCAKey) -> Iterator[FreshCAKey]:
    try:
        yield key
    except BaseException:
        if key.recorded:
            raise
        try:
            token_backend.destroy_key(session, key.row_fields["key_id"])
        except Exception:  # the first error matters; a leftover key is labelled with the CA's slug
            logging.getLogger(__name__).warning("An unused key could not be removed from token %s",
                                                key.row_fields["token_label"])
        raise


@contextmanager
def fresh_ca_key(key_type: KeyType, *, for_root: bool, backend: str = VAULT, key_label: str = "",
                 token_label: str | None = None, pin: str | None = None) -> Iterator[FreshCAKey]:
    """``with fresh_ca_key(...) as key:`` - a new CA key, for the block.

    On a token, a root's key is made in a session logged in with the operator's `pin` (closed with
    the block); an intermediate's in the server's session (the PIN file), which stays open.

    A token key whose block fails (the CA row is not written) is destroyed on the token again.
    """
    if backend not in KEY_BACKENDS:
        raise InvalidInput(f"The key backend must be one of {', '.join(KEY_BACKENDS)}.", code="invalid_key_backend")
    if backend == VAULT:
        key = vault_backend.FreshVaultKey.generate(key_type)
        yield FreshCAKey(VAULT, key.signer, {"key_backend": VAULT}, key)
        return
    _check_token_arguments(key_type, token_label, pin, for_root=for_root)
    try:
        with _key_making_session(token_label, pin, for_root=for_root) as (session, lock), \
                _destroyed_on_failure(session, _fresh_token_key(session, lock, key_type, key_label,
                                                                token_label)) as key:  # type: ignore[arg-type]
            yield key
    except token_backend.TokenLoginFailed:
        raise UnlockRefused() from None
    except token_backend.TokenError as error:
        raise TokenUnavailable(str(error)) from None


def server_pin() -> str:
    """The user PIN of the intermediates' token, from `PKI_PKCS11_PIN_FILE`."""
    try:
        return token_backend.server_pin()
    except token_backend.TokenError as error:
        raise TokenUnavailable(str(error)) from None


def forget_signing_key(ca: CertificateAuthority) -> None:
    """Drop a CA's cached signer (revocation, renewal, rotation, restore) and its OCSP responders'."""
    vault_backend.forget(ca)
    if ca.key_backend == PKCS11:
        token_backend.forget_all()


def forget_all_signing_keys() -> None:
    vault_backend.forget_all()
    token_backend.forget_all()


def custody_note(ca: CertificateAuthority) -> str | None:
    """What a backup does not carry for `ca`: None for the vault (the sealed key is in the data dir)."""
    if ca.key_backend != PKCS11:
        return None
    return (f"the key of CA {ca.slug} is on token {ca.token_label} (key label {ca.key_label or '-'}, "
            f"id {ca.key_id}) and is not in this backup")
