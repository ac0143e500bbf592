"""Two-person approval of issuance: submit, approve (issue once), reject, expire; audited in each transaction.

`submit_issuance` is what every channel calls to issue: where neither the CA nor the profile
requires approval it is `issue_certificate`; otherwise the request is vetted as issuance would
vet it and waits as `pending` (`approval.request`). Then exactly one of:

* `approve`: an admin or manager of the CA's organization (a global admin, or an operator at the
  console) who is not the requester (the same user through another API key is the same person;
  the console does not approve what the console asked for). The request is locked, the
  certificate issued with every check of issuance again, and the row moved from `pending` to
  `approved` by a conditional update in the same transaction: two approvals at once give one
  certificate and one 409.
* `reject`: the same approvers, with a reason.
* expiry: a request still pending after PKI_APPROVAL_TTL_HOURS is `expired` (on every read and
  decision, and by `manage.py expire_approvals`); it can no longer be approved.

An ACME order whose finalize waits here stays `processing`; approval completes it, rejection or
expiry makes it `invalid` (RFC 8555 7.1.6).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.models import MAX_REASON_LENGTH, ApprovalStatus, IssuanceApproval, RequesterKind
from audit.actions import AuditAction
from audit.services import record_event
from certificates.errors import Conflict, InvalidInput, NotFound, PermissionRefused
from certificates.models import Certificate, CertificateAuthority
from certificates.services.issuance import (
    IssuanceRequest,
    issue_approved_certificate,
    issue_certificate,
    vet_issuance_request,
)
from certificates.services.permissions import Action, require
from certificates.services.profiles import requires_approval
from pki_project.actor import Actor

DEFAULT_TTL_HOURS = 7 * 24
SYSTEM = "system:expiry"


def approval_ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "PKI_APPROVAL_TTL_HOURS", DEFAULT_TTL_HOURS))


# --- Submitting ----------------------------------------------------------------------------------


def _requester_fields(actor: Actor) -> dict[str, object]:
    if actor.is_acme_account:
        return {"requester_kind": RequesterKind.ACME, "requester_acme_account_id": actor.acme_account_id}
    if actor.principal is not None:
        return {"requester_kind": RequesterKind.MEMBER, "requester_user_id": actor.principal.user_id}
    return {"requester_kind": RequesterKind.OPERATOR}


def _details(approval: IssuanceApproval, **extra: object) -> dict[str, object]:
    return {"ca": approval.ca.slug, "profile": approval.profile, "names": approval.names[:20],
            "key_source": approval.key_source, "requested_by": approval.requested_by, **extra}


def submit_issuance(ca: CertificateAuthority, request: IssuanceRequest, *, actor: Actor,
                    acme_order=None) -> Certificate | IssuanceApproval:
    """Issue now, or (where the CA or the profile requires approval) store the vetted request as pending."""
    require(actor, Action.ISSUE, ca)
    if not requires_approval(ca, request.profile):
        return issue_certificate(ca, request, actor=actor)
    vetted = vet_issuance_request(ca, request, actor=actor)
    now = timezone.now()
    with transaction.atomic():
        approval = IssuanceApproval.objects.create(
            organization_id=ca.organization_id, ca=ca, profile=str(request.profile),
            csr=vetted.request.csr or "", common_name=vetted.common_name[:64], sans=list(request.sans),
            key_type="" if vetted.request.csr else vetted.request.key_type, names=vetted.sans,
            days=request.days, hours=request.hours, requested_by=actor.username[:150], requested_at=now,
            expires_at=now + approval_ttl(), acme_order=acme_order, **_requester_fields(actor))
        record_event(AuditAction.APPROVAL_REQUEST, **actor.audit_kwargs(), organization=ca.organization,
                     target_type="issuance_approval", target_id=str(approval.pk),
                     details=_details(approval, expires_at=approval.expires_at.isoformat()))
    return approval


# --- Who sees and decides ------------------------------------------------------------------------


def visible_approvals(actor: Actor) -> QuerySet[IssuanceApproval]:
    """The requests of the actor's organization (all for a global admin or an operator), expired ones marked."""
    expire_due()
    queryset = IssuanceApproval.objects.select_related("ca", "organization", "certificate")
    principal = actor.principal
    if actor.is_operator or (principal is not None and principal.is_global_admin):
        return queryset
    if principal is None:
        return queryset.none()
    return queryset.filter(organization_id=principal.organization_id)


def get_visible_approval(actor: Actor, reference: object) -> IssuanceApproval:
    text = str(reference)
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        raise NotFound(f"No request '{text[:32]}'.")
    approval = visible_approvals(actor).filter(pk=int(text)).first()
    if approval is None:
        raise NotFound(f"No request '{text[:32]}'.")
    return approval


def is_requester(approval: IssuanceApproval, actor: Actor) -> bool:
    """The same person asked: the same user (whichever API key or session), the console, the ACME account."""
    if actor.is_operator:
        return approval.requester_kind == RequesterKind.OPERATOR
    if actor.is_acme_account:
        return approval.requester_acme_account_id == actor.acme_account_id
    principal = actor.principal
    return principal is not None and approval.requester_user_id == principal.user_id


def may_decide(approval: IssuanceApproval, actor: Actor) -> bool:
    """Whether to show the approve/reject controls."""
    try:
        _require_decider(approval, actor)
    except (PermissionRefused, NotFound):
        return False
    return approval.status == ApprovalStatus.PENDING


def _require_decider(approval: IssuanceApproval, actor: Actor) -> None:
    require(actor, Action.APPROVE_ISSUANCE, approval.ca)
    if is_requester(approval, actor):
        raise PermissionRefused("A request is approved or rejected by someone other than its requester.",
                                code="own_request")


def _require_pending(approval: IssuanceApproval, now: datetime) -> None:
    if approval.status == ApprovalStatus.PENDING and approval.expires_at <= now:
        raise Conflict("The request has expired: it can no longer be approved.", code="request_expired")
    if approval.status == ApprovalStatus.EXPIRED:
        raise Conflict("The request has expired: it can no longer be approved.", code="request_expired")
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(f"The request was already {approval.status}.", code="already_decided")


def _decider_fields(actor: Actor, now: datetime) -> dict[str, object]:
    return {"decided_by": actor.username[:150], "decided_at": now,
            "decider_user_id": actor.principal.user_id if actor.principal else None}


def _checked_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Give a reason for the rejection.", code="reason_required")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"The reason is at most {MAX_REASON_LENGTH} characters.", code="reason_too_long")
    return reason.strip()


# --- Deciding ------------------------------------------------------------------------------------


def _issuance_request(approval: IssuanceApproval) -> IssuanceRequest:
    return IssuanceRequest(profile=approval.profile, csr=approval.csr or None,
                           common_name=approval.common_name or None, sans=tuple(approval.sans),
                           key_type=approval.key_type or None, days=approval.days, hours=approval.hours)


def approve(approval: IssuanceApproval, *, actor: Actor) -> IssuanceApproval:
    """Issue the requested certificate, once: lock, issue, then move pending -> approved conditionally."""
    _require_decider(approval, actor)
    expire_due()
    now = timezone.now()
    with transaction.atomic():
        # Only the request's row is locked (of=self), not the CA or its organization joined for the issuance.
        locked = IssuanceApproval.objects.select_for_update(of=("self",)) \
            .select_related("ca__certificate", "ca__organization").get(pk=approval.pk)
        _require_pending(locked, now)
        certificate = issue_approved_certificate(locked.ca, _issuance_request(locked), actor=actor,
                                                 requested_by=locked.requested_by, approval_id=locked.pk)
        moved = IssuanceApproval.objects.filter(pk=locked.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.APPROVED, certificate=certificate, **_decider_fields(actor, now))
        if moved != 1:  # another decision won: this transaction (the certificate included) rolls back
            raise Conflict("The request was decided by someone else at the same time.", code="already_decided")
        record_event(AuditAction.APPROVAL_APPROVE, **actor.audit_kwargs(), organization=locked.ca.organization,
                     target_type="issuance_approval", target_id=str(locked.pk), target_serial=certificate.serial,
                     details=_details(locked, certificate=certificate.pk))
        if locked.acme_order_id:
            _complete_acme_order(locked, certificate)
    return IssuanceApproval.objects.select_related("ca", "organization", "certificate").get(pk=approval.pk)


def reject(approval: IssuanceApproval, *, actor: Actor, reason: object) -> IssuanceApproval:
    """Refuse the request with a reason; nothing is issued."""
    reason = _checked_reason(reason)
    _require_decider(approval, actor)
    expire_due()
    now = timezone.now()
    with transaction.atomic():
        locked = IssuanceApproval.objects.select_for_update(of=("self",)).select_related("ca__organization") \
            .get(pk=approval.pk)
        _require_pending(locked, now)
        moved = IssuanceApproval.objects.filter(pk=locked.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.REJECTED, reason=reason, **_decider_fields(actor, now))
        if moved != 1:
            raise Conflict("The request was decided by someone else at the same time.", code="already_decided")
        record_event(AuditAction.APPROVAL_REJECT, **actor.audit_kwargs(), organization=locked.ca.organization,
                     target_type="issuance_approval", target_id=str(locked.pk),
                     details=_details(locked, reason=reason[:200]))
        if locked.acme_order_id:
            _fail_acme_order(locked, f"The certificate request was rejected: {reason[:200]}")
    return IssuanceApproval.objects.select_related("ca", "organization", "certificate").get(pk=approval.pk)


def expire_due(now: datetime | None = None) -> int:
    """Mark every pending request past its expiry as expired, one audited transaction each; return how many."""
    now = now or timezone.now()
    count = 0
    due = IssuanceApproval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now).values_list("pk",
                                                                                                        flat=True)
    for pk in list(due[:500]):
        with transaction.atomic():
            moved = IssuanceApproval.objects.filter(pk=pk, status=ApprovalStatus.PENDING).update(
                status=ApprovalStatus.EXPIRED, decided_by=SYSTEM, decided_at=now)
            if not moved:
                continue
            approval = IssuanceApproval.objects.select_related("ca__organization").get(pk=pk)
            record_event(AuditAction.APPROVAL_EXPIRE, actor_label=SYSTEM, organization=approval.ca.organization,
                         target_type="issuance_approval", target_id=str(pk), details=_details(approval))
            if approval.acme_order_id:
                _fail_acme_order(approval, "The certificate request expired before anyone approved it.")
            count += 1
    return count


# --- ACME orders waiting here (RFC 8555 7.1.6: processing -> valid or invalid) --------------------


def _complete_acme_order(approval: IssuanceApproval, certificate: Certificate) -> None:
    from acme_server.models import Order, OrderStatus

    Order.objects.filter(pk=approval.acme_order_id, status=OrderStatus.PROCESSING).update(
        status=OrderStatus.VALID, certificate=certificate)


def _fail_acme_order(approval: IssuanceApproval, detail: str) -> None:
    from acme_server.models import Order, OrderStatus

    Order.objects.filter(pk=approval.acme_order_id, status=OrderStatus.PROCESSING).update(
        status=OrderStatus.INVALID,
        error={"type": "urn:ietf:params:acme:error:unauthorized", "detail": detail, "status": 403})


# --- A CA's flag -----------------------------------------------------------------------------------


def set_ca_requires_approval(ca: CertificateAuthority, value: bool, *, actor: Actor) -> CertificateAuthority:
    """Turn two-person approval on or off for everything `ca` issues (admins: CREATE_CA's rule)."""
    require(actor, Action.CREATE_CA, ca)
    with transaction.atomic():
        CertificateAuthority.objects.filter(pk=ca.pk).update(requires_approval=bool(value))
        record_event(AuditAction.CA_APPROVAL_CHANGE, **actor.audit_kwargs(), organization=ca.organization,
                     target_type="ca", target_id=str(ca.pk), details={"ca": ca.slug, "requires_approval": bool(value)})
    ca.requires_approval = bool(value)
    return ca
