"""Writes for organizations, memberships, API keys and sessions. Interfaces (API, admin, commands,
pages, middleware) call these and stay thin.

* organizations: `create_organization`
* roles: `set_membership`, `ensure_member`, `sync_user_access` (is_staff/is_superuser/groups
  follow the role), `refresh_role_groups`
* API keys: `create_api_key` (the key is returned once), `provision_api_key` (a key for someone,
  creating the user with the role if missing: the command and an admin's API call), `revoke_api_key`,
  `authenticate_api_key`
* sessions: `open_session`, `close_session`, `authenticate_session_token`, `authenticate_bearer`

Every authentication failure raises `AuthenticationFailed`, whose message is always
"Invalid credentials."; the reason is kept apart for the log. Successful writes record
their audit event inside the same transaction (`organizations.audit_hooks`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from certificates.crypto.errors import CryptoError
from certificates.crypto.names import check_name_characters
from organizations import audit_hooks
from organizations.keys import DUMMY_HASH, generate_key, hash_matches, looks_like_api_key, parse_prefix
from organizations.models import ApiKey, Membership, Organization, SessionToken
from organizations.principal import Principal
from organizations.roles import Role
from organizations.tokens import InvalidToken, decode_session_token, encode_session_token
from pki_project.db import PreparedSelect

MAX_NAME_LENGTH = 200
LAST_USED_RESOLUTION_SECONDS = 60


class OrganizationError(ValueError):
    """The request to create or change an organization is not acceptable; the message says why."""

    def __init__(self, message: str, code: str = "invalid_organization") -> None:
        super().__init__(message)
        self.code = code


def clean_organization_name(name: str) -> str:
    """One line of visible text: no bidirectional control, invisible or control character (the rule of
    every name in the PKI, `certificates.crypto.names.check_name_characters`), at most MAX_NAME_LENGTH."""
    try:
        check_name_characters("An organization name", name or "")
    except CryptoError as error:
        raise OrganizationError(f"{error}.") from None
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise OrganizationError("An organization needs a name.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise OrganizationError(f"An organization name has at most {MAX_NAME_LENGTH} characters.")
    return cleaned


def clean_organization_slug(slug: str | None, name: str) -> str:
    cleaned = slugify(slug if slug else name)[:64].strip("-")
    if not cleaned:
        raise OrganizationError("The slug must contain letters or digits.", code="invalid_slug")
    if slug and cleaned != slug:
        raise OrganizationError(
            "A slug may contain only lower-case letters, digits and hyphens.", code="invalid_slug"
        )
    return cleaned


def create_organization(
    name: str, slug: str | None = None, *, request=None, principal: Principal | None = None, actor_label: str = ""
) -> Organization:
    """Create an organization; a duplicate name or slug is refused with a clear message."""
    name = clean_organization_name(name)
    slug = clean_organization_slug(slug, name)
    if Organization.objects.filter(slug=slug).exists():
        raise OrganizationError(f"An organization with the slug '{slug}' already exists.", code="duplicate")
    if Organization.objects.filter(name__iexact=name).exists():
        raise OrganizationError(f"An organization named '{name}' already exists.", code="duplicate")
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, slug=slug)
            audit_hooks.record(
                "ORGANIZATION_CREATE",
                request=request,
                principal=principal,
                actor_label=actor_label,
                organization_id=organization.pk,
                target_type="organization",
                target_id=str(organization.pk),
                details={"slug": slug, "name": name},
            )
            return organization
    except IntegrityError as error:  # a concurrent request won the race
        raise OrganizationError("That organization already exists.", code="duplicate") from error


# --- Users, roles and what the Django admin lets them do ---------------------------------


class IdentityError(ValueError):
    """A request about users, roles or API keys is not acceptable; the message says why."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class NotPermitted(IdentityError):
    """The caller's role or organization does not allow the request (a 403, where `IdentityError` is a 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="permission_denied")


class AuthenticationFailed(Exception):
    """Any authentication failure. Its message is always the same generic sentence."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(INVALID_CREDENTIALS)
        self.reason = reason  # for the server log and audit details only; never sent to a client


INVALID_CREDENTIALS = "Invalid credentials."
ROLE_GROUP_NAMES = {Role.ADMIN: "PKI admins", Role.MANAGER: "PKI managers", Role.USER: "PKI users"}
# Apps whose models the Django admin shows to the roles (plus, for each role, which actions).
_ROLE_PERMISSIONS: dict[Role, dict[str, tuple[str, ...]]] = {
    # An organization's admin: everything on certificates, keys of their organization
    # (change = the revoke action), read-only on the rest. Global admins are superusers.
    Role.ADMIN: {
        "certificates": ("add", "change", "delete", "view"),
        "organizations.apikey": ("change", "view"),
        "organizations": ("view",),
        "audit": ("view",),
    },
    # Certificate work in their organization.
    Role.MANAGER: {"certificates": ("add", "change", "view"), "organizations": ("view",), "audit": ("view",)},
    # Read-only.
    Role.USER: {"certificates": ("view",), "organizations.organization": ("view",)},
}


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise IdentityError(f"Unknown role '{value}': use one of admin, manager, user.", code="invalid_role") from None


def _role_permissions(role: Role):
    from django.contrib.auth.models import Permission

    wanted = Permission.objects.none()
    for scope, actions in _ROLE_PERMISSIONS[role].items():
        app_label, _, model = scope.partition(".")
        permissions = Permission.objects.filter(content_type__app_label=app_label)
        if model:
            permissions = permissions.filter(content_type__model=model)
        codenames = [p.codename for p in permissions if p.codename.split("_", 1)[0] in actions]
        wanted = wanted | permissions.filter(codename__in=codenames)
    return wanted


def refresh_role_groups() -> dict[Role, object]:
    """Create or update the three role groups with the permissions of the models installed now."""
    from django.contrib.auth.models import Group

    groups = {}
    for role, name in ROLE_GROUP_NAMES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_role_permissions(role))
        groups[role] = group
    return groups


def sync_user_access(user) -> None:
    """Make Django's own flags and permissions follow the user's membership.

    A global admin is a superuser; every other member is staff (may open the admin)
    in the group of their role; a user without membership gets no admin access.
    The admin's querysets are further scoped to the member's organization.
    """
    from django.contrib.auth.models import Group

    membership = Membership.objects.filter(user=user).first()
    role_groups = Group.objects.filter(name__in=ROLE_GROUP_NAMES.values())
    user.groups.remove(*role_groups)
    if membership is None:
        user.is_staff = user.is_superuser = False
    elif membership.is_global_admin:
        user.is_staff = user.is_superuser = True
    else:
        user.is_staff, user.is_superuser = True, False
        role = Role(membership.role)
        group = Group.objects.filter(name=ROLE_GROUP_NAMES[role]).first() or refresh_role_groups()[role]
        user.groups.add(group)
    user.save(update_fields=["is_staff", "is_superuser"])


def set_membership(user, role: Role | str, organization: Organization | None) -> Membership:
    """Give `user` a role (in `organization`, or globally for an admin without one)."""
    role = parse_role(str(role))
    if organization is None and role is not Role.ADMIN:
        raise IdentityError(f"A {role.value} needs an organization.", code="organization_required")
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(
            user=user, defaults={"role": role.value, "organization": organization}
        )
        sync_user_access(user)
    return membership


def ensure_member(username: str, role: Role | str, organization: Organization | None):
    """Return `(user, created)`: the user with this exact role and organization, created if missing.

    An existing user with a different role or organization is refused rather than
    silently changed.
    """
    from django.contrib.auth import get_user_model

    role = parse_role(str(role))
    username = (username or "").strip()
    if not username or len(username) > 150:
        raise IdentityError("A username has 1 to 150 characters.", code="invalid_username")
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.filter(username=username).first()
        if user is None:
            _validate_new_username(user_model, username)
            user = user_model(username=username)
            user.set_unusable_password()  # people sign in with API keys only
            user.save()
            set_membership(user, role, organization)
            return user, True
        membership = Membership.objects.filter(user=user).first()
        if membership is None:
            set_membership(user, role, organization)
        elif membership.role != role.value or membership.organization_id != (organization.pk if organization else None):
            where = membership.organization.slug if membership.organization_id else "every organization"
            raise IdentityError(
                f"User '{username}' already exists as {membership.role} of {where}; "
                "change the membership in the admin instead.",
                code="membership_conflict",
            )
        return user, False


def _validate_new_username(user_model, username: str) -> None:
    """Django's own rule for new names (letters, digits and @ . + - _): no spaces, controls or bidi tricks."""
    from django.core.exceptions import ValidationError

    try:
        user_model.username_validator(username)
    except ValidationError:
        raise IdentityError("A username may contain only letters, digits and @ . + - _.",
                            code="invalid_username") from None


def principal_for(membership: Membership, *, api_key_id: int | None = None, token_id: str | None = None) -> Principal:
    return Principal(
        user_id=membership.user_id,
        username=membership.user.get_username(),
        role=Role(membership.role),
        organization_id=membership.organization_id,
        api_key_id=api_key_id,
        token_id=token_id,
    )


# --- API keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    key: str  # the full key: give it to the caller once, never store or log it


def create_api_key(
    user, *, label: str = "", expires_at: datetime | None = None, request=None, principal: Principal | None = None,
    details: dict[str, object] | None = None, actor_label: str = "",
) -> CreatedApiKey:
    """Create a key for `user` (who must have a membership); the returned `key` is shown once.

    `details` adds to the audit event's details (never a secret).
    """
    label = " ".join((label or "").split())
    if len(label) > 100:
        raise IdentityError("A key label has at most 100 characters.", code="invalid_label")
    if expires_at is not None and expires_at <= timezone.now():
        raise IdentityError("A key's expiry must lie in the future.", code="invalid_expiry")
    membership = Membership.objects.filter(user=user).first()
    if membership is None:
        raise IdentityError(f"User '{user.get_username()}' has no role; give them one first.", code="no_membership")
    generated = generate_key()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            user=user, label=label, prefix=generated.prefix, key_hash=generated.key_hash, expires_at=expires_at
        )
        audit_hooks.record(
            "API_KEY_CREATE",
            request=request,
            principal=principal,
            actor_label=actor_label,
            organization_id=membership.organization_id,
            target_type="api_key",
            target_id=str(api_key.pk),
            details={"prefix": api_key.prefix, "user": user.get_username(), "label": label,
                     "expires_at": expires_at.isoformat() if expires_at else None, **(details or {})},
        )
    return CreatedApiKey(api_key=api_key, key=generated.key)


@dataclass(frozen=True)
class ProvisionedApiKey:
    created: CreatedApiKey
    user: object  # the Django user the key belongs to
    role: Role
    organization: Organization | None
    user_created: bool


def provision_api_key(
    username: str,
    role: Role | str,
    organization_slug: str | None = None,
    *,
    label: str = "",
    expires_at: datetime | None = None,
    request=None,
    principal: Principal | None = None,
    actor_label: str = "",
) -> ProvisionedApiKey:
    """A new key for `username`, who is created with `role` in the organization when missing.

    `principal` None is the operator at the console (`create_api_key` command), who may do
    anything. Otherwise only an admin may: a global admin for anyone, an organization's
    admin only inside their organization and never a global admin. The organization
    defaults to the caller's own (none for a global admin or the operator: a global
    admin). User and key are created in one transaction: a refused key leaves no user.
    """
    role = parse_role(str(role))
    _require_admin(principal)
    organization = _organization_for(organization_slug, principal)
    _require_may_grant(principal, organization)
    try:
        with transaction.atomic():
            user, user_created = _member_for(username, role, organization, principal)
            created = create_api_key(user, label=label, expires_at=expires_at, request=request, principal=principal,
                                     details={"role": role.value, "user_created": user_created},
                                     actor_label=actor_label)
    except IntegrityError:  # the same new username, created by a concurrent request
        raise IdentityError(f"User '{username.strip()}' was created at the same moment; try again.",
                            code="membership_conflict") from None
    return ProvisionedApiKey(created=created, user=user, role=role, organization=organization,
                             user_created=user_created)


def _require_admin(principal: Principal | None) -> None:
    if principal is not None and principal.role is not Role.ADMIN:
        raise NotPermitted("Only an admin may create API keys for other users.")


def _organization_for(slug: str | None, principal: Principal | None) -> Organization | None:
    """The organization named by `slug` among those `principal` sees (another one's is unknown to them)."""
    if not slug:
        if principal is None or principal.organization_id is None:
            return None  # a global admin
        return Organization.objects.get(pk=principal.organization_id)
    visible = Organization.objects.filter(slug=slug)
    if principal is not None and not principal.is_global_admin:
        visible = visible.filter(pk=principal.organization_id)
    organization = visible.first()
    if organization is None:
        raise IdentityError(f"No organization with the slug '{slug}'.", code="unknown_organization")
    return organization


def _require_may_grant(principal: Principal | None, organization: Organization | None) -> None:
    """An organization's admin grants roles in their own organization only: never a global admin."""
    if principal is None or principal.is_global_admin:
        return
    if organization is None or organization.pk != principal.organization_id:
        raise NotPermitted("An organization's admin may grant roles in their own organization only.")


def _member_for(username: str, role: Role, organization: Organization | None, principal: Principal | None):
    """`ensure_member`, whose refusal names the existing membership only to callers who may see it."""
    try:
        return ensure_member(username, role, organization)
    except IdentityError as error:
        if error.code != "membership_conflict" or principal is None or principal.is_global_admin:
            raise
        raise IdentityError(
            f"User '{username.strip()}' already exists with another role or organization.",
            code="membership_conflict",
        ) from None


def revoke_api_key(api_key: ApiKey, *, request=None, principal: Principal | None = None,
                   actor_label: str = "") -> bool:
    """Revoke the key and every session it opened. False when it was already revoked."""
    with transaction.atomic():
        now = timezone.now()
        changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
        if not changed:
            return False
        SessionToken.objects.filter(api_key=api_key, revoked_at__isnull=True).update(revoked_at=now)
        api_key.revoked_at = now
        membership = Membership.objects.filter(user_id=api_key.user_id).first()
        audit_hooks.record(
            "API_KEY_REVOKE",
            request=request,
            principal=principal,
            actor_label=actor_label,
            organization_id=membership.organization_id if membership else None,
            target_type="api_key",
            target_id=str(api_key.pk),
            details={"prefix": api_key.prefix},
        )
    return True


def _touch_last_used(api_key: ApiKey, now: datetime) -> None:
    """Record use at most once a minute per key, so reads do not all become writes."""
    stale = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or api_key.last_used_at < stale:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=stale)
        ).update(last_used_at=now)


# Every API request runs this lookup: compiled once (see pki_project.db.PreparedSelect). The
# prefix is unique, so no ORDER BY.
_API_KEY_BY_PREFIX = PreparedSelect(
    lambda prefix: ApiKey.objects.select_related("user", "user__membership").filter(prefix=prefix).order_by()[:1],
    str,
)


def authenticate_api_key(raw_key: str) -> tuple[ApiKey, Membership]:
    """Check a presented key in constant time; raise `AuthenticationFailed` for any problem.

    Usable means: well-formed, known prefix, matching hash, not revoked, not expired,
    and its user active with a membership.
    """
    prefix = parse_prefix(raw_key or "")
    api_key = next(iter(_API_KEY_BY_PREFIX.fetch(prefix)), None) if prefix else None
    # Always hash and compare, so an unknown prefix costs the same as a wrong secret.
    matches = hash_matches(raw_key or "", api_key.key_hash if api_key else DUMMY_HASH)
    if api_key is None or not matches:
        raise AuthenticationFailed("unknown key" if api_key is None else "wrong secret")
    now = timezone.now()
    if not api_key.is_usable(now):
        raise AuthenticationFailed("key revoked or expired")
    if not api_key.user.is_active:
        raise AuthenticationFailed("user inactive")
    membership = getattr(api_key.user, "membership", None)
    if membership is None:
        raise AuthenticationFailed("user has no membership")
    _touch_last_used(api_key, now)
    return api_key, membership


# --- Sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedSession:
    token: str  # the JWT: goes into the HttpOnly cookie and the response body, never a log
    jti: str
    expires_at: datetime
    principal: Principal


def open_session(api_key: ApiKey, membership: Membership, *, request=None) -> OpenedSession:
    """Issue a session JWT for an authenticated key and record the login."""
    now = timezone.now().replace(microsecond=0)
    expires_at = now + timedelta(seconds=settings.PKI_SESSION_TTL)
    jti = secrets.token_urlsafe(24)
    principal = principal_for(membership, api_key_id=api_key.pk, token_id=jti)
    with transaction.atomic():
        SessionToken.objects.filter(user_id=membership.user_id, expires_at__lt=now).delete()  # tidy up
        SessionToken.objects.create(jti=jti, user_id=membership.user_id, api_key=api_key, expires_at=expires_at)
        audit_hooks.record(
            "LOGIN",
            request=request,
            principal=principal,
            organization_id=membership.organization_id,
            target_type="session",
            target_id=jti,
            actor_label=api_key.prefix,
            details={"api_key_prefix": api_key.prefix},
        )
    token = encode_session_token(
        user_id=membership.user_id,
        role=membership.role,
        organization_id=membership.organization_id,
        jti=jti,
        issued_at=now,
        expires_at=expires_at,
    )
    return OpenedSession(token=token, jti=jti, expires_at=expires_at, principal=principal)


def record_failed_login(*, request=None, prefix: str | None, reason: str) -> None:
    """A refused login, recorded on its own (no transaction to join)."""
    audit_hooks.record(
        "LOGIN",
        request=request,
        outcome="failure",
        actor_label=prefix or "",
        details={"reason": reason},
    )


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    user: object  # the Django user, for `request.user` and the admin


def authenticate_bearer(credential: str) -> Authenticated:
    """A Bearer credential: an API key (`pki_…`) or a session JWT. Raises `AuthenticationFailed`."""
    if looks_like_api_key(credential):
        api_key, membership = authenticate_api_key(credential)
        return Authenticated(principal_for(membership, api_key_id=api_key.pk), membership.user)
    return authenticate_session_token(credential)


def authenticate_session_token(token: str) -> Authenticated:
    """Verify a session JWT and its database row; raise `AuthenticationFailed` otherwise.

    The row, its key and its user are read on every request: logout, key revocation
    or expiry, and user deactivation take effect on the very next request.
    """
    try:
        claims = decode_session_token(token)
    except InvalidToken as error:
        raise AuthenticationFailed(f"invalid token ({error})") from None
    session = (
        SessionToken.objects.select_related("user", "user__membership", "api_key")
        .filter(jti=claims["jti"])
        .first()
    )
    now = timezone.now()
    if session is None or str(session.user_id) != claims["sub"]:
        raise AuthenticationFailed("unknown session")
    if session.revoked_at is not None or session.expires_at <= now:
        raise AuthenticationFailed("session ended")
    if not session.api_key.is_usable(now) or session.api_key.user_id != session.user_id:
        raise AuthenticationFailed("key revoked or expired")
    if not session.user.is_active:
        raise AuthenticationFailed("user inactive")
    membership = getattr(session.user, "membership", None)
    if membership is None:
        raise AuthenticationFailed("user has no membership")
    return Authenticated(principal_for(membership, api_key_id=session.api_key_id, token_id=session.jti), session.user)


def close_session(jti: str, *, request=None, principal: Principal | None = None) -> bool:
    """Log out: the token with this `jti` is refused from now on. False when nothing was open."""
    with transaction.atomic():
        changed = SessionToken.objects.filter(jti=jti, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            audit_hooks.record(
                "LOGOUT",
                request=request,
                principal=principal,
                organization_id=principal.organization_id if principal else None,
                target_type="session",
                target_id=jti,
            )
    return bool(changed)
