"""Issuing and renewing end-entity certificates: one path for the admin, the API and the CLI.

A profile means the same thing in every channel because every channel calls
`issue_certificate` or `renew_certificate`. The pure builder enforces the profile
(key usage, EKU, SAN types, wildcard rule, maximum validity), the issuer's name
constraints and validity nesting; this module adds what needs the database: the
issuer is an active intermediate, the row, the encrypted PKCS#12, the audit event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import IntegrityError
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.builders import build_end_entity_certificate, check_key_type_for_profile
from certificates.crypto.csr import vet_csr
from certificates.crypto.errors import CryptoError
from certificates.crypto.keys import (
    KeyType,
    PublicKey,
    key_type_of,
    parse_key_type,
)
from certificates.crypto.names import (
    SAN_DNS,
    build_subject,
    check_name_characters,
    dedupe_sans,
    format_san,
    parse_sans,
)
from certificates.crypto.pkcs12 import SubscriberKey, generate_pkcs12_password
from certificates.crypto.policy import (
    check_common_name_in_sans,
    check_general_subtrees,
    describe_validity,
    subject_within_directory_subtrees,
    validate_sans_for_profile,
)
from certificates.crypto.profiles import Profile, max_validity
from certificates.crypto.purposes import certificate_extended_key_usages, purpose_names, uncovered_usages
from certificates.errors import Conflict, InvalidInput, PolicyViolation, from_crypto_error, storage_errors
from certificates.keystore import (
    artifact_store,
    ca_certificate,
    chain_name_constraints,
    new_certificate_directory,
    publication_urls,
)
from certificates.models import Certificate, CertificateAuthority, CertificateKind, KeySource
from certificates.selectors import ca_chain
from certificates.services.authorities import ensure_usable_issuer
from certificates.services.permissions import Action, require, validity_within_key_scope
from certificates.services.profiles import profile_for_issuance, requires_approval
from certificates.services.records import SignedFrom, create_certificate_row, load_x509
from certificates.signers import intermediate_signer
from certificates.vault.storage import ArtifactStore
from pki_project.actor import Actor
from pki_project.db import write_transaction

DEFAULT_DAYS = 365
DEFAULT_SERVER_KEY_TYPE = KeyType.EC_P256
MAX_SANS = 100
PKCS12_FILENAME = "bundle.p12.enc"
PKCS12_PASSWORD_FILENAME = ".pwd.enc"  # noqa: S105  (a file name, not a password)


@dataclass(frozen=True)
class IssuanceRequest:
    """What a client asks for. Either `csr`, or `common_name`/`sans` (+ `key_type`) for a server key."""

    profile: str
    csr: bytes | str | None = None
    common_name: str | None = None
    sans: Sequence[str] = field(default_factory=tuple)
    key_type: str | None = None
    days: int | None = None
    hours: int | None = None  # short-lived certificates: the validity in hours instead of days


@dataclass(frozen=True)
class _Subscriber:
    """The subject side of a certificate, however it arrived."""

    subject: x509.Name
    sans: list[x509.GeneralName]
    public_key: PublicKey | None  # None only while a request that waits for approval is vetted
    key_source: KeySource
    server_key: SubscriberKey | None = None  # only for keys generated here


def _crypto(call, *args, **kwargs):
    """Run a pure-layer call, turning its errors into service errors with the same code and message."""
    try:
        return call(*args, **kwargs)
    except CryptoError as error:
        raise from_crypto_error(error) from None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validated_validity(profile: Profile, days: int | None = None, hours: int | None = None) -> timedelta:
    """The validity asked for in days or hours (not both), within the profile's maximum today.

    Default: a year, or less where the profile (for TLS servers, the BR schedule) allows less.
    """
    allowed = max_validity(profile, timezone.now())
    if days is not None and hours is not None:
        raise InvalidInput("Give the validity in days or in hours, not both.", code="invalid_validity")
    if hours is not None:
        if not _is_count(hours) or not 1 <= hours <= allowed.total_seconds() // 3600:
            raise InvalidInput(f"The '{profile.name}' profile allows between 1 and "
                               f"{int(allowed.total_seconds() // 3600)} hours.", code="invalid_hours")
        return timedelta(hours=hours)
    if days is None:
        return min(timedelta(days=DEFAULT_DAYS), allowed)
    if not _is_count(days) or not days >= 1 or timedelta(days=days) > allowed:
        limit = f"between 1 and {allowed.days} days" if allowed.days else f"at most {describe_validity(allowed)}"
        raise InvalidInput(f"The '{profile.name}' profile allows {limit}.", code="invalid_days")
    return timedelta(days=days)


def ensure_issuing_ca(ca: CertificateAuthority) -> None:
    """Subscriber certificates come from an intermediate (BR 6.1.7: roots sign only CAs and CRLs)."""
    if ca.is_root:
        raise PolicyViolation(
            "A root CA signs only CA certificates: issue from one of its intermediate CAs.", code="root_cannot_issue"
        )
    ensure_usable_issuer(ca)


def ensure_ca_covers_profile(ca: CertificateAuthority, profile: Profile) -> None:
    """The CA's EKU must cover the profile's, or every verifier refuses the certificate (EKU chaining).

    A CA certificate cannot change once signed: an intermediate made before CAs had purposes
    (serverAuth and clientAuth only) keeps refusing the e-mail profile, and the way out is a new
    intermediate with the purpose.
    """
    usages = certificate_extended_key_usages(ca_certificate(ca))
    missing = uncovered_usages(usages, profile.extended_key_usages)
    if missing:
        raise PolicyViolation(
            f"The CA '{ca.slug}' cannot issue '{profile.name}' certificates: the profile needs "
            f"{', '.join(purpose_names(missing))}, and the CA's certificate vouches only for "
            f"{', '.join(purpose_names(usages or ()))}. A CA certificate cannot be changed: create a new "
            f"intermediate CA with the purpose {', '.join(purpose_names(missing))} and issue from it.",
            code="issuer_purpose",
        )


def _requested_sans(texts: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(texts, str | bytes) or not all(isinstance(text, str) for text in texts):
        raise InvalidInput("SANs must be a list of strings such as 'DNS:example.com'.", code="san_invalid")
    if len(texts) > MAX_SANS:
        raise InvalidInput(f"At most {MAX_SANS} subject alternative names.", code="too_many_sans")
    return _crypto(parse_sans, texts)


def _sans_with_common_name(sans: list[x509.GeneralName], common_name: str | None,
                           profile: Profile) -> list[x509.GeneralName]:
    """With no SAN given, a DNS-looking common name becomes the SAN (RFC 6125: SANs are what clients check).

    Only for profiles whose common name must repeat a SAN (TLS servers): a client's `robot-1` or an
    e-mail address is a name, not a host, and no DNS SAN is invented for it.
    """
    if sans or not common_name or not profile.common_name_in_san or SAN_DNS not in profile.allowed_san_types:
        return sans
    try:
        return parse_sans([f"DNS:{common_name}"])
    except CryptoError:
        return sans


def _subject(common_name: str | None) -> x509.Name:
    if common_name:  # the raw name: strip() would quietly drop a trailing U+2029
        _crypto(check_name_characters, "common name", common_name)
    return _crypto(build_subject, common_name.strip() if common_name else None)


def _subscriber_from_csr(request: IssuanceRequest, profile: Profile) -> _Subscriber:
    if request.key_type:
        raise InvalidInput("key_type applies only to keys generated on the server, not to a CSR.", code="invalid")
    csr = _crypto(vet_csr, request.csr)
    common_name = request.common_name or csr.common_name
    sans = _requested_sans(request.sans) if request.sans else csr.sans
    return _Subscriber(
        subject=_subject(common_name), sans=_sans_with_common_name(sans, common_name, profile),
        public_key=csr.public_key, key_source=KeySource.CSR,
    )


def _subscriber_with_server_key(request: IssuanceRequest, profile: Profile) -> _Subscriber:
    if not request.common_name and not request.sans:
        raise InvalidInput("Give a CSR, or a common name and/or SANs for a key generated on the server.",
                           code="invalid")
    key_type = _crypto(parse_key_type, request.key_type or DEFAULT_SERVER_KEY_TYPE)
    _crypto(check_key_type_for_profile, profile, key_type)  # refused before a key is generated
    subject = _subject(request.common_name)  # refused names cost no key generation
    sans = _sans_with_common_name(_requested_sans(request.sans), request.common_name, profile)
    server_key = SubscriberKey(key_type)
    return _Subscriber(
        subject=subject, sans=sans, public_key=server_key.public_key(),
        key_source=KeySource.SERVER, server_key=server_key,
    )


def _sign(ca: CertificateAuthority, subscriber: _Subscriber, profile: Profile,
          days: int | timedelta) -> x509.Certificate:
    return _crypto(
        build_end_entity_certificate, ca_certificate(ca), intermediate_signer(ca),
        subscriber.public_key, subscriber.subject, subscriber.sans, profile, days, publication_urls(ca),
    )


def _with_normalised_common_name(subscriber: _Subscriber, profile: Profile) -> _Subscriber:
    """BR 7.1.4.3: the common name is written as the SAN it repeats (a CSR's `WWW.EXAMPLE.COM` and the
    SAN `www.example.com` give CN `www.example.com`; a mailbox likewise), here so the row says it too."""
    if not profile.common_name_in_san:
        return subscriber
    subject = _crypto(check_common_name_in_sans, subscriber.subject, dedupe_sans(subscriber.sans))
    return subscriber if subject == subscriber.subject else replace(subscriber, subject=subject)


@dataclass(frozen=True)
class _Pkcs12Paths:
    bundle: str = ""
    password: str = ""


def _store_pkcs12(store: ArtifactStore, ca: CertificateAuthority, certificate: x509.Certificate,
                  server_key: SubscriberKey) -> _Pkcs12Paths:
    """Seal the key in a PKCS#12 (AES-256, PBES2) whose random password is itself stored encrypted."""
    chain = [load_x509(authority.certificate) for authority in ca_chain(ca) if not authority.is_root]
    password = generate_pkcs12_password()
    bundle = server_key.pkcs12(certificate, chain, password.encode())
    directory = new_certificate_directory()
    paths = _Pkcs12Paths(f"{directory}/{PKCS12_FILENAME}", f"{directory}/{PKCS12_PASSWORD_FILENAME}")
    with storage_errors(), _pkcs12_removed_on_failure(store, paths):  # never half a pair: both files or neither
        store.write(paths.password, password.encode(), overwrite=False)
        store.write(paths.bundle, bundle, overwrite=False)
    return paths


@contextmanager
def _pkcs12_removed_on_failure(store: ArtifactStore | None, paths: _Pkcs12Paths) -> Iterator[None]:
    if store is None:  # a CSR's certificate: nothing was written
        yield
        return
    try:
        yield
    except BaseException:
        for relpath in (paths.bundle, paths.password):
            if relpath:
                with suppress(OSError):  # a read-only disk refuses the clean-up too: keep the first error
                    store.delete(relpath, missing_ok=True)
        raise


def _issue(ca: CertificateAuthority, subscriber: _Subscriber, profile: Profile, days: int | timedelta, *,
           actor: Actor, predecessor: Certificate | None = None, created_by: str | None = None,
           details: dict | None = None) -> Certificate:
    subscriber = _with_normalised_common_name(subscriber, profile)
    # RFC 5280 4.2.1.10: below a CA constrained to its C and O (BR 7.1.2.5.2) the subject names them too.
    subscriber = replace(subscriber, subject=subject_within_directory_subtrees(subscriber.subject,
                                                                               chain_name_constraints(ca)))
    certificate = _sign(ca, subscriber, profile, days)
    store = artifact_store() if subscriber.server_key else None
    paths = _store_pkcs12(store, ca, certificate, subscriber.server_key) if store else _Pkcs12Paths()
    # The row and its event commit together, in a transaction bracketed by the driver.
    with _pkcs12_removed_on_failure(store, paths), write_transaction():
        try:
            row = create_certificate_row(
                certificate, organization=ca.organization, issuer=ca, kind=CertificateKind.END_ENTITY,
                key_source=subscriber.key_source, created_by=created_by or actor.username, profile=profile.name,
                predecessor=predecessor, pkcs12_path=paths.bundle, pkcs12_password_path=paths.password,
                signed_from=SignedFrom(subscriber.subject, subscriber.sans, subscriber.public_key),
            )
        except IntegrityError:
            raise Conflict("That certificate has already been renewed: renew its successor.",
                           code="already_renewed") from None
        record_event(
            AuditAction.CERTIFICATE_RENEW if predecessor else AuditAction.CERTIFICATE_ISSUE,
            **actor.audit_kwargs(), organization=ca.organization, target_type="certificate",
            target_id=str(row.pk), target_serial=row.serial,
            details={"ca": ca.slug, "profile": profile.name, "key_source": row.key_source,
                     "predecessor": predecessor.serial if predecessor else None, **(details or {})},
            transaction_open=True,
        )
    return row


def _checked_issuance(ca: CertificateAuthority, request: IssuanceRequest, actor: Actor) -> tuple[Profile, timedelta]:
    """What every issuance checks before anything is generated: the rule, the profile, the validity, the CA."""
    require(actor, Action.ISSUE, ca)
    profile = profile_for_issuance(request.profile, ca)
    validity = validated_validity(profile, request.days, request.hours)
    validity = validity_within_key_scope(actor, ca, profile.name, validity,
                                         asked=request.days is not None or request.hours is not None)
    ensure_issuing_ca(ca)
    ensure_ca_covers_profile(ca, profile)
    return profile, validity


def _issue_requested(ca: CertificateAuthority, request: IssuanceRequest, *, actor: Actor,
                     created_by: str | None = None, details: dict | None = None) -> Certificate:
    profile, validity = _checked_issuance(ca, request, actor)
    if request.csr:
        subscriber = _subscriber_from_csr(request, profile)
    else:
        subscriber = _subscriber_with_server_key(request, profile)
    return _issue(ca, subscriber, profile, validity, actor=actor, created_by=created_by, details=details)


def issue_certificate(ca: CertificateAuthority, request: IssuanceRequest, *, actor: Actor) -> Certificate:
    """Issue from a CSR, or with a key generated here (then sealed in an encrypted PKCS#12).

    A CA or profile that requires approval refuses here (`approval_required`): such a request is
    submitted with `approvals.services.submit_issuance` and issued when a second person approves it.
    """
    require(actor, Action.ISSUE, ca)
    if requires_approval(ca, request.profile):
        raise PolicyViolation(
            f"Certificates of the profile '{request.profile}' from the CA '{ca.slug}' need a second person's "
            "approval: submit the request for approval.", code="approval_required")
    return _issue_requested(ca, request, actor=actor)


def issue_approved_certificate(ca: CertificateAuthority, request: IssuanceRequest, *, actor: Actor,
                               requested_by: str, approval_id: int) -> Certificate:
    """Issue an approved request (the approvals service only, inside its transaction): every check again.

    `actor` is the approver; the row's `created_by` stays the requester and the event names both.
    """
    return _issue_requested(ca, request, actor=actor, created_by=requested_by,
                            details={"approval": approval_id, "requested_by": requested_by})


@dataclass(frozen=True)
class VettedRequest:
    """A request that passed every check but signing: normalised, with the names its certificate will carry."""

    request: IssuanceRequest
    common_name: str
    sans: list[str]


def vet_issuance_request(ca: CertificateAuthority, request: IssuanceRequest, *, actor: Actor) -> VettedRequest:
    """Check a request the way issuance will, without generating a key or signing; return it normalised.

    For a request that waits for approval: its profile, validity, names and key type are refused now
    rather than days later. The CSR comes back as PEM; a server key's type is written out. What only
    signing checks (the issuer's validity then) is checked again at approval.
    """
    profile, _validity = _checked_issuance(ca, request, actor)
    if request.csr:
        subscriber = _subscriber_from_csr(request, profile)
        csr_pem = _crypto(vet_csr, request.csr).csr.public_bytes(Encoding.PEM).decode()
        _crypto(check_key_type_for_profile, profile, key_type_of(subscriber.public_key))
        request = replace(request, csr=csr_pem)
    else:
        if not request.common_name and not request.sans:
            raise InvalidInput("Give a CSR, or a common name and/or SANs for a key generated on the server.",
                               code="invalid")
        key_type = _crypto(parse_key_type, request.key_type or DEFAULT_SERVER_KEY_TYPE)
        _crypto(check_key_type_for_profile, profile, key_type)
        sans = _sans_with_common_name(_requested_sans(request.sans), request.common_name, profile)
        subscriber = _Subscriber(subject=_subject(request.common_name), sans=sans, public_key=None,
                                 key_source=KeySource.SERVER)
        request = replace(request, key_type=str(key_type.value))
    _check_names(ca, subscriber, profile)
    common_names = subscriber.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return VettedRequest(request=request, common_name=str(common_names[0].value) if common_names else "",
                         sans=[format_san(name) for name in dedupe_sans(subscriber.sans)])


def _check_names(ca: CertificateAuthority, subscriber: _Subscriber, profile: Profile) -> None:
    """The name rules of the builder (profile, BR 7.1.4.3, every CA's name constraints), without a signature."""
    sans = dedupe_sans(subscriber.sans)
    _crypto(validate_sans_for_profile, profile, sans)
    if profile.common_name_in_san:
        _crypto(check_common_name_in_sans, subscriber.subject, sans)
    for constraints in chain_name_constraints(ca):
        _crypto(check_general_subtrees, constraints.permitted_subtrees, constraints.excluded_subtrees, sans)
    if not sans and not list(subscriber.subject):
        raise InvalidInput("A certificate needs a subject or a subject alternative name.", code="subject_invalid")


def _renewal_subscriber(old: x509.Certificate, row: Certificate, csr: bytes | str | None) -> _Subscriber:
    """Same subject and SANs; a new key for server keys, the new CSR's key, or the same public key."""
    sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) if row.sans else []
    if row.key_source == KeySource.SERVER:
        server_key = SubscriberKey(row.key_type)
        return _Subscriber(old.subject, sans, server_key.public_key(), KeySource.SERVER, server_key)
    public_key = _crypto(vet_csr, csr).public_key if csr else old.public_key()
    return _Subscriber(old.subject, sans, public_key, KeySource.CSR)


def renew_certificate(certificate: Certificate, *, actor: Actor, csr: bytes | str | None = None,
                      days: int | None = None, revoke_predecessor: bool = False,
                      hours: int | None = None) -> Certificate:
    """A new certificate with the same subject, SANs and profile, linked to its predecessor."""
    require(actor, Action.RENEW, certificate)
    if certificate.kind != CertificateKind.END_ENTITY:
        raise InvalidInput("Only end-entity certificates are renewed here.", code="not_renewable")
    if certificate.is_revoked:
        raise PolicyViolation("A revoked certificate cannot be renewed.", code="revoked")
    if csr and certificate.key_source == KeySource.SERVER:
        raise InvalidInput("This certificate's key was generated on the server: renew it without a CSR.",
                           code="invalid")
    if Certificate.objects.filter(predecessor=certificate).exists():
        raise Conflict("That certificate has already been renewed: renew its successor.", code="already_renewed")
    ca = CertificateAuthority.objects.select_related("certificate", "organization").get(pk=certificate.issuer_id)
    profile = profile_for_issuance(certificate.profile, ca)
    validity = validated_validity(profile, days, hours)
    validity = validity_within_key_scope(actor, ca, profile.name, validity, asked=days is not None or hours is not None)
    ensure_issuing_ca(ca)
    ensure_ca_covers_profile(ca, profile)
    subscriber = _renewal_subscriber(load_x509(certificate), certificate, csr)
    renewed = _issue(ca, subscriber, profile, validity, actor=actor, predecessor=certificate)
    if revoke_predecessor:
        from certificates.services.revocation import revoke_certificate

        revoke_certificate(certificate, reason="superseded", actor=actor)
    return renewed
