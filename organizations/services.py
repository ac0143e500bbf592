"""Writes for organizations, memberships, API keys and sessions. Interfaces (API, admin, commands,
pages, middleware) call these and stay thin.

* organizations: `create_organization`, `rename_organization`, `delete_organization`
* users: `add_user`, `change_user` (profile and active flag), `delete_user`
* roles: `set_membership`, `delete_membership`, `ensure_member`, `sync_user_access`
  (is_staff/is_superuser/groups follow the role, and nothing else may set them), `refresh_role_groups`
* who may change whose access: `may_manage_access`, `may_change_access_of`, `check_membership_change`
* API keys: `create_api_key` (the key is returned once; a `KeyScope` limits the CAs, profiles and
  validity it may issue with), `provision_api_key` (a key for someone,
  creating the user with the role if missing: the command and an admin's API call), `revoke_api_key`,
  `authenticate_api_key`
* sessions: `open_session`, `open_certificate_session` (mTLS, `organizations.client_certificates`),
  `close_session`, `authenticate_session_token`, `authenticate_bearer`

Every authentication failure raises `AuthenticationFailed`, whose message is always
"Invalid credentials."; the reason is kept apart for the log. Successful writes record
their audit event inside the same transaction (`organizations.audit_hooks`), with the
values before and after the change in its details.

The rules about access live here, so the admin, the API, the pages and the commands
meet the same ones: users, memberships and organizations are changed by a
global admin (or the operator at the console); nobody changes their own membership or
deactivates or deletes their own account; an organization's admin only gives a first
membership in their own organization when provisioning a key, and names a new user
`NAME@<their slug>` so that nothing they are told depends on other organizations' users.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from certificates.crypto.errors import CryptoError
from certificates.crypto.names import check_name_characters, refused_character
from kernel.errors import InvalidInput
from organizations import audit_hooks
from organizations.keys import DUMMY_HASH, generate_key, hash_matches, looks_like_api_key, parse_prefix
from organizations.models import ApiKey, Membership, Organization, SessionToken
from organizations.principal import Principal
from organizations.roles import Role
from organizations.tokens import InvalidToken, decode_session_token, encode_session_token
from pki_project.actor import Actor
from pki_project.db import PreparedSelect

MAX_NAME_LENGTH = 200
LAST_USED_RESOLUTION_SECONDS = 60


class OrganizationError(InvalidInput):
    """The request to create or change an organization is not acceptable; the message says why.

    The field at fault is the slug for the slug's codes, else the name.
    """

    default_code = "invalid_organization"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code)
        self.field = "slug" if "slug" in self.code else "name"


class DuplicateOrganization(OrganizationError):
    """The name or slug is taken (409 `duplicate`)."""

    status = 409
    default_code = "duplicate"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = None


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
    """Create an organization (global admins and the operator); a duplicate name or slug is refused."""
    if not may_manage_access(principal):
        raise NotPermitted("Only a global admin creates organizations.")
    name = clean_organization_name(name)
    slug = clean_organization_slug(slug, name)
    if Organization.objects.filter(slug=slug).exists():
        raise DuplicateOrganization(f"An organization with the slug '{slug}' already exists.")
    if Organization.objects.filter(name__iexact=name).exists():
        raise DuplicateOrganization(f"An organization named '{name}' already exists.")
    _require_slug_names_no_member_elsewhere(slug)
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
        raise DuplicateOrganization("That organization already exists.") from error


def _require_slug_names_no_member_elsewhere(slug: str) -> None:
    """A new organization owns the usernames `NAME@<slug>`: none may already be a member somewhere else."""
    from django.contrib.auth import get_user_model

    if get_user_model().objects.filter(username__iendswith=f"@{slug}", membership__isnull=False).exists():
        raise OrganizationError(f"Users named like name@{slug} already belong to other organizations; "
                                "choose another slug.", code="invalid_slug")


def rename_organization(organization: Organization, name: str, *, actor: Actor) -> Organization:
    """Give an organization a new display name (its slug never changes: scripts and usernames rely on it)."""
    _require_may_manage(actor)
    name = clean_organization_name(name)
    try:
        with transaction.atomic():
            current = Organization.objects.select_for_update().get(pk=organization.pk)
            if current.name == name:
                return current
            if Organization.objects.filter(name__iexact=name).exclude(pk=current.pk).exists():
                raise DuplicateOrganization(f"An organization named '{name}' already exists.")
            before, current.name = current.name, name
            current.save(update_fields=["name"])
            audit_hooks.record("ORGANIZATION_RENAME", **actor.audit_kwargs(), organization=current,
                               target_type="organization", target_id=str(current.pk),
                               details={"slug": current.slug, "before": {"name": before}, "after": {"name": name}})
            return current
    except IntegrityError as error:  # the same name, given at the same moment to another organization
        raise DuplicateOrganization("That organization name is taken.") from error


def delete_organization(organization: Organization, *, actor: Actor) -> None:
    """Delete an organization that holds nothing: members, CAs and certificates protect it."""
    _require_may_manage(actor)
    try:
        with transaction.atomic():
            current = Organization.objects.select_for_update().filter(pk=organization.pk).first()
            if current is None:
                return
            audit_hooks.record("ORGANIZATION_DELETE", **actor.audit_kwargs(), organization=current,
                               target_type="organization", target_id=str(current.pk),
                               details={"slug": current.slug, "before": {"name": current.name, "slug": current.slug},
                                        "after": None})
            current.delete()
    except ProtectedError:
        raise OrganizationError(f"The organization '{organization.slug}' still has members, CAs or certificates; "
                                "it cannot be deleted.", code="in_use") from None


# --- Users, roles and what the Django admin lets them do ---------------------------------


#: The request field each identity refusal is about (the API names it in `fields`).
IDENTITY_ERROR_FIELDS = {"invalid_username": "user", "username_realm": "user", "invalid_role": "role",
                         "organization_required": "organization", "invalid_label": "label",
                         "invalid_expiry": "expires_days", "invalid_allowed_ca": "allowed_cas",
                         "invalid_allowed_profile": "allowed_profiles", "invalid_max_validity": "max_validity_days"}


class IdentityError(InvalidInput):
    """A request about users, roles or API keys is not acceptable; the message says why (a 400 naming the field)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code)
        self.field = IDENTITY_ERROR_FIELDS.get(self.code, "non_field_errors")


class NotPermitted(IdentityError):
    """The caller's role or organization does not allow the request (a 403, where `IdentityError` is a 400)."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__(message, code="permission_denied")
        self.field = None


class UnknownOrganization(IdentityError):
    """No such organization, or one the caller may not see: a remote client learns only "not found"."""

    status = 404
    client_message = "Not found."

    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_found")
        self.field = None


class MembershipConflict(IdentityError):
    """The user exists with another role or organization (or was created at the same moment)."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message, code="membership_conflict")
        self.field = None


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
        # Client-certificate (mTLS) sign-in: bind (add) and unbind (delete) their organization's certificates.
        "organizations.clientcertificatebinding": ("add", "delete", "view"),
        "organizations": ("view",),
        "audit": ("view",),
        # ACME: external account keys are created (add) and revoked (change) here; the rest is read.
        "acme_server.externalaccountkey": ("add", "change", "view"),
        "acme_server": ("view",),
        # Enrollment tokens: created (add) and revoked (change) here.
        "enrollment.enrollmenttoken": ("add", "change", "view"),
    },
    # Certificate work in their organization.
    Role.MANAGER: {"certificates": ("add", "change", "view"), "organizations": ("view",), "audit": ("view",),
                   "acme_server.externalaccountkey": ("add", "change", "view"), "acme_server": ("view",),
                   "enrollment.enrollmenttoken": ("add", "change", "view")},
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


_SYNCING_ACCESS: ContextVar[bool] = ContextVar("pki_syncing_access", default=False)


@contextmanager
def _syncing_access() -> Iterator[None]:
    token = _SYNCING_ACCESS.set(True)
    try:
        yield
    finally:
        _SYNCING_ACCESS.reset(token)


def access_flags(membership: Membership | None) -> tuple[bool, bool]:
    """`(is_staff, is_superuser)` for a membership: a global admin is a superuser, every member staff."""
    if membership is None:
        return False, False
    return True, membership.is_global_admin


def sync_user_access(user) -> None:
    """Make Django's own flags and permissions follow the user's membership.

    A global admin is a superuser; every other member is staff (may open the admin)
    in the group of their role; a user without membership gets no admin access.
    The admin's querysets are further scoped to the member's organization. This is the
    only code that may change a user's groups (`refuse_direct_access_changes`), and the
    flags are derived again on every save (`derive_access_flags`).
    """
    from django.contrib.auth.models import Group

    membership = Membership.objects.filter(user=user).first()
    role_groups = Group.objects.filter(name__in=ROLE_GROUP_NAMES.values())
    with _syncing_access():
        user.groups.remove(*role_groups)
        if membership is not None and not membership.is_global_admin:
            role = Role(membership.role)
            group = Group.objects.filter(name=ROLE_GROUP_NAMES[role]).first() or refresh_role_groups()[role]
            user.groups.add(group)
    user.is_staff, user.is_superuser = access_flags(membership)
    user.save(update_fields=["is_staff", "is_superuser"])


def derive_access_flags(sender, instance, raw: bool = False, **kwargs) -> None:
    """`pre_save` of the user model: is_staff and is_superuser come from the membership, whoever saves.

    A form, an admin POST, a shell or `createsuperuser` setting them otherwise is overruled
    (roles come only from memberships). Raw saves (fixtures) are left alone.
    """
    if raw:
        return
    membership = Membership.objects.filter(user_id=instance.pk).first() if instance.pk else None
    instance.is_staff, instance.is_superuser = access_flags(membership)


def refuse_direct_access_changes(sender, instance, action: str, **kwargs) -> None:
    """`m2m_changed` of the user's groups and permissions: only `sync_user_access` changes groups, nothing
    grants a user a permission of their own."""
    if action.startswith("pre_") and not _SYNCING_ACCESS.get():
        raise IdentityError("Groups and permissions follow the membership's role; change the membership instead.",
                            code="access_follows_role")


# --- Who may change whose access ------------------------------------------------------

SELF_CHANGE_REFUSED = "Nobody changes their own role, organization or account; another global admin must."
USER_PROFILE_FIELDS = ("first_name", "last_name", "email")
PROFILE_FIELD_LENGTHS = {"first_name": 150, "last_name": 150, "email": 254}


def may_manage_access(principal: Principal | None) -> bool:
    """Users, memberships and organizations are changed by a global admin, or the operator (`principal` None)."""
    return principal is None or principal.is_global_admin


def may_change_access_of(principal: Principal | None, user_id: int | None) -> bool:
    """`may_manage_access`, and not on one's own account: a global admin's role is changed by another one."""
    return may_manage_access(principal) and not _is_self(principal, user_id)


def _is_self(principal: Principal | None, user_id: int | None) -> bool:
    return principal is not None and user_id is not None and principal.user_id == user_id


def _require_may_manage(actor: Actor) -> None:
    if not may_manage_access(actor.principal):
        raise NotPermitted("Only a global admin changes users, memberships and organizations.")


def _require_not_self(actor: Actor, user_id: int | None) -> None:
    if _is_self(actor.principal, user_id):
        raise NotPermitted(SELF_CHANGE_REFUSED)


def _is_first_membership_in_own_organization(principal: Principal | None, current: Membership | None,
                                             organization: Organization | None) -> bool:
    """An organization's admin provisioning a key gives a user without a role a role in their organization."""
    return (principal is not None and principal.role is Role.ADMIN and current is None
            and organization is not None and organization.pk == principal.organization_id)


def realm_of(username: str) -> str | None:
    """What follows the last "@" of a username, lower-cased: the slug of the organization that owns the name."""
    local, at, realm = (username or "").rpartition("@")
    return realm.lower() if at and local and realm else None


def require_username_fits_organization(username: str, organization: Organization | None) -> None:
    """A username `NAME@<slug>` of an existing organization is a member of that organization or of none.

    This keeps the names an organization's admin may create (`NAME@<their slug>`) from ever
    belonging to another organization, so provisioning tells them nothing about others.
    """
    realm = realm_of(username)
    if realm is None:
        return
    owner = Organization.objects.filter(slug=realm).first()
    if owner is not None and (organization is None or organization.pk != owner.pk):
        raise IdentityError(f"A username ending in @{owner.slug} belongs to the organization '{owner.slug}' only.",
                            code="username_realm")


def check_membership_change(user, role: Role | str, organization: Organization | None, *, actor: Actor) -> Role:
    """Raise unless `actor` may give `user` this role and organization; return the role.

    The admin's forms call it before saving; `set_membership` calls it again inside its transaction.
    """
    current = Membership.objects.filter(user_id=user.pk).first() if user.pk else None
    return _check_membership_change(user, role, organization, actor, current)


def _check_membership_change(user, role: Role | str, organization: Organization | None, actor: Actor,
                             current: Membership | None) -> Role:
    role = parse_role(str(role))
    if organization is None and role is not Role.ADMIN:
        raise IdentityError(f"A {role.value} needs an organization.", code="organization_required")
    _require_not_self(actor, user.pk)
    if not (may_manage_access(actor.principal)
            or _is_first_membership_in_own_organization(actor.principal, current, organization)):
        raise NotPermitted("Only a global admin changes memberships.")
    require_username_fits_organization(user.get_username(), organization)
    return role


def membership_facts(membership: Membership | None) -> dict[str, object] | None:
    """What an audit event says about a membership: its role and organization slug (None: global)."""
    if membership is None:
        return None
    return {"role": membership.role,
            "organization": membership.organization.slug if membership.organization_id else None}


def set_membership(user, role: Role | str, organization: Organization | None, *, actor: Actor) -> Membership:
    """Give `user` a role (in `organization`, or globally for an admin without one); audited, a no-op when equal.

    `membership.create` or `membership.change` (before and after) is recorded in the same
    transaction, under the organization after the change (the one before, for a global admin).
    """
    with transaction.atomic():
        current = Membership.objects.select_for_update().filter(user_id=user.pk).first()
        role = _check_membership_change(user, role, organization, actor, current)
        before, before_organization_id = membership_facts(current), current.organization_id if current else None
        if current is None:
            membership = Membership.objects.create(user=user, role=role.value, organization=organization)
        else:
            membership = current
            membership.role, membership.organization = role.value, organization
            if membership_facts(membership) != before:
                membership.save(update_fields=["role", "organization"])
        sync_user_access(user)
        after = membership_facts(membership)
        if after != before:
            audit_hooks.record("MEMBERSHIP_CREATE" if current is None else "MEMBERSHIP_CHANGE",
                               **actor.audit_kwargs(),
                               organization_id=membership.organization_id or before_organization_id,
                               target_type="membership", target_id=str(membership.pk),
                               details={"user": user.get_username(), "before": before, "after": after})
    return membership


def delete_membership(membership: Membership, *, actor: Actor) -> None:
    """Take a user's role away (they can no longer sign in); never one's own."""
    _require_may_manage(actor)
    _require_not_self(actor, membership.user_id)
    with transaction.atomic():
        current = Membership.objects.select_for_update().select_related("user").filter(pk=membership.pk).first()
        if current is None:
            return
        audit_hooks.record("MEMBERSHIP_DELETE", **actor.audit_kwargs(), organization_id=current.organization_id,
                           target_type="membership", target_id=str(current.pk),
                           details={"user": current.user.get_username(), "before": membership_facts(current),
                                    "after": None})
        current.delete()
        sync_user_access(current.user)


def ensure_member(username: str, role: Role | str, organization: Organization | None, *, actor: Actor):
    """Return `(user, created)`: the user with this exact role and organization, created if missing.

    An existing user with a different role or organization is refused rather than
    silently changed (and one's own membership is never changed this way).
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
            return add_user(user_model(username=username), role, organization, actor=actor), True
        membership = Membership.objects.filter(user=user).first()
        if membership is None:
            set_membership(user, role, organization, actor=actor)
        elif membership.role != role.value or membership.organization_id != (organization.pk if organization else None):
            _require_not_self(actor, user.pk)
            where = membership.organization.slug if membership.organization_id else "every organization"
            raise MembershipConflict(
                f"User '{username}' already exists as {membership.role} of {where}; "
                "change the membership in the admin instead.",
            )
        return user, False


# --- Users: created with their membership, changed and deleted through these only ----------------


def _validate_new_username(user_model, username: str) -> None:
    """Django's own rule for new names (letters, digits and @ . + - _): no spaces, controls or bidi tricks."""
    from django.core.exceptions import ValidationError

    try:
        user_model.username_validator(username)
    except ValidationError:
        raise IdentityError("A username may contain only letters, digits and @ . + - _.",
                            code="invalid_username") from None


def clean_user_profile(changes: dict[str, object]) -> dict[str, str]:
    """Names with single spaces and no hidden characters, a valid e-mail address (or none), within Django's lengths."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    cleaned: dict[str, str] = {}
    for name, value in changes.items():
        text = " ".join(str(value or "").split())
        if refused_character(str(value or "")) is not None:  # the one rule of names (certificates.crypto.names)
            raise IdentityError(f"The {name.replace('_', ' ')} may not contain control or unassigned characters.",
                                code="invalid_profile")
        if len(text) > PROFILE_FIELD_LENGTHS[name]:
            raise IdentityError(f"The {name.replace('_', ' ')} has at most {PROFILE_FIELD_LENGTHS[name]} characters.",
                                code="invalid_profile")
        if name == "email" and text:
            try:
                validate_email(text)
            except ValidationError:
                raise IdentityError("Enter a valid e-mail address.", code="invalid_profile") from None
        cleaned[name] = text
    return cleaned


def user_facts(user, names: tuple[str, ...] = (*USER_PROFILE_FIELDS, "is_active")) -> dict[str, object]:
    """What an audit event says about a user: profile fields and the active flag (never a password hash)."""
    return {name: getattr(user, name) for name in names}


def _membership_organization_id(user_id: int) -> int | None:
    return Membership.objects.filter(user_id=user_id).values_list("organization_id", flat=True).first()


def add_user(user, role: Role | str, organization: Organization | None, *, actor: Actor):
    """Save the new `user` (an unsaved instance with its username and profile) with its first membership.

    One transaction records `user.create` and `membership.create`. People sign in with
    API keys only, so the password is unusable; the flags and groups come from the role.
    """
    from django.contrib.auth import get_user_model

    username = (user.get_username() or "").strip()
    _validate_new_username(get_user_model(), username)
    check_membership_change(user, role, organization, actor=actor)
    profile = clean_user_profile({name: getattr(user, name) for name in USER_PROFILE_FIELDS})
    with transaction.atomic():
        user.username = username
        for name, value in profile.items():
            setattr(user, name, value)
        user.set_unusable_password()  # people sign in with API keys only
        user.save()
        audit_hooks.record("USER_CREATE", **actor.audit_kwargs(), organization=organization,
                           target_type="user", target_id=str(user.pk),
                           details={"username": username, "before": None, "after": user_facts(user)})
        set_membership(user, role, organization, actor=actor)
    return user


def change_user(user, *, actor: Actor, **changes: object) -> list[str]:
    """Change a user's profile (`first_name`, `last_name`, `email`) and `is_active`; return what changed.

    Nothing else may change: roles come from memberships, usernames stay what the audit
    trail knows them by, and there is no password. `user.change` records the profile's
    before and after; `user.activate` / `user.deactivate` the flag (a deactivated user's
    sessions end on their next request). Nobody deactivates themself.
    """
    from django.contrib.auth import get_user_model

    unknown = sorted(set(changes) - {*USER_PROFILE_FIELDS, "is_active"})
    if unknown:
        raise IdentityError(f"Not changeable here: {', '.join(unknown)}. Roles come from memberships.",
                            code="not_changeable")
    _require_may_manage(actor)
    wanted: dict[str, object] = clean_user_profile({k: v for k, v in changes.items() if k in USER_PROFILE_FIELDS})
    if "is_active" in changes:
        wanted["is_active"] = bool(changes["is_active"])
    with transaction.atomic():
        current = get_user_model().objects.select_for_update().get(pk=user.pk)
        changed = [name for name, value in wanted.items() if getattr(current, name) != value]
        if "is_active" in changed:
            _require_not_self(actor, current.pk)
        if not changed:
            return []
        before = user_facts(current, tuple(changed))
        for name in changed:
            setattr(current, name, wanted[name])
        current.save(update_fields=changed)
        _record_user_changes(current, before, actor)
    return changed


def _record_user_changes(user, before: dict[str, object], actor: Actor) -> None:
    organization_id = _membership_organization_id(user.pk)
    common = {**actor.audit_kwargs(), "organization_id": organization_id, "target_type": "user",
              "target_id": str(user.pk)}
    profile = [name for name in before if name != "is_active"]
    if profile:
        audit_hooks.record("USER_CHANGE", **common, details={
            "username": user.get_username(), "before": {name: before[name] for name in profile},
            "after": user_facts(user, tuple(profile))})
    if "is_active" in before:
        audit_hooks.record("USER_ACTIVATE" if user.is_active else "USER_DEACTIVATE", **common, details={
            "username": user.get_username(), "before": {"is_active": before["is_active"]},
            "after": {"is_active": user.is_active}})


def delete_user(user, *, actor: Actor) -> None:
    """Delete a user who never held an API key (with their membership); never oneself.

    A user who had keys is deactivated instead: their key records stay, as the audit
    trail refers to them. `membership.delete` (when there was one) and `user.delete`
    are recorded in the same transaction.
    """
    from django.contrib.auth import get_user_model

    _require_may_manage(actor)
    _require_not_self(actor, user.pk)
    with transaction.atomic():
        current = get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if current is None:
            return
        if ApiKey.objects.filter(user_id=current.pk).exists():
            raise IdentityError(f"User '{current.get_username()}' has API keys; deactivate the user instead "
                                "(key records stay for the audit trail).", code="user_has_keys")
        membership = Membership.objects.filter(user_id=current.pk).select_related("organization").first()
        if membership is not None:
            audit_hooks.record("MEMBERSHIP_DELETE", **actor.audit_kwargs(), organization_id=membership.organization_id,
                               target_type="membership", target_id=str(membership.pk),
                               details={"user": current.get_username(), "before": membership_facts(membership),
                                        "after": None})
        audit_hooks.record("USER_DELETE", **actor.audit_kwargs(),
                           organization_id=membership.organization_id if membership else None,
                           target_type="user", target_id=str(current.pk),
                           details={"username": current.get_username(), "before": user_facts(current),
                                    "after": None})
        current.delete()


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


MAX_KEY_VALIDITY_DAYS = 3650


@dataclass(frozen=True)
class KeyScope:
    """What a key may issue beyond its role: CA slugs, profile names, a maximum validity. Empty: no limit."""

    cas: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    max_validity_days: int | None = None

    def facts(self) -> dict[str, object]:
        return {"allowed_cas": sorted(self.cas), "allowed_profiles": sorted(self.profiles),
                "max_validity_days": self.max_validity_days}


def _resolved_scope(scope: KeyScope, organization_id: int | None):
    """The CAs and profile names of `scope` among those of the key's organization (every one for a global
    admin's key); an unknown or foreign one is refused by name, as if it did not exist."""
    from certificates.models import CertificateAuthority, CertificateProfile

    slugs = sorted({slug.strip() for slug in scope.cas if slug and slug.strip()})
    names = sorted({name.strip() for name in scope.profiles if name and name.strip()})
    cas = CertificateAuthority.objects.filter(slug__in=slugs)
    profiles = CertificateProfile.objects.filter(name__in=names)
    if organization_id is not None:
        cas = cas.filter(organization_id=organization_id)
        profiles = profiles.filter(models.Q(organization__isnull=True) | models.Q(organization_id=organization_id))
    cas = list(cas)
    missing_cas = sorted(set(slugs) - {ca.slug for ca in cas})
    if missing_cas:
        raise IdentityError(f"No CA '{missing_cas[0]}' in the key's organization.", code="invalid_allowed_ca")
    missing_profiles = sorted(set(names) - set(profiles.values_list("name", flat=True)))
    if missing_profiles:
        raise IdentityError(f"No profile '{missing_profiles[0]}' for the key's organization.",
                            code="invalid_allowed_profile")
    days = scope.max_validity_days
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 1 <= days <= MAX_KEY_VALIDITY_DAYS):
        raise IdentityError(f"A key's maximum validity lies between 1 and {MAX_KEY_VALIDITY_DAYS} days.",
                            code="invalid_max_validity")
    return cas, names, days


def create_api_key(
    user, *, label: str = "", expires_at: datetime | None = None, request=None, principal: Principal | None = None,
    details: dict[str, object] | None = None, actor_label: str = "", scope: KeyScope | None = None,
) -> CreatedApiKey:
    """Create a key for `user` (who must have a membership); the returned `key` is shown once.

    `scope` limits what the key may issue beyond its role (checked by the issuance services);
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
    scope = scope or KeyScope()
    allowed_cas, allowed_profiles, max_days = _resolved_scope(scope, membership.organization_id)
    generated = generate_key()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            user=user, label=label, prefix=generated.prefix, key_hash=generated.key_hash, expires_at=expires_at,
            allowed_profiles=allowed_profiles, max_validity_days=max_days,
        )
        api_key.allowed_cas.set(allowed_cas)
        audit_hooks.record(
            "API_KEY_CREATE",
            request=request,
            principal=principal,
            actor_label=actor_label,
            organization_id=membership.organization_id,
            target_type="api_key",
            target_id=str(api_key.pk),
            details={"prefix": api_key.prefix, "user": user.get_username(), "label": label,
                     "expires_at": expires_at.isoformat() if expires_at else None,
                     **KeyScope(tuple(ca.slug for ca in allowed_cas), tuple(allowed_profiles), max_days).facts(),
                     **(details or {})},
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
    scope: KeyScope | None = None,
) -> ProvisionedApiKey:
    """A new key for `username`, who is created with `role` in the organization when missing.

    `principal` None is the operator at the console (`create_api_key` command), who may do
    anything. Otherwise only an admin may: a global admin for anyone, an organization's
    admin only inside their organization and never a global admin, for a member of their
    organization or a new name `NAME@<slug>` (`_require_name_of_callers_organization`). The
    organization defaults to the caller's own (none for a global admin or the operator: a
    global admin). User, membership and key are created in one transaction, each with its
    event: a refused key leaves no user.
    """
    role = parse_role(str(role))
    _require_admin(principal)
    organization = _organization_for(organization_slug, principal)
    _require_may_grant(principal, organization)
    actor = Actor(principal=principal, request=request, label=actor_label)
    try:
        with transaction.atomic():
            user, user_created = _member_for(username, role, organization, actor)
            created = create_api_key(user, label=label, expires_at=expires_at, request=request, principal=principal,
                                     details={"role": role.value, "user_created": user_created},
                                     actor_label=actor_label, scope=scope)
    except IntegrityError:  # the same new username, created by a concurrent request
        raise MembershipConflict(f"User '{username.strip()}' was created at the same moment; try again.") from None
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
        raise UnknownOrganization(f"No organization with the slug '{slug}'.")
    return organization


def _require_may_grant(principal: Principal | None, organization: Organization | None) -> None:
    """An organization's admin grants roles in their own organization only: never a global admin."""
    if principal is None or principal.is_global_admin:
        return
    if organization is None or organization.pk != principal.organization_id:
        raise NotPermitted("An organization's admin may grant roles in their own organization only.")


def _require_name_of_callers_organization(username: str, organization: Organization | None,
                                          principal: Principal | None) -> None:
    """An organization's admin names a member of their organization, or a new user `NAME@<their slug>`.

    Any other name is refused with the same answer whether or not it exists in another
    organization, and without looking it up outside theirs (so not even the time taken
    differs): an organization's admin learns nothing about other organizations' users.
    Names `NAME@<slug>` never belong to another organization (`require_username_fits_organization`).
    """
    if principal is None or principal.is_global_admin or organization is None:
        return
    name = (username or "").strip()
    if realm_of(name) == organization.slug:
        return
    if Membership.objects.filter(user__username=name, organization=organization).exists():
        return
    raise NotPermitted(f"You give keys to members of '{organization.slug}' only; "
                       f"a new user you create is named like name@{organization.slug}.")


def _member_for(username: str, role: Role, organization: Organization | None, actor: Actor):
    """`ensure_member`, whose refusal names the existing membership only to callers who may see it."""
    principal = actor.principal
    _require_name_of_callers_organization(username, organization, principal)
    try:
        return ensure_member(username, role, organization, actor=actor)
    except IdentityError as error:
        if not isinstance(error, MembershipConflict) or principal is None or principal.is_global_admin:
            raise
        raise MembershipConflict(
            f"User '{username.strip()}' already exists with another role or organization.",
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
            details={"prefix": api_key.prefix, "user": api_key.user.get_username(),
                     "label": api_key.label, "before": {"revoked_at": None}, "after": {"revoked_at": now}},
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
    return _open_session(membership, request=request, api_key=api_key, actor_label=api_key.prefix,
                         details={"api_key_prefix": api_key.prefix})


def open_certificate_session(certificate, membership: Membership, *, request=None) -> OpenedSession:
    """Issue a session JWT for a member who presented their bound client certificate (mTLS); record the login."""
    return _open_session(membership, request=request, client_certificate=certificate,
                         actor_label=f"cert:{certificate.serial}",
                         details={"via": "client_certificate", "certificate_id": certificate.pk,
                                  "serial": certificate.serial, "fingerprint_sha256": certificate.fingerprint_sha256})


def _open_session(membership: Membership, *, request, actor_label: str, details: dict[str, object],
                  api_key: ApiKey | None = None, client_certificate=None) -> OpenedSession:
    now = timezone.now().replace(microsecond=0)
    expires_at = now + timedelta(seconds=settings.PKI_SESSION_TTL)
    jti = secrets.token_urlsafe(24)
    principal = principal_for(membership, api_key_id=api_key.pk if api_key else None, token_id=jti)
    with transaction.atomic():
        SessionToken.objects.filter(user_id=membership.user_id, expires_at__lt=now).delete()  # tidy up
        SessionToken.objects.create(jti=jti, user_id=membership.user_id, api_key=api_key,
                                    client_certificate=client_certificate, expires_at=expires_at)
        audit_hooks.record(
            "LOGIN",
            request=request,
            principal=principal,
            organization_id=membership.organization_id,
            target_type="session",
            target_id=jti,
            actor_label=actor_label,
            details=details,
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


def record_failed_login(*, request=None, prefix: str | None, reason: str, via: str = "login") -> None:
    """A refused credential, recorded on its own (no transaction to join).

    `via` names the door: `login` (POST /auth/session) or `bearer` (an `Authorization` header).
    The key prefix is the actor's label; the secret is never recorded.
    """
    audit_hooks.record(
        "LOGIN",
        request=request,
        outcome="failure",
        actor_label=prefix or "",
        details={"reason": reason, "via": via},
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
        SessionToken.objects.select_related("user", "user__membership", "api_key", "client_certificate")
        .filter(jti=claims["jti"])
        .first()
    )
    now = timezone.now()
    if session is None or str(session.user_id) != claims["sub"]:
        raise AuthenticationFailed("unknown session")
    if session.revoked_at is not None or session.expires_at <= now:
        raise AuthenticationFailed("session ended")
    if session.api_key_id is not None:
        if not session.api_key.is_usable(now) or session.api_key.user_id != session.user_id:
            raise AuthenticationFailed("key revoked or expired")
    else:
        from organizations.client_certificates import session_certificate_refusal  # it builds on this module

        reason = session_certificate_refusal(session.client_certificate, session.user_id, now)
        if reason:
            raise AuthenticationFailed(reason)
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
