"""Creating, revoking and recognising one-time enrollment tokens.

A token reads `et_<token id>_<secret>`: the id (16 hex digits) finds the row, the SHA-256 of the
whole token is compared with the stored one in constant time. A token that is unknown, wrong,
used, revoked or expired is refused with one generic message; the audit event says which.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.errors import InvalidInput, NotFound, PermissionRefused, ServiceError
from certificates.models import CertificateAuthority, CertificateProfile
from enrollment.models import EnrollmentToken
from enrollment.services.names import NamePattern, parse_pattern, parse_patterns
from organizations.models import Organization
from organizations.roles import Role
from pki_project.actor import Actor

TOKEN_PREFIX = "et_"  # noqa: S105  (the tokens' prefix, not a secret)
DEFAULT_LIFETIME = timedelta(hours=24)
MAX_LIFETIME = timedelta(days=90)
TOKEN_MANAGERS = frozenset({Role.ADMIN, Role.MANAGER})
_ID_LENGTH = 16
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class TokenRefused(ServiceError):
    """The token does not authenticate: one message for every reason (the reason goes to the audit trail)."""

    status = 401
    default_code = "invalid_token"

    def __init__(self, reason: str, token: EnrollmentToken | None = None) -> None:
        super().__init__("The enrollment token was not accepted.")
        self.reason = reason
        self.token = token


@dataclass(frozen=True)
class CreatedToken:
    token: EnrollmentToken
    secret: str  # the whole token, shown this once


def hash_token(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def check_may_manage(actor: Actor, organization_id: int) -> None:
    """Admins and managers manage their organization's tokens; a global admin any organization's."""
    if actor.is_operator:
        return
    principal = actor.principal
    if principal is None or not principal.can_see_organization(organization_id):
        raise NotFound("Not found.")
    if principal.role not in TOKEN_MANAGERS:
        raise PermissionRefused("Only a manager or an admin may manage enrollment tokens.")


def _issuing_ca(ca: CertificateAuthority, organization: Organization) -> CertificateAuthority:
    if ca.organization_id != organization.pk:
        raise InvalidInput("That CA belongs to another organization.", code="ca_not_in_organization")
    if ca.is_root:
        raise InvalidInput("Enrollment issues from intermediate CAs: bind the token to one of them.",
                           code="root_cannot_issue")
    return ca


def _profile(name: object, organization: Organization) -> CertificateProfile:
    """A profile named (or given as a row) that the organization's CAs may issue with: global or its own."""
    if isinstance(name, CertificateProfile):
        name = name.name if name.organization_id in (None, organization.pk) else None
    row = None
    if isinstance(name, str) and name:
        row = CertificateProfile.objects.filter(Q(organization__isnull=True) | Q(organization=organization),
                                                name=name).first()
    if row is None:
        raise InvalidInput(f"No profile '{str(name)[:64]}' for this organization.", code="unknown_profile")
    if not row.enabled:
        raise InvalidInput(f"The profile '{row.name}' is disabled.", code="profile_disabled")
    return row


def _lifetime(expires_in: object) -> timedelta:
    if expires_in is None:
        return DEFAULT_LIFETIME
    if not isinstance(expires_in, timedelta):
        if not isinstance(expires_in, int) or isinstance(expires_in, bool):
            raise InvalidInput("expires_in is a number of seconds.", code="invalid_expires_in")
        expires_in = timedelta(seconds=expires_in)
    if not timedelta(minutes=1) <= expires_in <= MAX_LIFETIME:
        raise InvalidInput(f"A token lives between one minute and {MAX_LIFETIME.days} days.",
                           code="invalid_expires_in")
    return expires_in


def create_token(organization: Organization, *, ca: CertificateAuthority, profile: str | CertificateProfile,
                 san_patterns: object, actor: Actor, expires_in: timedelta | int | None = None,
                 label: str = "") -> CreatedToken:
    """A new one-time token; its text is in the result only (the row keeps its hash)."""
    check_may_manage(actor, organization.pk)
    _issuing_ca(ca, organization)
    profile_row = _profile(profile, organization)
    patterns = [str(pattern) for pattern in parse_patterns(san_patterns)]
    lifetime = _lifetime(expires_in)
    if not isinstance(label, str) or len(label) > 100:
        raise InvalidInput("The label has at most 100 characters.", code="invalid_label")
    token_id = secrets.token_hex(_ID_LENGTH // 2)
    text = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = timezone.now()
    with transaction.atomic():
        token = EnrollmentToken.objects.create(
            token_id=token_id, secret_sha256=hash_token(text), organization=organization, ca=ca, profile=profile_row,
            san_patterns=patterns, label=label, created_by=actor.username, created_at=now, expires_at=now + lifetime)
        record_event(AuditAction.ENROLLMENT_TOKEN_CREATE, **actor.audit_kwargs(), organization=organization,
                     target_type="enrollment_token", target_id=token_id,
                     details={"ca": ca.slug, "profile": profile_row.name, "san_patterns": patterns,
                              "expires_at": token.expires_at, "label": label})
    return CreatedToken(token, text)


def revoke_token(token: EnrollmentToken, *, actor: Actor) -> EnrollmentToken:
    """A revoked token enrolls nothing more; one already used keeps its certificate (revoke that separately)."""
    check_may_manage(actor, token.organization_id)
    with transaction.atomic():
        if not EnrollmentToken.objects.filter(pk=token.pk, revoked_at__isnull=True, used_at__isnull=True).update(
                revoked_at=timezone.now()):
            token.refresh_from_db()
            raise InvalidInput(f"That enrollment token is already {token.state}.", code=f"already_{token.state}")
        record_event(AuditAction.ENROLLMENT_TOKEN_REVOKE, **actor.audit_kwargs(),
                     organization_id=token.organization_id, target_type="enrollment_token",
                     target_id=token.token_id)
    token.refresh_from_db()
    return token


def _split(text: object) -> str | None:
    """The token id of a well-formed token text, else None."""
    if not isinstance(text, str) or not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    token_id, sep, secret = text[len(TOKEN_PREFIX):].partition("_")
    if not sep or len(token_id) != _ID_LENGTH or not secret:
        return None
    return token_id


def recognise_token(text: object) -> EnrollmentToken:
    """The usable token `text` names, or `TokenRefused` (unknown, wrong secret, used, revoked or expired).

    Its hash is compared in constant time, against a dummy when the id is unknown, so the answer
    takes as long either way.
    """
    token_id = _split(text)
    token = (EnrollmentToken.objects.select_related("organization", "ca", "ca__certificate", "profile")
             .filter(token_id=token_id).first() if token_id else None)
    given = hash_token(text) if isinstance(text, str) else ""
    if not hmac.compare_digest(token.secret_sha256 if token else _DUMMY_HASH, given) or token is None:
        raise TokenRefused("unknown token" if token is None else "wrong secret",
                           token if token is not None else None)
    if token.state != "usable":
        raise TokenRefused(f"token {token.state}", token)
    return token


def token_patterns(token: EnrollmentToken) -> list[NamePattern]:
    return [parse_pattern(raw) for raw in token.san_patterns]
