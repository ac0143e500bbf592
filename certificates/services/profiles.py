"""Certificate profiles as data: who sees and edits which, what a valid profile is, and the row -> crypto step.

Every channel (page, admin, API, CLI, and ACME through the issuance service) reaches a profile
through this module, so one profile means one thing everywhere:

* `profile_for_issuance(name, ca)` turns the row the CA's organization may use into the crypto
  layer's frozen `Profile` (the crypto layer never sees Django);
* `create_profile`, `update_profile`, `delete_profile` validate, write and audit
  (`profile.create`, `profile.change`, `profile.delete`) in one transaction.

Tenancy: a profile without an organization is global (the four built-ins are); one with an
organization is seen and used only by that organization (another organization's profile is
"not found", as for every object). Members see the global profiles and their own organization's;
an admin or manager creates and edits their organization's; only a global admin (or an operator
at the console) creates or edits global ones, built-ins included. Built-ins are never deleted,
and a profile that certificates were issued with is not deleted either (disable it instead):
renewal looks a certificate's profile up by name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Q, QuerySet

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.errors import InvalidRequestError
from certificates.crypto.keys import KeyType
from certificates.crypto.names import SAN_TYPES, normalize_dns_name
from certificates.crypto.profiles import (
    EXTENDED_KEY_USAGES,
    KEY_USAGE_FLAGS,
    PROFILES,
    Profile,
    asserted_policies,
    check_policy_oid,
)
from certificates.errors import Conflict, InvalidInput, NotFound, PermissionRefused, PolicyViolation
from certificates.keystore import ca_certificate
from certificates.models import (
    MAX_PROFILE_VALIDITY_HOURS,
    PROFILE_NAME_PATTERN,
    Certificate,
    CertificateAuthority,
    CertificateProfile,
)
from organizations.models import Organization
from organizations.roles import Role
from pki_project.actor import Actor

#: Key usage flags a subscriber certificate may never carry (RFC 5280 4.2.1.3: CA bits).
CA_ONLY_KEY_USAGE = frozenset({"key_cert_sign", "crl_sign"})
EE_KEY_USAGE_FLAGS = tuple(flag for flag in KEY_USAGE_FLAGS if flag not in CA_ONLY_KEY_USAGE)
EKU_NAME_OF = {oid: name for name, oid in EXTENDED_KEY_USAGES.items()}
MAX_LIST_ITEMS = 64
BOOLEAN_FIELDS = ("enabled", "requires_san", "allow_wildcard", "common_name_in_san", "cabf_policy", "must_staple",
                  "crl_distribution_point", "ocsp_url", "requires_approval")
#: What a create or an update may set. `name` and `organization` only at creation (certificates name
#: their profile, and moving a profile between organizations would move what others issue).
EDITABLE_FIELDS = ("description", "extended_key_usages", "key_usage", "rsa_key_usage", "ec_key_usage",
                   "allowed_key_types", "max_validity_hours", "allowed_san_types", "required_san_types",
                   "allowed_dns_suffixes", "allowed_ip_networks", "policy_oids", *BOOLEAN_FIELDS)
CREATE_ONLY_FIELDS = ("name", "organization")
MANAGERS = frozenset({Role.ADMIN, Role.MANAGER})


# --- Rows <-> the crypto layer's Profile ----------------------------------------------------------


def configured_policy_oids() -> tuple[str, ...]:
    """The installation's private policy OIDs (PKI_POLICY_OID), for profiles that list none."""
    return tuple(getattr(settings, "PKI_POLICY_OID", ()) or ())


def check_configured_policy_oids() -> None:
    """At start-up: a PKI_POLICY_OID that no certificate could carry stops the server with one clear line."""
    for oid in configured_policy_oids():
        try:
            check_policy_oid(oid)
        except InvalidRequestError as error:
            raise ImproperlyConfigured(f"PKI_POLICY_OID: {error.message}") from None


def as_crypto_profile(row: CertificateProfile, ca_policy_oids: tuple[str, ...] = ()) -> Profile:
    """The frozen crypto `Profile` a row describes (validated when it was written).

    Its private policy OIDs: the row's own, else those of the issuing CA (when it asserts specific
    ones instead of anyPolicy), else the installation's PKI_POLICY_OID.
    """
    policy_oids = tuple(row.policy_oids or ()) or ca_policy_oids or configured_policy_oids()
    return Profile(
        name=row.name,
        description=row.description,
        key_usage=frozenset(row.key_usage),
        rsa_key_usage=frozenset(row.rsa_key_usage),
        ec_key_usage=frozenset(row.ec_key_usage),
        extended_key_usages=tuple(EXTENDED_KEY_USAGES[name] for name in row.extended_key_usages),
        max_validity_hours=row.max_validity_hours,
        allowed_san_types=frozenset(row.allowed_san_types),
        required_san_types=frozenset(row.required_san_types),
        requires_san=row.requires_san,
        allow_wildcard=row.allow_wildcard,
        common_name_in_san=row.common_name_in_san,
        allowed_dns_suffixes=tuple(row.allowed_dns_suffixes),
        allowed_ip_networks=tuple(row.allowed_ip_networks),
        policy_oids=tuple(check_policy_oid(oid) for oid in policy_oids),
        cabf_policy=row.cabf_policy,
        allowed_key_types=frozenset(row.allowed_key_types),
        must_staple=row.must_staple,
        crl_distribution_point=row.crl_distribution_point,
        ocsp_url=row.ocsp_url,
    )


def row_values_of(profile: Profile) -> dict[str, Any]:
    """The column values of a crypto `Profile` (used to restore a missing built-in)."""
    return {
        "name": profile.name, "description": profile.description,
        "extended_key_usages": [EKU_NAME_OF[oid] for oid in profile.extended_key_usages],
        "key_usage": sorted(profile.key_usage), "rsa_key_usage": sorted(profile.rsa_key_usage),
        "ec_key_usage": sorted(profile.ec_key_usage), "allowed_key_types": sorted(profile.allowed_key_types),
        "max_validity_hours": profile.max_validity_hours, "allowed_san_types": sorted(profile.allowed_san_types),
        "required_san_types": sorted(profile.required_san_types), "requires_san": profile.requires_san,
        "allow_wildcard": profile.allow_wildcard, "common_name_in_san": profile.common_name_in_san,
        "allowed_dns_suffixes": list(profile.allowed_dns_suffixes),
        "allowed_ip_networks": list(profile.allowed_ip_networks),
        "policy_oids": [oid.dotted_string for oid in profile.policy_oids], "cabf_policy": profile.cabf_policy,
        "must_staple": profile.must_staple, "crl_distribution_point": profile.crl_distribution_point,
        "ocsp_url": profile.ocsp_url,
    }


def _profile_table_is_current(using: str) -> bool:
    connection = connections[using]
    table = CertificateProfile._meta.db_table
    if table not in connection.introspection.table_names():
        return False
    with connection.cursor() as cursor:
        columns = {column.name for column in connection.introspection.get_table_description(cursor, table)}
    return all(field.column in columns for field in CertificateProfile._meta.concrete_fields)


def ensure_builtin_profiles(sender=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate: a built-in profile that is missing (a flushed database) is created again; edits stay."""
    if not _profile_table_is_current(using):
        return  # a partial migrate (or one back to an older state): the table or a column is not there yet
    for profile in PROFILES.values():
        CertificateProfile.objects.using(using).get_or_create(
            name=profile.name, defaults={**row_values_of(profile), "is_builtin": True, "organization": None})


# --- Who sees what ---------------------------------------------------------------------------------


def visible_profiles(actor: Actor) -> QuerySet[CertificateProfile]:
    """Global profiles and the member's organization's (everything for a global admin or an operator)."""
    queryset = CertificateProfile.objects.select_related("organization")
    principal = actor.principal
    if actor.is_operator or (principal is not None and principal.is_global_admin):
        return queryset
    if principal is None:
        return queryset.none()
    return queryset.filter(Q(organization__isnull=True) | Q(organization_id=principal.organization_id))


def profiles_for_organization(organization_id: int | None) -> QuerySet[CertificateProfile]:
    """The enabled profiles a CA of this organization issues with."""
    return CertificateProfile.objects.filter(
        Q(organization__isnull=True) | Q(organization_id=organization_id), enabled=True)


def get_visible_profile(actor: Actor, reference: str | int) -> CertificateProfile:
    """A profile by name or id among those `actor` sees; else NotFound (another organization's too)."""
    text = str(reference)
    lookup = Q(name=text) | (Q(pk=int(text)) if text.isascii() and text.isdigit() and len(text) < 19 else Q())
    profile = visible_profiles(actor).filter(lookup).first()
    if profile is None:
        raise NotFound(f"No profile '{text[:64]}'.", code="not_found")
    return profile


def unknown_profile(name: object, organization_id: int | None) -> InvalidInput:
    names = ", ".join(profiles_for_organization(organization_id).values_list("name", flat=True))
    return InvalidInput(f"Unknown profile '{str(name)[:64]}'. Choose one of: {names}.", code="unknown_profile")


def profile_for_issuance(name: object, ca: CertificateAuthority) -> Profile:
    """The crypto profile `ca` issues under `name`: a global one or one of the CA's organization, enabled."""
    row = None
    if isinstance(name, str) and name:
        row = CertificateProfile.objects.filter(
            Q(organization__isnull=True) | Q(organization_id=ca.organization_id), name=name).first()
    if row is None:
        raise unknown_profile(name, ca.organization_id)
    if not row.enabled:
        raise PolicyViolation(f"The profile '{row.name}' is disabled.", code="profile_disabled")
    return as_crypto_profile(row, ca_policy_oids(ca))


def ca_policy_oids(ca: CertificateAuthority) -> tuple[str, ...]:
    """The specific policy OIDs `ca`'s certificate asserts, sorted; () for anyPolicy or none."""
    asserted = asserted_policies(ca_certificate(ca))
    return tuple(sorted(oid.dotted_string for oid in asserted)) if asserted else ()


def requires_approval(ca: CertificateAuthority, profile_name: object) -> bool:
    """Whether a certificate of `profile_name` from `ca` waits for a second person (the CA's or the profile's flag)."""
    if ca.requires_approval:
        return True
    if not isinstance(profile_name, str) or not profile_name:
        return False
    return CertificateProfile.objects.filter(
        Q(organization__isnull=True) | Q(organization_id=ca.organization_id), name=profile_name,
        requires_approval=True).exists()


def _require_manager(actor: Actor, organization_id: int | None) -> None:
    """Admins and managers manage their organization's profiles; global ones are a global admin's."""
    if actor.is_operator:
        return
    principal = actor.principal
    if principal is None or principal.role not in MANAGERS:
        raise PermissionRefused("Only a manager or an admin may manage certificate profiles.")
    if organization_id is None and not principal.is_global_admin:
        raise PermissionRefused("Only a global admin may manage global (and built-in) profiles.")
    if organization_id is not None and not principal.can_see_organization(organization_id):
        raise NotFound("Not found.")


# --- Validation ------------------------------------------------------------------------------------


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code="invalid_profile")


def _string_list(field: str, value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise _refuse(field, "a list of strings is expected.")
    if len(value) > MAX_LIST_ITEMS:
        raise _refuse(field, f"at most {MAX_LIST_ITEMS} entries.")
    items = [item.strip() for item in value]
    if len(set(items)) != len(items):
        raise _refuse(field, "an entry appears twice.")
    return items


def _choices(field: str, value: object, allowed: tuple[str, ...] | frozenset[str] | list[str]) -> list[str]:
    items = _string_list(field, value)
    if unknown := [item for item in items if item not in allowed]:
        raise _refuse(field, f"unknown {', '.join(unknown)[:200]} (choose from {', '.join(sorted(allowed))}).")
    return items


def _dns_suffixes(value: object) -> list[str]:
    suffixes = []
    for item in _string_list("allowed_dns_suffixes", value):
        try:
            suffixes.append(normalize_dns_name(item.strip(".").strip(), allow_wildcard=False))
        except InvalidRequestError:
            raise _refuse("allowed_dns_suffixes", f"'{item[:80]}' is not a domain name.") from None
    return suffixes


def _ip_networks(value: object) -> list[str]:
    networks = []
    for item in _string_list("allowed_ip_networks", value):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError:
            raise _refuse("allowed_ip_networks", f"'{item[:80]}' is not a network such as 10.0.0.0/8.") from None
    return networks


def _policy_oids(value: object) -> list[str]:
    oids = []
    for item in _string_list("policy_oids", value):
        try:
            oids.append(check_policy_oid(item).dotted_string)
        except InvalidRequestError as error:
            raise _refuse("policy_oids", error.message) from None
    return oids


def _validity_hours(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROFILE_VALIDITY_HOURS:
        raise _refuse("max_validity_hours", f"a whole number of hours from 1 to {MAX_PROFILE_VALIDITY_HOURS}.")
    return value


def _description(value: object) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise _refuse("description", "text of at most 200 characters.")
    return value


FIELD_CHECKS = {
    "description": _description,
    "extended_key_usages": lambda value: _choices("extended_key_usages", value, tuple(EXTENDED_KEY_USAGES)),
    "key_usage": lambda value: _choices("key_usage", value, EE_KEY_USAGE_FLAGS),
    "rsa_key_usage": lambda value: _choices("rsa_key_usage", value, EE_KEY_USAGE_FLAGS),
    "ec_key_usage": lambda value: _choices("ec_key_usage", value, EE_KEY_USAGE_FLAGS),
    "allowed_key_types": lambda value: _choices("allowed_key_types", value, tuple(k.value for k in KeyType)),
    "max_validity_hours": _validity_hours,
    "allowed_san_types": lambda value: _choices("allowed_san_types", value, SAN_TYPES),
    "required_san_types": lambda value: _choices("required_san_types", value, SAN_TYPES),
    "allowed_dns_suffixes": _dns_suffixes,
    "allowed_ip_networks": _ip_networks,
    "policy_oids": _policy_oids,
}


def _checked_field(field: str, value: object) -> object:
    if field in BOOLEAN_FIELDS:
        if not isinstance(value, bool):
            raise _refuse(field, "true or false.")
        return value
    return FIELD_CHECKS[field](value)


def _check_whole(values: Mapping[str, Any]) -> None:
    """Rules between fields, on the profile as it would be saved."""
    if not values["extended_key_usages"]:
        raise _refuse("extended_key_usages", "at least one.")
    if not values["key_usage"]:
        raise _refuse("key_usage", "at least one flag (digital_signature, for example).")
    if not values["allowed_san_types"]:
        raise _refuse("allowed_san_types", "at least one of dns, ip, email.")
    if extra := set(values["required_san_types"]) - set(values["allowed_san_types"]):
        raise _refuse("required_san_types", f"{', '.join(sorted(extra))} is not among allowed_san_types.")
    if values["must_staple"] and not values["ocsp_url"]:
        raise _refuse("must_staple", "Must-Staple needs the OCSP URL in the certificate (ocsp_url: true).")
    if values["must_staple"] and "serverAuth" not in values["extended_key_usages"]:
        raise _refuse("must_staple", "Must-Staple (RFC 7633) is for TLS server certificates (serverAuth).")
    if not values["crl_distribution_point"] and not values["ocsp_url"] and values["max_validity_hours"] > 7 * 24:
        raise _refuse("crl_distribution_point", "a certificate without CRL and OCSP pointers must be short-lived "
                                                "(at most 7 days, BR 4.9.1.1).")


def _checked_values(values: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidInput("A profile is an object of fields.", code="invalid_profile")
    if unknown := sorted(set(values) - set(fields)):
        raise _refuse(unknown[0][:64], "not a field that can be set here.")
    return {field: _checked_field(field, value) for field, value in values.items() if field in EDITABLE_FIELDS}


def _defaults() -> dict[str, Any]:
    return {"description": "", "extended_key_usages": [], "key_usage": ["digital_signature"], "rsa_key_usage": [],
            "ec_key_usage": [], "allowed_key_types": [], "max_validity_hours": None, "allowed_san_types": [],
            "required_san_types": [], "allowed_dns_suffixes": [], "allowed_ip_networks": [], "policy_oids": [],
            "enabled": True, "requires_san": True, "allow_wildcard": False, "common_name_in_san": True,
            "cabf_policy": False, "must_staple": False, "crl_distribution_point": True, "ocsp_url": True,
            "requires_approval": False}


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(PROFILE_NAME_PATTERN, name):
        raise _refuse("name", "1 to 64 lower-case letters, digits and hyphens (not at either end).")
    return name


def _organization_for_new_profile(actor: Actor, reference: object) -> Organization | None:
    """A member's profile is their organization's; a global admin names one, or makes a global profile."""
    principal = actor.principal
    if not actor.is_operator and principal is not None and not principal.is_global_admin:
        if reference not in (None, "", principal.organization_id, str(principal.organization_id)):
            own = Organization.objects.filter(pk=principal.organization_id).values_list("slug", flat=True).first()
            if reference != own:
                raise NotFound(f"No organization '{str(reference)[:64]}'.")
        return Organization.objects.get(pk=principal.organization_id)
    if reference in (None, ""):
        return None
    text = str(reference)
    lookup = Q(slug=text) | (Q(pk=int(text)) if text.isascii() and text.isdigit() and len(text) < 19 else Q())
    organization = Organization.objects.filter(lookup).first()
    if organization is None:
        raise NotFound(f"No organization '{text[:64]}'.")
    return organization


def _profile_details(profile: CertificateProfile, **extra: object) -> dict[str, object]:
    return {"name": profile.name, "organization": profile.organization.slug if profile.organization else None,
            "builtin": profile.is_builtin, **extra}


# --- Writes ------------------------------------------------------------------------------------------


def create_profile(values: Mapping[str, Any], *, actor: Actor) -> CertificateProfile:
    """A new profile: validated whole, written and audited together; a taken name is a 409."""
    checked = _checked_values(values, (*CREATE_ONLY_FIELDS, *EDITABLE_FIELDS))
    name = _checked_name(values.get("name"))
    organization = _organization_for_new_profile(actor, values.get("organization"))
    _require_manager(actor, organization.pk if organization else None)
    if "max_validity_hours" not in checked:
        raise _refuse("max_validity_hours", "required.")
    merged = {**_defaults(), **checked}
    _check_whole(merged)
    try:
        with transaction.atomic():
            profile = CertificateProfile.objects.create(name=name, organization=organization, **merged)
            record_event(AuditAction.PROFILE_CREATE, **actor.audit_kwargs(), organization=organization,
                         target_type="certificate_profile", target_id=str(profile.pk),
                         details=_profile_details(profile, fields=sorted(checked)))
    except IntegrityError:
        raise Conflict(f"A profile called '{name}' already exists.", code="duplicate") from None
    return profile


def update_profile(profile: CertificateProfile, values: Mapping[str, Any], *, actor: Actor) -> CertificateProfile:
    """Change the given fields (name and organization stay); audited with the changed field names."""
    _require_manager(actor, profile.organization_id)
    if isinstance(values, Mapping):
        for field in CREATE_ONLY_FIELDS:
            current = getattr(profile, field) if field == "name" else profile.organization_id
            if field in values and values[field] not in (current, None if current is None else str(current)):
                raise _refuse(field, "cannot be changed (certificates name their profile); create a new one.")
        values = {key: value for key, value in values.items() if key not in CREATE_ONLY_FIELDS}
    checked = _checked_values(values, EDITABLE_FIELDS)
    merged = {**{field: getattr(profile, field) for field in EDITABLE_FIELDS}, **checked}
    _check_whole(merged)
    changed = sorted(field for field, value in checked.items() if getattr(profile, field) != value)
    if not changed:
        return profile
    with transaction.atomic():
        locked = CertificateProfile.objects.select_for_update().get(pk=profile.pk)
        for field in changed:
            setattr(locked, field, checked[field])
        locked.save(update_fields=[*changed, "updated_at"])
        record_event(AuditAction.PROFILE_CHANGE, **actor.audit_kwargs(), organization=locked.organization,
                     target_type="certificate_profile", target_id=str(locked.pk),
                     details=_profile_details(locked, fields=changed))
    return locked


def delete_profile(profile: CertificateProfile, *, actor: Actor) -> None:
    """Delete a custom profile no certificate was issued with (built-ins and used profiles: disable instead)."""
    _require_manager(actor, profile.organization_id)
    if profile.is_builtin:
        raise PolicyViolation(f"'{profile.name}' is a built-in profile: it cannot be deleted (disable it instead).",
                              code="builtin_profile")
    with transaction.atomic():
        if Certificate.objects.filter(profile=profile.name).exists():
            raise Conflict(f"Certificates were issued with '{profile.name}': disable the profile instead.",
                           code="profile_in_use")
        record_event(AuditAction.PROFILE_DELETE, **actor.audit_kwargs(), organization=profile.organization,
                     target_type="certificate_profile", target_id=str(profile.pk), details=_profile_details(profile))
        CertificateProfile.objects.filter(pk=profile.pk).delete()
