"""External account binding credentials (RFC 8555 7.3.4): created by staff, used once by an ACME client.

The HMAC key is 32 random bytes sealed in the vault like a PKCS#12 password
(`acme/eab/<uuid>/.pwd.enc`); it is returned once, base64url-encoded, by `create_eab_key` and
never again. Verification opens it only to compare a MAC, in constant time.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from acme_server.models import ExternalAccountKey
from acme_server.services import jose
from acme_server.services.problems import AcmeProblem
from audit.actions import AuditAction
from audit.services import record_event
from certificates.errors import InvalidInput, NotFound, PermissionRefused, storage_errors
from certificates.keystore import artifact_store
from certificates.models import CertificateAuthority
from certificates.vault.custody import load_secret, store_secret
from certificates.vault.errors import VaultError
from organizations.models import Organization
from organizations.roles import Role
from pki_project.actor import Actor

HMAC_KEY_BYTES = 32
EAB_MANAGERS = frozenset({Role.ADMIN, Role.MANAGER})


@dataclass(frozen=True)
class CreatedEabKey:
    credential: ExternalAccountKey
    hmac_key: str  # base64url, shown this once


def _check_may_manage(actor: Actor, organization: Organization) -> None:
    if actor.is_operator:
        return
    principal = actor.principal
    if principal is None or not principal.can_see_organization(organization.pk):
        raise NotFound("Not found.")
    if principal.role not in EAB_MANAGERS:
        raise PermissionRefused("Only a manager or an admin may manage ACME external account keys.")


def create_eab_key(organization: Organization, *, actor: Actor, ca: CertificateAuthority | None = None,
                   label: str = "") -> CreatedEabKey:
    """A new credential for `organization` (bound to `ca` when given: then only that directory accepts it)."""
    _check_may_manage(actor, organization)
    if ca is not None and ca.organization_id != organization.pk:
        raise InvalidInput("That CA belongs to another organization.", code="ca_not_in_organization")
    if ca is not None and ca.is_root:
        raise InvalidInput("ACME issues from intermediate CAs: bind the key to one of them.", code="root_cannot_issue")
    if len(label) > 100:
        raise InvalidInput("The label has at most 100 characters.", code="invalid_label")
    raw = secrets.token_bytes(HMAC_KEY_BYTES)
    relpath = f"acme/eab/{uuid.uuid4().hex}/.pwd.enc"
    store = artifact_store()
    with storage_errors():
        store_secret(store, relpath, raw)
    try:
        with transaction.atomic():
            credential = ExternalAccountKey.objects.create(
                key_id=secrets.token_urlsafe(18), hmac_key_path=relpath, organization=organization, ca=ca,
                label=label, created_by=actor.username,
            )
            record_event(AuditAction.ACME_EAB_CREATE, **actor.audit_kwargs(), organization=organization,
                         target_type="acme_eab", target_id=str(credential.pk),
                         details={"key_id": credential.key_id, "ca": ca.slug if ca else None, "label": label})
    except BaseException:
        store.delete(relpath, missing_ok=True)
        raise
    return CreatedEabKey(credential, jose.b64url_encode(raw))


def visible_eab_keys(actor: Actor) -> QuerySet[ExternalAccountKey]:
    """The credentials `actor` may manage: their organization's (a global admin's and an operator's: all)."""
    keys = ExternalAccountKey.objects.select_related("organization", "ca", "account").order_by("-id")
    if actor.is_operator:
        return keys
    principal = actor.principal
    if principal is None or principal.role not in EAB_MANAGERS:
        return keys.none()
    if principal.is_global_admin:
        return keys
    return keys.filter(organization_id=principal.organization_id)


def revoke_eab_key(credential: ExternalAccountKey, *, actor: Actor) -> ExternalAccountKey:
    """A revoked credential binds no new account (an account already bound stays as it is)."""
    _check_may_manage(actor, credential.organization)
    with transaction.atomic():
        updated = ExternalAccountKey.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now())
        if not updated:
            raise InvalidInput("That external account key is already revoked.", code="already_revoked")
        record_event(AuditAction.ACME_EAB_REVOKE, **actor.audit_kwargs(), organization_id=credential.organization_id,
                     target_type="acme_eab", target_id=str(credential.pk), details={"key_id": credential.key_id})
    credential.refresh_from_db()
    return credential


def verify_binding(binding: object, *, account_thumbprint: str, new_account_url: str,
                   ca: CertificateAuthority) -> ExternalAccountKey:
    """RFC 8555 7.3.4: a JWS over the account's JWK, MACed with the credential's key, naming it in `kid`.

    Every failure says the same (unauthorized), so a client learns nothing about which key ids exist.
    """
    jws = jose.parse_flattened(binding)
    protected = jws.protected
    if "nonce" in protected:
        raise AcmeProblem("malformed", "The external account binding must not carry a nonce.")
    if protected.get("url") != new_account_url:
        raise AcmeProblem("malformed", "The external account binding's url must be the newAccount URL.")
    alg = protected.get("alg")
    if alg not in jose.HMAC_ALGORITHMS:
        raise AcmeProblem("badSignatureAlgorithm", "The external account binding must use HS256, HS384 or HS512.")
    try:
        signed_key = jose.parse_jwk(jws.payload())
    except AcmeProblem:
        signed_key = None
    if signed_key is None or signed_key.thumbprint != account_thumbprint:
        raise AcmeProblem("malformed", "The external account binding must sign the account's JWK.")
    refused = AcmeProblem("unauthorized", "The external account binding was not accepted.")
    kid = protected.get("kid")
    credential = (ExternalAccountKey.objects.select_related("organization").filter(key_id=kid).first()
                  if isinstance(kid, str) else None)
    if credential is None or not credential.is_usable or credential.organization_id != ca.organization_id:
        raise refused
    if credential.ca_id is not None and credential.ca_id != ca.pk:
        raise refused
    try:
        key = load_secret(artifact_store(), credential.hmac_key_path)
    except VaultError:
        raise AcmeProblem("serverInternal", "The external account key cannot be read.") from None
    if not jose.verify_hmac(alg, key, jws.signing_input, jws.signature):
        raise refused
    return credential
