"""ACME accounts (RFC 8555 7.3): creation with external account binding, update, deactivation, key rollover."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from acme_server.models import Account, AccountStatus, ExternalAccountKey
from acme_server.services import jose
from acme_server.services.audit import record_acme_event
from acme_server.services.context import AcmeContext
from acme_server.services.eab import verify_binding
from acme_server.services.problems import AcmeProblem
from acme_server.services.requests import VerifiedRequest
from audit.actions import AuditAction

MAX_CONTACTS = 10
# RFC 8555 7.3: mailto URIs, one address, no header fields (hfields) and no "," lists.
_MAILTO = re.compile(r"^mailto:([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64})@([A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+)$")


@dataclass(frozen=True)
class AccountResult:
    account: Account
    created: bool


def account_document(context: AcmeContext, account: Account) -> dict:
    document = {"status": account.status, "contact": account.contacts, "orders": context.url(
        "account", account.name, "orders"), "termsOfServiceAgreed": account.terms_agreed}
    if account.external_key_id:
        document["externalAccountBinding"] = {"kid": account.external_key.key_id}
    return document


def checked_contacts(contacts: object) -> list[str]:
    if contacts is None:
        return []
    if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
        raise AcmeProblem("malformed", "contact must be a list of strings.")
    if len(contacts) > MAX_CONTACTS:
        raise AcmeProblem("invalidContact", f"At most {MAX_CONTACTS} contacts.")
    for contact in contacts:
        if not contact.lower().startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", "Only mailto: contacts are supported.")
        if not _MAILTO.match(contact):
            raise AcmeProblem("invalidContact", "A contact is not a valid mailto: address without header fields.")
    return list(contacts)


def new_account(context: AcmeContext, verified: VerifiedRequest) -> AccountResult:
    """RFC 8555 7.3, 7.3.1 (an existing key answers its account), 7.3.4 (EAB)."""
    payload = verified.payload_object()
    existing = Account.objects.filter(thumbprint=verified.jwk.thumbprint).first()
    if existing is not None:
        if existing.organization_id != context.ca.organization_id:
            raise AcmeProblem("unauthorized", "This key belongs to an account of another directory.")
        return AccountResult(existing, False)
    if payload.get("onlyReturnExisting") is True:
        raise AcmeProblem("accountDoesNotExist", "No account exists with this key.")
    contacts = checked_contacts(payload.get("contact"))
    agreed = payload.get("termsOfServiceAgreed")
    if agreed is not None and not isinstance(agreed, bool):
        raise AcmeProblem("malformed", "termsOfServiceAgreed must be a boolean.")
    if settings.PKI_ACME_TERMS_OF_SERVICE and agreed is not True:
        raise AcmeProblem("userActionRequired", "Agree to the terms of service (termsOfServiceAgreed).")
    binding = payload.get("externalAccountBinding")
    credential: ExternalAccountKey | None = None
    if binding is not None:
        credential = verify_binding(binding, account_thumbprint=verified.jwk.thumbprint,
                                    new_account_url=context.url("new-account"), ca=context.ca)
    elif settings.PKI_ACME_EAB_REQUIRED:
        raise AcmeProblem("externalAccountRequired", "This server requires an external account binding.")
    try:
        with transaction.atomic():
            if credential is not None:  # one account per credential: the first to claim it wins
                claimed = ExternalAccountKey.objects.filter(pk=credential.pk, used_at__isnull=True,
                                                            revoked_at__isnull=True).update(used_at=timezone.now())
                if not claimed:
                    raise AcmeProblem("unauthorized", "The external account binding was not accepted.")
            account = Account.objects.create(
                organization_id=context.ca.organization_id, ca=context.ca, thumbprint=verified.jwk.thumbprint,
                jwk=verified.jwk.members, contacts=contacts, terms_agreed=bool(agreed), external_key=credential,
            )
            record_acme_event(AuditAction.ACME_ACCOUNT_CREATE, account, target_type="acme_account",
                              target_id=account.name, details={"eab_key_id": credential.key_id if credential else None,
                                                               "ca": context.ca.slug, "contacts": len(contacts)})
    except IntegrityError:  # the same key raced another newAccount
        existing = Account.objects.filter(thumbprint=verified.jwk.thumbprint).first()
        if existing is None:
            raise
        return AccountResult(existing, False)
    return AccountResult(account, True)


def update_account(verified: VerifiedRequest, name: str) -> Account:
    """RFC 8555 7.3.2 (contact), 7.3.3 (agreement), 7.3.6 (deactivation); POST-as-GET reads it."""
    account = verified.account
    if account is None or account.name != name:
        raise AcmeProblem("unauthorized", "A request for an account must be signed by that account.")
    if verified.is_post_as_get:
        return account
    payload = verified.payload_object()
    changes: dict = {}
    if "contact" in payload:
        changes["contacts"] = checked_contacts(payload["contact"])
    if payload.get("termsOfServiceAgreed") is True:
        changes["terms_agreed"] = True
    status = payload.get("status")
    if status is not None and status != AccountStatus.DEACTIVATED:
        raise AcmeProblem("malformed", "An account's status can only be changed to deactivated.")
    with transaction.atomic():
        if status == AccountStatus.DEACTIVATED:
            changes["status"] = AccountStatus.DEACTIVATED
        if changes:
            for field, value in changes.items():
                setattr(account, field, value)
            account.save(update_fields=[*changes, "updated_at"])
            action = (AuditAction.ACME_ACCOUNT_DEACTIVATE if status == AccountStatus.DEACTIVATED
                      else AuditAction.ACME_ACCOUNT_UPDATE)
            record_acme_event(action, account, target_type="acme_account", target_id=account.name,
                              details={"changed": sorted(changes)})
    return account


def change_key(context: AcmeContext, verified: VerifiedRequest, request_url: str) -> Account:
    """RFC 8555 7.3.5: the inner JWS, signed by the new key, names the account and its old key."""
    account = verified.account
    assert account is not None
    inner = jose.parse_flattened(verified.payload())
    protected = inner.protected
    if "kid" in protected or "jwk" not in protected:
        raise AcmeProblem("malformed", "The inner JWS of a key change carries the new key as jwk.")
    if "nonce" in protected:
        raise AcmeProblem("malformed", "The inner JWS of a key change must not carry a nonce.")
    if protected.get("url") != request_url:
        raise AcmeProblem("malformed", "The inner JWS's url must be the keyChange URL.")
    new_jwk = jose.parse_jwk(protected["jwk"])
    alg = jose.check_algorithm(protected.get("alg"), new_jwk)
    if not jose.verify_signature(new_jwk, alg, inner.signing_input, inner.signature):
        raise AcmeProblem("malformed", "The inner JWS signature does not verify.")
    payload = inner.payload()
    if not isinstance(payload, dict) or payload.get("account") != context.account_url(account.name):
        raise AcmeProblem("malformed", "The inner payload's account must be the signing account's URL.")
    try:
        old = jose.parse_jwk(payload.get("oldKey"))
    except AcmeProblem:
        raise AcmeProblem("malformed", "The inner payload's oldKey is not a valid JWK.") from None
    if old.thumbprint != account.thumbprint:
        raise AcmeProblem("malformed", "oldKey is not the account's current key.")
    holder = Account.objects.filter(thumbprint=new_jwk.thumbprint).first()
    if holder is not None:
        raise AcmeProblem("malformed", "The new key is already an account's key.", status=409,
                          headers={"Location": context.account_url(holder.name)})
    old_thumbprint = account.thumbprint
    try:
        with transaction.atomic():
            updated = Account.objects.filter(pk=account.pk, thumbprint=old_thumbprint).update(
                thumbprint=new_jwk.thumbprint, jwk=new_jwk.members, updated_at=timezone.now())
            if not updated:
                raise AcmeProblem("malformed", "The account's key changed meanwhile: retry.", status=409)
            record_acme_event(AuditAction.ACME_ACCOUNT_KEY_CHANGE, account, target_type="acme_account",
                              target_id=account.name, details={"old_thumbprint": old_thumbprint,
                                                               "new_thumbprint": new_jwk.thumbprint})
    except IntegrityError:
        raise AcmeProblem("malformed", "The new key is already an account's key.", status=409) from None
    account.refresh_from_db()
    return account
