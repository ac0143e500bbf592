"""Revoking certificates and CAs (RFC 5280 5.3.1 reasons; revocation is final).

Rules: who may revoke what is `permissions` (a CA or OCSP responder certificate: admins),
asked before anything else, so no one without the right learns whether a root password
is right; a CA certificate is revoked only with its root's password; a CA that still
has valid certificates below it is revoked only when the caller explicitly asks to
revoke them too. cACompromise and aACompromise are refused for subscriber certificates
(BR 7.2.2); subscriber certificates below a revoked CA go with cessationOfOperation.
Once the revocation has committed the issuer publishes it: an intermediate in a new delta
CRL, a root in a new full CRL with the signer the revocation opened (`publication`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.signing import Signer
from certificates.errors import Conflict, InvalidInput
from certificates.models import Certificate, CertificateAuthority, CertificateKind, RevocationReason
from certificates.selectors import ca_chain
from certificates.services.ocsp import forget_responders
from certificates.services.permissions import Action, require
from certificates.services.publication import republish_intermediates_on_commit, republish_root
from certificates.signers import forget_signing_key, signer_for
from pki_project.actor import Actor

logger = logging.getLogger(__name__)

# CA certificates below a revoked CA inherit a reason that says why they go.
_CHILD_CA_REASON = {
    RevocationReason.KEY_COMPROMISE: RevocationReason.CA_COMPROMISE,
    RevocationReason.CA_COMPROMISE: RevocationReason.CA_COMPROMISE,
}
#: BR 7.2.2: a CRL entry (or OCSP answer) of a subscriber certificate never says cACompromise or
#: aACompromise; RFC 5280 5.3.1 meant them for CA and attribute-authority certificates.
SUBSCRIBER_PROHIBITED_REASONS = frozenset({RevocationReason.CA_COMPROMISE, RevocationReason.AA_COMPROMISE})
#: What a subscriber certificate below a revoked CA is revoked with, whatever happened to the CA
#: (one of the reasons BR 7.2.2 allows for subscribers).
_CHILD_SUBSCRIBER_REASON = RevocationReason.CESSATION_OF_OPERATION


def parse_revocation_reason(reason: str) -> RevocationReason:
    try:
        return RevocationReason(reason)
    except ValueError:
        raise InvalidInput(
            f"Unknown revocation reason '{reason}'. Use one of: {', '.join(RevocationReason.values)}.",
            code="invalid_reason",
        ) from None


def is_ca_certificate(certificate: Certificate) -> bool:
    return certificate.kind in (CertificateKind.INTERMEDIATE_CA, CertificateKind.ROOT_CA)


def check_reason_allowed(certificate: Certificate, reason: RevocationReason) -> None:
    """BR 7.2.2: cACompromise and aACompromise are for CA certificates, never for a subscriber's."""
    if reason in SUBSCRIBER_PROHIBITED_REASONS and not is_ca_certificate(certificate):
        allowed = [r for r in RevocationReason.values if r not in SUBSCRIBER_PROHIBITED_REASONS]
        raise InvalidInput(
            f"The reason '{reason}' is only for CA certificates (CA/B Forum BR 7.2.2); certificate "
            f"{certificate.serial} is not a CA. Use one of: {', '.join(allowed)}.",
            code="reason_not_allowed",
        )


def _child_reason(child: Certificate, reason: RevocationReason) -> RevocationReason:
    if is_ca_certificate(child):
        return _CHILD_CA_REASON.get(reason, RevocationReason.CESSATION_OF_OPERATION)
    return _CHILD_SUBSCRIBER_REASON


def _checked_invalidity_date(invalidity_date: datetime | None, now: datetime) -> datetime | None:
    """RFC 5280 5.3.2: when the key is known or suspected to have been compromised; never in the future."""
    if invalidity_date is None:
        return None
    if timezone.is_naive(invalidity_date):
        raise InvalidInput("The invalidity date needs a time zone (e.g. 2026-01-31T12:00:00Z).",
                           code="invalid_invalidity_date")
    if invalidity_date > now:
        raise InvalidInput("The invalidity date cannot be in the future.", code="invalid_invalidity_date")
    return invalidity_date


def _authority_of(certificate: Certificate) -> CertificateAuthority | None:
    return CertificateAuthority.objects.filter(certificate=certificate).select_related("certificate").first()


def _valid_descendants(authority: CertificateAuthority, now: datetime) -> list[Certificate]:
    """Every still-valid certificate below `authority`, depth first (children CAs' subtrees included)."""
    found: list[Certificate] = []
    for child in Certificate.objects.filter(issuer=authority).valid(now).order_by("pk"):
        found.append(child)
        child_authority = _authority_of(child)
        if child_authority is not None:
            found.extend(_valid_descendants(child_authority, now))
    return found


def _mark_revoked(certificate: Certificate, reason: RevocationReason, now: datetime,
                  invalidity_date: datetime | None, actor: Actor) -> None:
    updated = Certificate.objects.filter(pk=certificate.pk, revoked_at__isnull=True).update(
        revoked_at=now, revocation_reason=reason, invalidity_date=invalidity_date
    )
    if not updated:
        raise Conflict(f"Certificate {certificate.serial} is already revoked.", code="already_revoked")
    certificate.revoked_at, certificate.revocation_reason = now, reason
    certificate.invalidity_date = invalidity_date
    record_event(
        AuditAction.CERTIFICATE_REVOKE, **actor.audit_kwargs(), organization_id=certificate.organization_id,
        target_type="certificate", target_id=str(certificate.pk), target_serial=certificate.serial,
        details={"reason": str(reason), "kind": certificate.kind,
                 "invalidity_date": invalidity_date.isoformat() if invalidity_date else None},
    )


def _issuers_to_republish(certificates: list[Certificate]) -> list[CertificateAuthority]:
    """The CAs whose CRLs must change: the issuers of what was revoked, unless revoked themselves."""
    revoked_ids = {c.pk for c in certificates}
    issuer_ids = {c.issuer_id for c in certificates if c.issuer_id is not None}
    return [
        ca for ca in CertificateAuthority.objects.filter(pk__in=issuer_ids).select_related("certificate")
        if ca.certificate_id not in revoked_ids
    ]


def revoke_certificate(
    certificate: Certificate,
    *,
    reason: str,
    actor: Actor,
    invalidity_date: datetime | None = None,
    root_password: str | None = None,
    revoke_children: bool = False,
    now: datetime | None = None,
) -> list[Certificate]:
    """Revoke `certificate` (and, when asked, everything valid below it). Returns what was revoked."""
    require(actor, Action.REVOKE, certificate)
    reason = parse_revocation_reason(reason)
    check_reason_allowed(certificate, reason)
    now = (now or timezone.now()).replace(microsecond=0)
    invalidity_date = _checked_invalidity_date(invalidity_date, now)
    if certificate.is_revoked:
        raise Conflict(f"Certificate {certificate.serial} is already revoked.", code="already_revoked")
    authority = _authority_of(certificate)
    if authority is None:
        return _revoke(certificate, reason, invalidity_date, now, actor, descendants=[])
    root = ca_chain(authority)[-1]
    # A CA goes only with the root's password; the root's signer stays open until its CRL is re-signed.
    with signer_for(root, root_password=root_password, actor=actor) as root_signer:
        descendants = _valid_descendants(authority, now)
        # The CA's own delegated OCSP responders go with it and do not count as children to decide on.
        subscribers = [d for d in descendants if d.kind != CertificateKind.OCSP_RESPONDER]
        if subscribers and not revoke_children:
            raise Conflict(
                f"The CA '{authority.slug}' still has {len(subscribers)} valid certificate(s) below it: "
                "revoke them too (revoke_children) or revoke them first.", code="ca_has_valid_children",
            )
        return _revoke(certificate, reason, invalidity_date, now, actor, descendants=descendants, root=root,
                       root_signer=root_signer)


def _revoke(certificate: Certificate, reason: RevocationReason, invalidity_date: datetime | None, now: datetime,
            actor: Actor, *, descendants: list[Certificate], root: CertificateAuthority | None = None,
            root_signer: Signer | None = None) -> list[Certificate]:
    """Mark `certificate` and `descendants` revoked in one transaction, then publish what changed."""
    with transaction.atomic():
        _mark_revoked(certificate, reason, now, invalidity_date, actor)
        for child in descendants:
            _mark_revoked(child, _child_reason(child, reason), now, None, actor)
        revoked = [certificate, *descendants]
        for cert in revoked:
            if is_ca_certificate(cert):
                forget_signing_key(CertificateAuthority.objects.select_related("certificate").get(certificate=cert))
                forget_responders()  # this worker stops signing with the CA's responder at once
        issuers = _issuers_to_republish(revoked)
        republish_intermediates_on_commit(issuers, actor)
    republish_root(issuers, actor, root, root_signer)
    return revoked
