"""Creating CAs: a root with its two-part key (or a key on a PKCS#11 token), and intermediates below it.

The root password (for a token-held root: the token's user PIN) opens the root's signer for
one operation and is dropped; it is never stored, logged, cached or put in an error. Keys are
made and used only through `certificates.signers`. Cross-row rules (the parent is a
usable CA of the same organization, path length, validity inside the parent's)
live here and in the pure builders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from django.conf import settings
from django.db import transaction
from django.utils.text import slugify

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.builders import ANY_POLICY, build_intermediate_ca_certificate, build_root_ca_certificate
from certificates.crypto.errors import CryptoError
from certificates.crypto.keys import KeyType, parse_key_type
from certificates.crypto.names import build_subject, check_name_characters
from certificates.crypto.profiles import check_policy_oid
from certificates.crypto.purposes import (
    CA_PURPOSES,
    DEFAULT_CA_PURPOSES,
    certificate_extended_key_usages,
    check_ca_covers,
    parse_ca_purposes,
    purpose_names,
)
from certificates.errors import (
    Conflict,
    InvalidInput,
    PolicyViolation,
    from_crypto_error,
    storage_errors,
)
from certificates.keystore import artifact_store, key_removed_on_failure, new_ca_key_directory, publication_urls
from certificates.models import CertificateAuthority, CertificateKind, KeySource
from certificates.services.permissions import Action, require
from certificates.services.profiles import ca_policy_oids
from certificates.services.publication import publish_new_ca
from certificates.services.records import create_certificate_row, load_x509
from certificates.signers import PKCS11, VAULT, FreshCAKey, fresh_ca_key, signer_for
from certificates.vault.custody import check_root_password
from certificates.vault.errors import WeakPassword
from organizations.models import Organization
from pki_project.actor import Actor

logger = logging.getLogger(__name__)

ROOT_CRL_VALIDITY_HOURS = 2160  # 90 days: a root's CRL is signed only with the operator's password
INTERMEDIATE_CRL_VALIDITY_HOURS = 168  # 7 days (BR 4.9.7: at most 10); re-signed on revocation and by cron
# BR 4.9.7: nextUpdate at most 12 months after thisUpdate for a root's CRL (ARL), 10 days below it.
MAX_ROOT_CRL_VALIDITY_HOURS = 365 * 24
MAX_INTERMEDIATE_CRL_VALIDITY_HOURS = 10 * 24
DEFAULT_ROOT_KEY_TYPE = KeyType.EC_P384
DEFAULT_INTERMEDIATE_KEY_TYPE = KeyType.EC_P256
DEFAULT_ROOT_DAYS = 3650
DEFAULT_INTERMEDIATE_DAYS = 1825
MAX_CA_DAYS = 9125  # 25 years
MAX_PATH_LENGTH = 8
# What a new intermediate vouches for (its EKU) unless told otherwise: see `ca_purposes`.
DEFAULT_INTERMEDIATE_PURPOSES = DEFAULT_CA_PURPOSES


def _validated_days(days: int) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_CA_DAYS:
        raise InvalidInput(f"A CA's validity must be between 1 and {MAX_CA_DAYS} days.", code="invalid_days")
    return days


def _validated_path_length(path_length: int | None) -> int | None:
    if path_length is None:
        return None
    if not isinstance(path_length, int) or isinstance(path_length, bool) or not 0 <= path_length <= MAX_PATH_LENGTH:
        raise InvalidInput(f"The path length must be between 0 and {MAX_PATH_LENGTH}.", code="invalid_path_length")
    return path_length


def _validated_crl_validity(hours: int | None, default: int, maximum: int) -> int:
    """A CA's CRL lifetime (thisUpdate to nextUpdate) in hours, within the BR 4.9.7 bound for its kind."""
    if hours is None:
        return default
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= maximum:
        raise InvalidInput(f"The CRL validity of this CA must be between 1 and {maximum} hours.",
                           code="invalid_crl_validity")
    return hours


def _key_type(value: str | KeyType) -> KeyType:
    try:
        return parse_key_type(value)
    except CryptoError as error:
        raise from_crypto_error(error) from None


def _checked_root_password(root_password: str | None, *, key_backend: str = VAULT) -> str:
    """The password a new vault root is sealed under must be strong; a token's PIN follows the token's policy."""
    if not root_password:
        raise InvalidInput("The root password is required for this operation.", code="root_password_required")
    if key_backend == PKCS11:
        return root_password
    try:
        check_root_password(root_password)
    except WeakPassword as error:
        raise InvalidInput(str(error), code="weak_password") from None
    return root_password


def _ca_slug(requested: str | None, common_name: str) -> str:
    """An explicit slug must be free; a derived one gets a numeric suffix until it is."""
    if requested:
        slug = slugify(requested)[:64]
        if not slug or slug != requested:
            raise InvalidInput(
                "A CA slug may contain only lower-case letters, digits and hyphens.", code="invalid_slug"
            )
        if CertificateAuthority.objects.filter(slug=slug).exists():
            raise Conflict(f"A CA with the slug '{slug}' already exists.", code="duplicate")
        return slug
    base = slugify(common_name)[:56] or "ca"
    slug, counter = base, 1
    while CertificateAuthority.objects.filter(slug=slug).exists():
        counter += 1
        slug = f"{base}-{counter}"
    return slug


def _checked_characters(label: str, value: str, code: str = "subject_invalid") -> None:
    """No bidirectional control or invisible character in a CA's name (see crypto.names)."""
    try:
        check_name_characters(label, value, code=code)
    except CryptoError as error:
        raise from_crypto_error(error) from None


def _subject(common_name: str, organization: Organization, country: str | None) -> x509.Name:
    """CA subjects carry C, O and CN (BR 7.1.2.10.2 requires all three for CA certificates)."""
    _checked_characters("common name", common_name)  # the raw name: strip() would drop a trailing U+2029
    country = (country or settings.PKI_DEFAULT_COUNTRY).strip().upper()
    try:
        return build_subject(common_name.strip(), organization=organization.name[:64], country=country)
    except CryptoError as error:
        raise from_crypto_error(error) from None


def _record_ca_created(ca: CertificateAuthority, actor: Actor) -> None:
    record_event(
        AuditAction.CA_CREATE,
        **actor.audit_kwargs(),
        organization_id=ca.organization_id,
        target_type="ca",
        target_id=str(ca.pk),
        target_serial=ca.certificate.serial,
        details={"slug": ca.slug, "kind": ca.kind, "key_type": ca.certificate.key_type,
                 "parent": ca.parent.slug if ca.parent else None, "key_backend": ca.key_backend,
                 **({"token_label": ca.token_label} if ca.token_label else {}),
                 **({"purposes": ca_purposes(ca), "policy_oids": list(ca_policy_oids(ca))} if ca.parent else {})},
    )


def _check_token_use(key_backend: str, token_label: str | None, *, for_root: bool) -> None:
    """A root's token holds no intermediate's key and the reverse (see `signers.pkcs11`: one log-in per token)."""
    if key_backend != PKCS11 or not token_label:
        return
    other_kind = CertificateAuthority.Kind.INTERMEDIATE if for_root else CertificateAuthority.Kind.ROOT
    if CertificateAuthority.objects.filter(key_backend=PKCS11, token_label=token_label, kind=other_kind).exists():
        raise PolicyViolation(
            f"The token '{token_label}' already holds the key of {'an intermediate' if for_root else 'a root'} CA: "
            "give a root its own token.", code="token_shared")


def _key_directory_for(key: FreshCAKey) -> str:
    """A fresh vault directory for a vault key; none for a key held by a token."""
    return new_ca_key_directory() if key.backend == VAULT else ""


def _record_key(ca_fields: dict, key: FreshCAKey) -> dict:
    """The CA row's key fields: where the key is, never a secret."""
    return {**ca_fields, **key.row_fields}


def create_root_ca(
    *,
    organization: Organization,
    common_name: str,
    root_password: str,
    actor: Actor,
    key_type: str | KeyType = DEFAULT_ROOT_KEY_TYPE,
    days: int = DEFAULT_ROOT_DAYS,
    path_length: int | None = None,
    slug: str | None = None,
    country: str | None = None,
    crl_validity_hours: int | None = None,
    key_backend: str = VAULT,
    token_label: str | None = None,
) -> CertificateAuthority:
    """Create a self-signed root CA whose key needs the root password to open (admins: `permissions`).

    `key_backend` `pkcs11`: the key is made on the token `token_label`, and `root_password` is the
    token's user PIN, asked again for every use of the root (the PIN is not stored).
    """
    require(actor, Action.CREATE_CA, organization)
    root_password = _checked_root_password(root_password, key_backend=key_backend)
    crl_validity_hours = _validated_crl_validity(crl_validity_hours, ROOT_CRL_VALIDITY_HOURS,
                                                 MAX_ROOT_CRL_VALIDITY_HOURS)
    key_type, days = _key_type(key_type), _validated_days(days)
    path_length = _validated_path_length(path_length)
    subject = _subject(common_name, organization, country)
    slug = _ca_slug(slug, common_name)
    _check_token_use(key_backend, token_label, for_root=True)
    with fresh_ca_key(key_type, for_root=True, backend=key_backend, key_label=f"pki-{slug}",
                      token_label=token_label, pin=root_password) as key:
        try:
            certificate = build_root_ca_certificate(key.signer, subject, days, path_length=path_length)
        except CryptoError as error:
            raise from_crypto_error(error) from None
        store, key_directory = artifact_store(), _key_directory_for(key)
        with storage_errors(), key_removed_on_failure(store, key_directory):
            key.seal(store, key_directory, root_password=root_password)
        with key_removed_on_failure(store, key_directory), transaction.atomic():
            row = create_certificate_row(
                certificate, organization=organization, issuer=None, kind=CertificateKind.ROOT_CA,
                key_source=KeySource.SERVER, created_by=actor.username,
            )
            ca = CertificateAuthority.objects.create(**_record_key(dict(
                organization=organization, name=common_name.strip(), slug=slug, kind=CertificateAuthority.Kind.ROOT,
                certificate=row, key_directory=key_directory, path_length=path_length,
                crl_validity_hours=crl_validity_hours,
            ), key))
            _record_ca_created(ca, actor)
        key.recorded = True
        publish_new_ca(ca, actor, signer=key.signer, parent_signer=None)  # the key is open: the first CRL
    return ca


def ensure_usable_issuer(ca: CertificateAuthority) -> None:
    """No issuance from a revoked, expired or not-yet-valid CA."""
    status = ca.certificate.status
    if status != "valid":
        raise PolicyViolation(f"The CA '{ca.slug}' is {status.replace('_', ' ')} and cannot sign.",
                              code="issuer_not_usable")


def ca_purposes(ca: CertificateAuthority) -> list[str]:
    """The purposes `ca` vouches for, read from its certificate's EKU (every purpose when it has none)."""
    usages = certificate_extended_key_usages(load_x509(ca.certificate))
    if usages is None:
        return list(CA_PURPOSES)
    return purpose_names(usages)


def _intermediate_purposes(parent: CertificateAuthority,
                           purposes: Sequence[str] | str | None) -> tuple[ObjectIdentifier, ...]:
    """The new CA's EKU: the purposes asked for, else its parent's (below an intermediate) or all of them.

    Relying parties intersect the EKUs along the path (see `certificates.crypto.purposes`), so a CA
    cannot vouch for more than its parent: the builder refuses that with `issuer_purpose`.
    """
    if purposes is None:
        purposes = DEFAULT_INTERMEDIATE_PURPOSES if parent.is_root else [
            name for name in ca_purposes(parent) if name in CA_PURPOSES]
    try:
        usages = parse_ca_purposes(purposes)
        check_ca_covers(load_x509(parent.certificate), usages, what="A CA for these purposes")
    except CryptoError as error:
        raise from_crypto_error(error) from None
    return usages


def _clean_name_constraints(names: Sequence[str] | None) -> list[str]:
    for name in names or []:  # before strip(), which would quietly drop a leading U+2028
        if isinstance(name, str):
            _checked_characters("a name constraint", name, code="name_constraints_invalid")
    return [name.strip() for name in (names or []) if name and name.strip()]


def _intermediate_policies(policy_oids: Sequence[str] | None) -> tuple[ObjectIdentifier, ...]:
    """The new CA's certificatePolicies: the private OIDs asked for, else anyPolicy (BR 7.1.2.10.5).

    A CA with its own OIDs vouches for those only: its leaves assert them when their profile names
    none, and a profile naming others is refused at issuance (RFC 5280 6.1.3).
    """
    if not policy_oids:
        return (ANY_POLICY,)
    if isinstance(policy_oids, str) or not all(isinstance(oid, str) for oid in policy_oids):
        raise InvalidInput("policy_oids is a list of dotted OIDs.", code="policy_oid_invalid")
    try:
        return tuple(dict.fromkeys(check_policy_oid(oid.strip()) for oid in policy_oids))
    except CryptoError as error:
        raise from_crypto_error(error) from None


def create_intermediate_ca(
    *,
    parent: CertificateAuthority,
    common_name: str,
    actor: Actor,
    root_password: str | None = None,
    key_type: str | KeyType = DEFAULT_INTERMEDIATE_KEY_TYPE,
    days: int = DEFAULT_INTERMEDIATE_DAYS,
    path_length: int | None = 0,
    permitted_names: Sequence[str] | None = None,
    excluded_names: Sequence[str] | None = None,
    slug: str | None = None,
    country: str | None = None,
    crl_validity_hours: int | None = None,
    purposes: Sequence[str] | str | None = None,
    policy_oids: Sequence[str] | None = None,
    key_backend: str = VAULT,
    token_label: str | None = None,
) -> CertificateAuthority:
    """Create an intermediate CA below `parent` (the root, with its password, or another intermediate).

    `purposes` (`serverAuth`, `clientAuth`, `emailProtection`) become the CA's EKU, which limits the
    profiles it can issue; the default is its parent's purposes, all three below a root.
    `policy_oids` are its private certificate policies (default anyPolicy; see `_intermediate_policies`).
    `key_backend` `pkcs11`: the key is made on the token `token_label`, logged in with the server's
    PIN file (`PKI_PKCS11_PIN_FILE`), which is also what signs with it later.
    """
    require(actor, Action.CREATE_CA, parent)
    extended_key_usages = _intermediate_purposes(parent, purposes)
    certificate_policies = _intermediate_policies(policy_oids)
    key_type, days = _key_type(key_type), _validated_days(days)
    crl_validity_hours = _validated_crl_validity(crl_validity_hours, INTERMEDIATE_CRL_VALIDITY_HOURS,
                                                 MAX_INTERMEDIATE_CRL_VALIDITY_HOURS)
    path_length = _validated_path_length(path_length)
    permitted, excluded = _clean_name_constraints(permitted_names), _clean_name_constraints(excluded_names)
    ensure_usable_issuer(parent)
    if parent.is_root:
        _checked_root_password(root_password, key_backend=parent.key_backend)
    subject = _subject(common_name, parent.organization, country)
    slug = _ca_slug(slug, common_name)
    _check_token_use(key_backend, token_label, for_root=False)
    with signer_for(parent, root_password=root_password, actor=actor) as issuer, \
            fresh_ca_key(key_type, for_root=False, backend=key_backend, key_label=f"pki-{slug}",
                         token_label=token_label) as key:
        try:
            certificate = build_intermediate_ca_certificate(
                load_x509(parent.certificate), issuer, key.public_key(), subject, days, path_length,
                publication_urls(parent), permitted=permitted or None, excluded=excluded or None,
                extended_key_usages=extended_key_usages, policy_oids=certificate_policies,
            )
        except CryptoError as error:
            raise from_crypto_error(error) from None
        store, key_directory = artifact_store(), _key_directory_for(key)
        with storage_errors(), key_removed_on_failure(store, key_directory):
            key.seal(store, key_directory, root_password=None)
        with key_removed_on_failure(store, key_directory), transaction.atomic():
            row = create_certificate_row(
                certificate, organization=parent.organization, issuer=parent,
                kind=CertificateKind.INTERMEDIATE_CA, key_source=KeySource.SERVER, created_by=actor.username,
            )
            ca = CertificateAuthority.objects.create(**_record_key(dict(
                organization=parent.organization, name=common_name.strip(), slug=slug,
                kind=CertificateAuthority.Kind.INTERMEDIATE, parent=parent, certificate=row,
                key_directory=key_directory, path_length=path_length, permitted_names=permitted,
                excluded_names=excluded, crl_validity_hours=crl_validity_hours,
            ), key))
            _record_ca_created(ca, actor)
        key.recorded = True
        # While the parent's signer is open: a root re-signs its CRL (the new child's OCSP answer).
        publish_new_ca(ca, actor, signer=key.signer, parent_signer=issuer)
    return ca
