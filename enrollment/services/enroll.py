"""A machine's enrollment: a CSR and a one-time token in, a certificate out, through the issuance service.

The token is checked (recognised, bound to this CA and organization, the CSR's names within its
patterns) before anything is written; then one transaction claims it with a conditional UPDATE
(`used_at` set only where it is still NULL: of two parallel uses exactly one updates a row),
issues the certificate with the token's CA and profile, links the certificate to the token and
records the use. If issuance refuses, the transaction rolls back and the token stays usable.

Every refusal is a failure event (`enrollment.refuse`) with the reason, never the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.csr import VettedCsr, vet_csr
from certificates.crypto.errors import CryptoError
from certificates.errors import InvalidInput, PermissionRefused, ServiceError, from_crypto_error
from certificates.models import Certificate, CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.records import load_x509
from enrollment.models import EnrollmentToken
from enrollment.services.names import check_requested_names
from enrollment.services.tokens import TokenRefused, recognise_token, token_patterns
from pki_project.actor import Actor
from pki_project.ratelimit import client_ip, hit, shared_store


class RateLimited(ServiceError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many enrollment requests from this address: retry later.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Enrolled:
    certificate: Certificate
    token: EnrollmentToken | None = None


def check_enrollment_rate(request: HttpRequest | None) -> None:
    """Every enrollment request counts per client address (PKI_ENROLL_RATE_PER_IP per PKI_ENROLL_RATE_WINDOW)."""
    limit = settings.PKI_ENROLL_RATE_PER_IP
    if limit <= 0 or request is None:
        return
    result = hit(f"enroll-ip:{client_ip(request)}", limit=limit, window=settings.PKI_ENROLL_RATE_WINDOW,
                 store=shared_store())
    if not result.allowed:
        raise RateLimited(result.retry_after)


def _refusal_event(error: ServiceError, request: HttpRequest | None, *, channel: str,
                   token: EnrollmentToken | None, ca: CertificateAuthority | None) -> None:
    reason = error.reason if isinstance(error, TokenRefused) else error.code
    record_event(AuditAction.ENROLLMENT_REFUSE, request=request, outcome="failure",
                 organization_id=token.organization_id if token else (ca.organization_id if ca else None),
                 target_type="enrollment_token", target_id=token.token_id if token else "",
                 actor_label=f"enroll:{token.token_id}" if token else "enroll:anonymous",
                 details={"channel": channel, "reason": reason, "message": error.message[:300],
                          "ca": ca.slug if ca else None})


@contextmanager
def refusals_audited(request: HttpRequest | None, *, channel: str,
                     ca: CertificateAuthority | None = None) -> Iterator[dict]:
    """Record every refused enrollment (the token, once known, goes in `state["token"]`)."""
    state: dict = {"token": None}
    try:
        yield state
    except RateLimited:
        raise  # a flood is not recorded one event per request (the denial recorder keeps a budget)
    except ServiceError as error:
        token = error.token if isinstance(error, TokenRefused) and error.token else state["token"]
        _refusal_event(error, request, channel=channel, token=token, ca=ca)
        raise


def _vetted(csr: bytes | str) -> VettedCsr:
    try:
        return vet_csr(csr)
    except CryptoError as error:
        raise from_crypto_error(error) from None


def _check_binding(token: EnrollmentToken, ca: CertificateAuthority | None, organization: str | None) -> None:
    if ca is not None and token.ca_id != ca.pk:
        raise PermissionRefused("This enrollment token is for another CA.", code="token_not_for_ca")
    if organization is not None and organization != token.organization.slug:
        raise PermissionRefused("This enrollment token is for another organization.",
                                code="token_not_for_organization")


def _check_issued_names(token: EnrollmentToken, certificate: Certificate) -> None:
    """The names as issued (the profile may turn a common name into a SAN) must be the token's too.

    Raised inside the claiming transaction: the certificate, its event and the claim roll back together.
    """
    issued = load_x509(certificate)
    subject, sans = _current_names(certificate, issued)
    common_names = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    check_requested_names(token_patterns(token), sans, str(common_names[0].value) if common_names else None)


def _claim_and_issue(token: EnrollmentToken, csr_pem: bytes, actor: Actor) -> Certificate:
    with transaction.atomic():
        now = timezone.now()
        if not EnrollmentToken.objects.filter(pk=token.pk).usable(now).update(used_at=now):
            raise TokenRefused("token used concurrently or expired", token)
        certificate = issue_certificate(token.ca, IssuanceRequest(profile=token.profile.name, csr=csr_pem),
                                        actor=actor)
        _check_issued_names(token, certificate)
        EnrollmentToken.objects.filter(pk=token.pk).update(certificate=certificate)
        record_event(AuditAction.ENROLLMENT_TOKEN_USE, **actor.audit_kwargs(), organization_id=token.organization_id,
                     target_type="enrollment_token", target_id=token.token_id, target_serial=certificate.serial,
                     details={"ca": token.ca.slug, "profile": token.profile.name, "certificate": certificate.pk})
    return certificate


def enroll_with_token(token_text: object, csr: bytes | str, *, request: HttpRequest | None = None,
                      ca: CertificateAuthority | None = None, organization: str | None = None,
                      channel: str = "enroll") -> Enrolled:
    """Issue the certificate the CSR asks for, once per token, within everything the token is bound to.

    `ca` (the EST path's CA) and `organization` (a slug the client states) must be the token's own.
    """
    check_enrollment_rate(request)
    with refusals_audited(request, channel=channel, ca=ca) as state:
        token = recognise_token(token_text)
        state["token"] = token
        _check_binding(token, ca, organization)
        vetted = _vetted(csr)
        check_requested_names(token_patterns(token), vetted.sans, vetted.common_name)
        actor = Actor.enrolling_machine(f"enroll:{token.token_id}", token.organization_id, request)
        certificate = _claim_and_issue(token, vetted.csr.public_bytes(Encoding.PEM), actor)
    return Enrolled(certificate, token)


def _names_of(subject: x509.Name, sans: list[x509.GeneralName]) -> tuple:
    """The common name and the SANs: what a certificate names (the CA may add its C and O to the subject)."""
    common_names = [attribute.value for attribute in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return common_names, sorted(repr(name) for name in sans)


def _current_names(certificate: Certificate, loaded: x509.Certificate | None = None) -> tuple:
    loaded = loaded or load_x509(certificate)
    try:
        sans = list(loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    return loaded.subject, sans


def reenroll_with_certificate(current: Certificate, csr: bytes | str, *, ca: CertificateAuthority,
                              request: HttpRequest | None = None) -> Enrolled:
    """EST simplereenroll by the client's current certificate (RFC 7030 4.2.2): the same names, a new certificate.

    The CSR's subject and SANs must equal the current certificate's; the key may be new (rekey).
    """
    check_enrollment_rate(request)
    with refusals_audited(request, channel="est-reenroll", ca=ca):
        if current.issuer_id != ca.pk:
            raise PermissionRefused("This certificate was not issued by this CA.", code="certificate_not_for_ca")
        if current.is_revoked or current.not_after <= timezone.now():
            raise PermissionRefused("The current certificate is revoked or expired: enroll again.",
                                    code="certificate_not_valid")
        vetted = _vetted(csr)
        subject, sans = _current_names(current)
        if _names_of(vetted.csr.subject, vetted.sans) != _names_of(subject, sans):
            raise InvalidInput("RFC 7030 4.2.2: the CSR's common name and subject alternative names must be those "
                               "of the certificate being renewed.", code="names_differ")
        actor = Actor.enrolling_machine(f"est:{current.serial}", current.organization_id, request)
        renewed = renew_certificate(current, actor=actor, csr=vetted.csr.public_bytes(Encoding.PEM))
    return Enrolled(renewed)
