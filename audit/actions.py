"""The closed list of things the audit trail records.

Values are dotted (`domain.verb`) so a reader can filter by prefix (`certificate.`)
and so the stored value never depends on a Python identifier.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    LOGIN = "auth.login"
    LOGOUT = "auth.logout"
    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    ORGANIZATION_CREATE = "organization.create"
    CA_CREATE = "ca.create"
    CA_UNLOCK = "ca.unlock"  # recorded on failures of the root password
    CERTIFICATE_ISSUE = "certificate.issue"
    CERTIFICATE_RENEW = "certificate.renew"
    CERTIFICATE_REVOKE = "certificate.revoke"
    CRL_GENERATE = "crl.generate"
    CERTIFICATE_DOWNLOAD = "certificate.download"
    PKCS12_PASSWORD_REVEAL = "certificate.pkcs12_password_reveal"  # noqa: S105 (an action name)
    BACKUP_CREATE = "backup.create"
    BACKUP_RESTORE = "backup.restore"
    ENCRYPTION_KEY_ROTATE = "encryption_key.rotate"
    RBAC_DENY = "rbac.deny"
    # Certificate profiles as data: every change of what certificates contain.
    PROFILE_CREATE = "profile.create"
    PROFILE_CHANGE = "profile.change"
    PROFILE_DELETE = "profile.delete"
    # Roles: every change of who may do what (users, memberships, organizations).
    USER_CREATE = "user.create"
    USER_CHANGE = "user.change"
    USER_ACTIVATE = "user.activate"
    USER_DEACTIVATE = "user.deactivate"
    USER_DELETE = "user.delete"
    MEMBERSHIP_CREATE = "membership.create"
    MEMBERSHIP_CHANGE = "membership.change"
    MEMBERSHIP_DELETE = "membership.delete"
    ORGANIZATION_RENAME = "organization.rename"
    ORGANIZATION_DELETE = "organization.delete"
    # Login limits and denials on the record (audit.denials): a refusal outside rbac.json
    # (403, 404 on a route that needs a sign-in, 429), and the note that a caller's refusals of
    # one kind went past the per-window budget (when it starts, then how many were left out).
    ACCESS_DENY = "access.deny"
    ACCESS_DENY_SUPPRESSED = "access.deny_suppressed"
    # Expiry notifications (certificates.services.notifications): targets, and every delivery attempt.
    NOTIFICATION_TARGET_CREATE = "notification_target.create"
    NOTIFICATION_TARGET_CHANGE = "notification_target.change"
    NOTIFICATION_TARGET_DELETE = "notification_target.delete"
    NOTIFICATION_SEND = "notification.send"
    # ACME (acme_server): the account is the actor (actor_label "acme:<account name>").
    ACME_EAB_CREATE = "acme.eab_create"
    ACME_EAB_REVOKE = "acme.eab_revoke"
    ACME_ACCOUNT_CREATE = "acme.account_create"
    ACME_ACCOUNT_UPDATE = "acme.account_update"
    ACME_ACCOUNT_DEACTIVATE = "acme.account_deactivate"
    ACME_ACCOUNT_KEY_CHANGE = "acme.account_key_change"
    ACME_ORDER_CREATE = "acme.order_create"
    ACME_AUTHORIZATION_DEACTIVATE = "acme.authorization_deactivate"
    ACME_CHALLENGE_VALIDATE = "acme.challenge_validate"
    ACME_ORDER_FINALIZE = "acme.order_finalize"
    ACME_CERTIFICATE_REVOKE = "acme.certificate_revoke"
    # Enrollment tokens and EST (enrollment): staff create and revoke one-time tokens; a machine uses one
    # (the certificate's own certificate.issue event follows in the same transaction); every refused
    # use is a failure event naming why (never the token itself).
    ENROLLMENT_TOKEN_CREATE = "enrollment_token.create"  # noqa: S105 (an action name)
    ENROLLMENT_TOKEN_REVOKE = "enrollment_token.revoke"  # noqa: S105 (an action name)
    ENROLLMENT_TOKEN_USE = "enrollment_token.use"  # noqa: S105 (an action name)
    ENROLLMENT_REFUSE = "enrollment.refuse"
    # Client-certificate (mTLS) sign-in: staff bind a certificate to the member who signs in with it.
    CLIENT_CERTIFICATE_BIND = "client_certificate.bind"
    CLIENT_CERTIFICATE_UNBIND = "client_certificate.unbind"
    # Two-person approval of issuance (approvals): the request waits, then one decision or its expiry.
    APPROVAL_REQUEST = "approval.request"
    APPROVAL_APPROVE = "approval.approve"
    APPROVAL_REJECT = "approval.reject"
    APPROVAL_EXPIRE = "approval.expire"
    CA_APPROVAL_CHANGE = "ca.approval_change"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
