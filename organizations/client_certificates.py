"""Client-certificate (mTLS) sign-in through a TLS-terminating proxy, and the bindings it rests on.

The TLS handshake ends at the proxy (nginx, HAProxy), which verifies the client's certificate
chain against this PKI's CA bundle and hands the result on in three request headers:

* `X-PKI-Client-Cert`: the client's certificate, PEM, URL-encoded (nginx `$ssl_client_escaped_cert`);
* `X-PKI-Client-Verify`: the proxy's verdict, `SUCCESS` or `FAILED:<reason>` (`$ssl_client_verify`);
* `X-PKI-Proxy-Secret`: `PKI_MTLS_PROXY_SECRET`, which only the proxy knows.

They are believed only from a peer address in `PKI_MTLS_TRUSTED_PROXIES` and with the right
secret (compared in constant time); anything else that carries them is refused and audited, and
no other route reads them. The proxy's verdict is necessary but not enough: the presented
certificate must be one this PKI issued (its SHA-256 fingerprint is in the database), an end-entity
certificate for TLS client authentication (RFC 5280 §4.2.1.12, `id-kp-clientAuth`), inside its
validity, not revoked, issued by CAs that are neither revoked nor expired (all read from the
database at each request), and bound by staff to an active member of the certificate's own
organization (`ClientCertificateBinding`). A session it opens is refused again as soon as any of
that stops holding (`session_certificate_refusal`, called for every request with the session).

`verified_client_certificate(request)` is the check alone, for protocols that authenticate a
device by its current certificate (EST `simplereenroll`, RFC 7030 §3.3.2) without a member.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
from datetime import datetime
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from certificates.crypto.fingerprints import der_fingerprint_sha256
from certificates.models import Certificate, CertificateKind
from organizations import audit_hooks
from organizations.models import ClientCertificateBinding, Membership
from organizations.roles import Role
from organizations.services import (
    AuthenticationFailed,
    IdentityError,
    NotPermitted,
    OpenedSession,
    open_certificate_session,
)
from organizations.signin import refuse_credential
from pki_project.actor import Actor
from pki_project.ratelimit import client_ip

CERTIFICATE_HEADER = "X-PKI-Client-Cert"
VERIFY_HEADER = "X-PKI-Client-Verify"
SECRET_HEADER = "X-PKI-Proxy-Secret"  # noqa: S105 (a header name)
HEADERS = (CERTIFICATE_HEADER, VERIFY_HEADER, SECRET_HEADER)
VERIFIED = "SUCCESS"
MAX_CERTIFICATE_HEADER_LENGTH = 32768  # a URL-encoded PEM of a large RSA certificate stays well below
CLIENT_CERTIFICATE_DOOR = "client_certificate"
_CHECKED = "_pki_client_certificate_checked"


class ClientCertificateRefused(AuthenticationFailed):
    """The proxy's headers, or the certificate they carry, are not good for signing in."""


class NoClientCertificate(Exception):
    """Nothing was presented: no proxy headers, or the trusted proxy saw no client certificate."""


def _meta_name(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def carries_client_certificate_headers(request: HttpRequest) -> bool:
    """Any of the proxy's headers is on the request (forged or not)."""
    return any(_meta_name(header) in request.META for header in HEADERS)


# --- The proxy ---------------------------------------------------------------------------------


def _require_trusted_proxy(request: HttpRequest) -> None:
    """The request comes from a configured proxy address with the proxy secret, or it is refused."""
    config = settings.PKI_MTLS
    if not config.enabled:
        raise ClientCertificateRefused("client-certificate login is not configured")
    try:
        peer = ipaddress.ip_address(client_ip(request))
    except ValueError:
        raise ClientCertificateRefused("peer address unknown") from None
    if not any(peer in network for network in config.trusted_proxies):
        raise ClientCertificateRefused("proxy headers from an untrusted address")
    presented = request.META.get(_meta_name(SECRET_HEADER), "")
    if not presented:
        raise ClientCertificateRefused("proxy secret missing")
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), config.secret.encode()):
        raise ClientCertificateRefused("wrong proxy secret")


def _presented_certificate(request: HttpRequest) -> x509.Certificate | None:
    """The certificate the proxy verified, or None when the client presented none."""
    verdict = request.META.get(_meta_name(VERIFY_HEADER), "").strip()
    text = request.META.get(_meta_name(CERTIFICATE_HEADER), "").strip()
    if not text and verdict in ("", "NONE"):
        return None
    if verdict != VERIFIED:
        raise ClientCertificateRefused(f"proxy did not verify the certificate ({verdict[:80] or 'no verdict'})")
    if not text or len(text) > MAX_CERTIFICATE_HEADER_LENGTH:
        raise ClientCertificateRefused("certificate header missing or too long")
    try:
        return x509.load_pem_x509_certificate(unquote(text).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ClientCertificateRefused("certificate header is not a PEM certificate") from None


# --- The certificate ---------------------------------------------------------------------------


def certificate_refusal(certificate: Certificate, now: datetime) -> str | None:
    """Why `certificate` may not authenticate a client now (None: it may). Reads the database's state."""
    if certificate.kind != CertificateKind.END_ENTITY:
        return "not an end-entity certificate"
    if certificate.revoked_at is not None:
        return "certificate revoked"
    if not certificate.not_before <= now < certificate.not_after:
        return "certificate expired or not yet valid"
    if not _allows_client_auth(certificate):
        return "certificate not for TLS client authentication"
    authority = certificate.issuer
    while authority is not None:
        issuer_certificate = authority.certificate
        if issuer_certificate.revoked_at is not None or not issuer_certificate.not_after > now:
            return "issuing CA revoked or expired"
        authority = authority.parent
    return None


def _allows_client_auth(certificate: Certificate) -> bool:
    """RFC 5280 §4.2.1.12: an extended key usage, when present, must name clientAuth (or anyExtendedKeyUsage)."""
    parsed = x509.load_der_x509_certificate(bytes(certificate.der))
    try:
        usages = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _issued_certificate(presented: x509.Certificate) -> Certificate:
    """This PKI's record of exactly the presented certificate (by SHA-256 of its DER), or refused."""
    fingerprint = der_fingerprint_sha256(presented.public_bytes(Encoding.DER))
    certificate = (Certificate.objects.select_related("issuer__certificate", "issuer__parent__certificate")
                   .filter(fingerprint_sha256=fingerprint).first())
    if certificate is None:
        raise ClientCertificateRefused("certificate not issued by this PKI")
    return certificate


def check_client_certificate(request: HttpRequest) -> Certificate | None:
    """The client's certificate as the trusted proxy verified it and this PKI knows it; None without one.

    Raises `ClientCertificateRefused` for forged or untrusted headers and for a certificate that
    may not authenticate (see the module's docstring).
    """
    if not carries_client_certificate_headers(request):
        return None
    _require_trusted_proxy(request)
    presented = _presented_certificate(request)
    if presented is None:
        return None
    certificate = _issued_certificate(presented)
    reason = certificate_refusal(certificate, timezone.now())
    if reason:
        raise ClientCertificateRefused(reason)
    return certificate


def verified_client_certificate(request: HttpRequest, *, door: str = CLIENT_CERTIFICATE_DOOR) -> Certificate | None:
    """The verified client certificate, or None (none presented, or refused: the refusal is audited once).

    For protocols that authenticate a device by its certificate alone (EST re-enrollment); `door`
    names the protocol on the refusal's audit event. Safe to call more than once per request.
    """
    if hasattr(request, _CHECKED):
        return getattr(request, _CHECKED)
    certificate = None
    try:
        certificate = check_client_certificate(request)
    except ClientCertificateRefused as error:
        with contextlib.suppress(AuthenticationFailed):  # refused: recorded and counted, the caller gets None
            refuse_credential(error, request=request, prefix=None, via=door)
    setattr(request, _CHECKED, certificate)
    return certificate


# --- The member --------------------------------------------------------------------------------


def bound_membership(certificate: Certificate) -> Membership:
    """The membership of the active member `certificate` is bound to, in its organization; else refused."""
    binding = (ClientCertificateBinding.objects.select_related("user", "user__membership")
               .filter(certificate=certificate).first())
    if binding is None:
        raise ClientCertificateRefused("certificate not bound to a member")
    if not binding.user.is_active:
        raise ClientCertificateRefused("user inactive")
    membership = getattr(binding.user, "membership", None)
    if membership is None:
        raise ClientCertificateRefused("user has no membership")
    if membership.organization_id is None or membership.organization_id != certificate.organization_id:
        raise ClientCertificateRefused("certificate of another organization")
    return membership


def sign_in_with_client_certificate(request: HttpRequest) -> tuple[OpenedSession, Membership]:
    """`POST /auth/mtls`: a session for the member bound to the verified client certificate.

    Every refusal is counted like a wrong API key (`organizations.signin`) and audited as an
    `auth.login` failure with `via: client_certificate`; raises `AuthenticationFailed` or
    `TooManyAttempts`. A request that presents nothing (like an empty login form) raises
    `NoClientCertificate` and is neither counted nor recorded.
    """
    try:
        certificate = check_client_certificate(request)
        if certificate is None:
            raise NoClientCertificate
        membership = bound_membership(certificate)
    except ClientCertificateRefused as error:
        refuse_credential(error, request=request, prefix=None, via=CLIENT_CERTIFICATE_DOOR)
    return open_certificate_session(certificate, membership, request=request), membership


def session_certificate_refusal(certificate: Certificate, user_id: int, now: datetime) -> str | None:
    """Why a session opened with `certificate` for `user_id` must end now (None: it may go on)."""
    reason = certificate_refusal(certificate, now)
    if reason:
        return reason
    try:
        membership = bound_membership(certificate)
    except ClientCertificateRefused as error:
        return error.reason
    return None if membership.user_id == user_id else "certificate bound to someone else"


# --- Bindings (staff) --------------------------------------------------------------------------


def _require_may_bind(actor: Actor, certificate: Certificate) -> None:
    """The console, a global admin, or an admin of the certificate's organization."""
    principal = actor.principal
    if actor.is_operator or (principal is not None and principal.is_global_admin):
        return
    if (principal is None or principal.role is not Role.ADMIN
            or principal.organization_id != certificate.organization_id):
        raise NotPermitted("Only an admin of the certificate's organization may bind or unbind it.")


def bind_client_certificate(user, certificate: Certificate, *, actor: Actor) -> ClientCertificateBinding:
    """Bind `certificate` to `user`, who then signs in with it. Audited; refused with `IdentityError`.

    The user must be an active member of the certificate's organization (a global admin, outside
    every organization, cannot be bound), the certificate usable for client authentication now,
    and not bound already.
    """
    _require_may_bind(actor, certificate)
    membership = Membership.objects.filter(user=user).first()
    if membership is None or membership.organization_id != certificate.organization_id:
        raise IdentityError(f"User '{user.get_username()}' is not a member of the certificate's organization.",
                            code="wrong_organization")
    if not user.is_active:
        raise IdentityError(f"User '{user.get_username()}' is inactive.", code="user_inactive")
    reason = certificate_refusal(certificate, timezone.now())
    if reason:
        raise IdentityError(f"Certificate {certificate.serial} cannot sign in: {reason}.", code="unusable_certificate")
    try:
        with transaction.atomic():
            binding = ClientCertificateBinding.objects.create(user=user, certificate=certificate,
                                                              created_by=actor.username)
            audit_hooks.record(
                "CLIENT_CERTIFICATE_BIND", **actor.audit_kwargs(), organization_id=certificate.organization_id,
                target_type="client_certificate_binding", target_id=str(binding.pk),
                details={"user": user.get_username(), "certificate_id": certificate.pk, "serial": certificate.serial,
                         "fingerprint_sha256": certificate.fingerprint_sha256},
            )
    except IntegrityError:
        raise IdentityError(f"Certificate {certificate.serial} is bound already.", code="already_bound") from None
    return binding


def unbind_client_certificate(binding: ClientCertificateBinding, *, actor: Actor) -> None:
    """Remove a binding: its sessions are refused from their next request. Audited."""
    certificate = binding.certificate
    _require_may_bind(actor, certificate)
    with transaction.atomic():
        audit_hooks.record(
            "CLIENT_CERTIFICATE_UNBIND", **actor.audit_kwargs(), organization_id=certificate.organization_id,
            target_type="client_certificate_binding", target_id=str(binding.pk),
            details={"user": binding.user.get_username(), "certificate_id": certificate.pk,
                     "serial": certificate.serial},
        )
        binding.delete()
