"""Orders, authorizations and challenges (RFC 8555 7.1.3-7.1.6, 7.4, 7.5), finalization and download.

Status changes are conditional UPDATEs (`filter(status=…).update(…)`), so two workers racing on
one object (two finalize requests, a challenge answered twice) change it once: the loser sees
that the status moved and answers accordingly.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from acme_server.models import (
    Account,
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    IdentifierType,
    Order,
    OrderStatus,
)
from acme_server.services import jose
from acme_server.services.audit import record_acme_event
from acme_server.services.context import AcmeContext, iso_time
from acme_server.services.identifiers import Identifier, identifiers_from_payload, vet_identifiers
from acme_server.services.problems import AcmeProblem
from acme_server.services.renewal_info import cert_id_of, replaced_certificate
from approvals.models import IssuanceApproval
from approvals.services import expire_due as expire_due_approvals
from approvals.services import submit_issuance
from audit.actions import AuditAction
from certificates.crypto.csr import load_csr
from certificates.crypto.errors import CryptoError
from certificates.crypto.names import format_san, parse_san
from certificates.errors import ServiceError
from certificates.models import Certificate
from certificates.selectors import ca_chain
from certificates.services.issuance import IssuanceRequest
from pki_project.actor import Actor


def supported_challenges() -> dict[str, frozenset[str]]:
    from acme_server import validation

    return validation.SUPPORTED_CHALLENGES


def _challenge_types(identifier: Identifier) -> list[str]:
    """RFC 8555 7.1.3/8.4: a wildcard is proven only with dns-01; IPs never with dns-01 (RFC 8738 7)."""
    offered = supported_challenges().get(identifier.type, frozenset())
    if identifier.wildcard:
        offered = offered & {"dns-01"}
    if identifier.type == IdentifierType.IP:
        offered = offered - {"dns-01"}
    return [kind for kind in ("http-01", "dns-01", "tls-alpn-01") if kind in offered]


@contextmanager
def _replacement_race_refused() -> Iterator[None]:
    """Two orders replacing one certificate at once: the database keeps one, the other is alreadyReplaced."""
    try:
        yield
    except IntegrityError:
        raise AcmeProblem("alreadyReplaced", "Another order already replaces that certificate.") from None


def replaces_text(order: Order) -> str:
    return cert_id_of(x509.load_der_x509_certificate(bytes(order.replaces.der)))


def new_order(context: AcmeContext, account: Account, payload: dict, request=None) -> Order:
    """RFC 8555 7.4: vet every identifier first; then the order, one authorization and its challenges each."""
    if payload.get("notBefore") is not None or payload.get("notAfter") is not None:
        raise AcmeProblem("malformed", "notBefore and notAfter are not supported: the profile sets the validity.")
    identifiers = identifiers_from_payload(payload.get("identifiers"))
    if context.ca.is_root:
        raise AcmeProblem("unauthorized", "A root CA does not issue end-entity certificates.")
    eab = account.external_key
    if eab is not None and eab.ca_id is not None and eab.ca_id != context.ca.pk:
        raise AcmeProblem("unauthorized", "This account may only order from the CA its external account key names.")
    vet_identifiers(context.ca, identifiers)
    for identifier in identifiers:
        if not _challenge_types(identifier):
            raise AcmeProblem("rejectedIdentifier", f"No challenge can prove {identifier.value}.")
    ordered = [i.as_json() for i in identifiers]
    replaces = payload.get("replaces")
    replaced = replaced_certificate(context.ca, account, replaces, ordered) if replaces is not None else None
    expires = timezone.now() + timedelta(seconds=settings.PKI_ACME_ORDER_LIFETIME)
    with _replacement_race_refused(), transaction.atomic():
        order = Order.objects.create(account=account, organization_id=account.organization_id, ca=context.ca,
                                     identifiers=ordered, expires_at=expires, replaces=replaced)
        for identifier in identifiers:
            authz = Authorization.objects.create(order=order, identifier_type=identifier.type,
                                                 identifier_value=identifier.base_value,
                                                 wildcard=identifier.wildcard, expires_at=expires)
            Challenge.objects.bulk_create(Challenge(authorization=authz, type=kind)
                                          for kind in _challenge_types(identifier))
        record_acme_event(AuditAction.ACME_ORDER_CREATE, account, target_type="acme_order", target_id=order.name,
                          details={"ca": context.ca.slug, "identifiers": [i.value for i in identifiers],
                                   "replaces": replaced.serial if replaced else None},
                          request=request)
    return order


# --- expiry --------------------------------------------------------------------------------------


def expire_if_due(order: Order) -> Order:
    """RFC 8555 7.1.6: a pending or ready order past its expiry is invalid (its authorizations expired)."""
    now = timezone.now()
    if order.expires_at <= now and order.status in (OrderStatus.PENDING, OrderStatus.READY):
        Authorization.objects.filter(order=order, status=AuthorizationStatus.PENDING).update(
            status=AuthorizationStatus.EXPIRED)
        Order.objects.filter(pk=order.pk, status=order.status).update(
            status=OrderStatus.INVALID, error={"type": "urn:ietf:params:acme:error:malformed",
                                               "detail": "The order expired.", "status": 403})
        order.refresh_from_db()
    return order


# --- documents -----------------------------------------------------------------------------------


def order_document(context: AcmeContext, order: Order) -> dict:
    order = expire_if_due(order)
    if order.status == OrderStatus.PROCESSING and expire_due_approvals():  # its approval may have expired
        order.refresh_from_db()
    document = {
        "status": order.status, "expires": iso_time(order.expires_at), "identifiers": order.identifiers,
        "authorizations": [context.authz_url(a.name) for a in order.authorizations.all()],
        "finalize": context.url("order", order.name, "finalize"),
    }
    if order.replaces_id is not None:
        document["replaces"] = replaces_text(order)
    if order.error:
        document["error"] = order.error
    if order.status == OrderStatus.VALID:
        document["certificate"] = context.certificate_url(order.name)
    return document


def challenge_document(context: AcmeContext, challenge: Challenge) -> dict:
    document = {"type": challenge.type, "url": context.challenge_url(challenge.name), "status": challenge.status,
                "token": challenge.token}
    if challenge.validated_at:
        document["validated"] = iso_time(challenge.validated_at)
    if challenge.error:
        document["error"] = challenge.error
    return document


def authorization_document(context: AcmeContext, authz: Authorization) -> dict:
    expire_if_due(authz.order)
    authz.refresh_from_db()
    document = {"status": authz.status, "expires": iso_time(authz.expires_at),
                "identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
                "challenges": [challenge_document(context, c) for c in authz.challenges.all()]}
    if authz.wildcard:
        document["wildcard"] = True
    return document


# --- lookups: an account sees only its own objects -----------------------------------------------


def _owned(queryset, account: Account, name: str, path: str):
    found = queryset.filter(name=name, **{path: account}).first()
    if found is None:
        raise AcmeProblem("malformed", "No such resource for this account.", status=404)
    return found


def get_order(account: Account, name: str) -> Order:
    return _owned(Order.objects.all(), account, name, "account")


def get_authorization(account: Account, name: str) -> Authorization:
    return _owned(Authorization.objects.select_related("order"), account, name, "order__account")


def get_challenge(account: Account, name: str) -> Challenge:
    return _owned(Challenge.objects.select_related("authorization__order"), account, name,
                  "authorization__order__account")


def deactivate_authorization(authz: Authorization, payload: dict) -> Authorization:
    """RFC 8555 7.5.2: the client gives up an authorization; its order becomes invalid."""
    if payload.get("status") != AuthorizationStatus.DEACTIVATED or set(payload) != {"status"}:
        raise AcmeProblem("malformed", 'The only change of an authorization is {"status": "deactivated"}.')
    with transaction.atomic():
        changed = Authorization.objects.filter(pk=authz.pk, status__in=[AuthorizationStatus.PENDING,
                                                                         AuthorizationStatus.VALID]).update(
            status=AuthorizationStatus.DEACTIVATED)
        if not changed:
            raise AcmeProblem("malformed", f"An authorization that is {authz.status} cannot be deactivated.")
        Order.objects.filter(pk=authz.order_id, status__in=[OrderStatus.PENDING, OrderStatus.READY]).update(
            status=OrderStatus.INVALID)
        record_acme_event(AuditAction.ACME_AUTHORIZATION_DEACTIVATE, authz.order.account,
                          target_type="acme_authorization", target_id=authz.name,
                          details={"identifier": str(authz)})
    authz.refresh_from_db()
    return authz


# --- challenges ----------------------------------------------------------------------------------


def key_authorization(challenge: Challenge, account: Account) -> str:
    """RFC 8555 8.1: token || '.' || base64url(JWK thumbprint)."""
    return f"{challenge.token}.{account.thumbprint}"


def respond_to_challenge(challenge: Challenge, account: Account) -> Challenge:
    """RFC 8555 7.5.1: pending -> processing, then validation in this worker's pool (never in the request)."""
    from acme_server.services import validation_runner

    expire_if_due(challenge.authorization.order)
    challenge.authorization.refresh_from_db()
    if challenge.authorization.status != AuthorizationStatus.PENDING:
        challenge.refresh_from_db()
        return challenge  # RFC 8555 7.5.1: answering again changes nothing
    started = Challenge.objects.filter(pk=challenge.pk, status=ChallengeStatus.PENDING).update(
        status=ChallengeStatus.PROCESSING)
    challenge.refresh_from_db()
    if started:
        transaction.on_commit(lambda: validation_runner.submit(challenge.pk))
    return challenge


def record_validation(challenge_id: int, valid: bool, problem_type: str | None, detail: str) -> None:
    """Write a validator's outcome: the challenge, its authorization, its order (RFC 8555 7.1.6)."""
    now = timezone.now()
    with transaction.atomic():
        challenge = Challenge.objects.select_related("authorization__order__account").get(pk=challenge_id)
        # One validation of an order at a time: two authorizations validated at once would each read the
        # other's as still pending (READ COMMITTED) and neither would make the order ready.
        Order.objects.select_for_update().filter(pk=challenge.authorization.order_id).first()
        challenge.refresh_from_db(fields=["status"])
        authz = challenge.authorization
        if challenge.status != ChallengeStatus.PROCESSING:
            return
        if valid:
            Challenge.objects.filter(pk=challenge.pk).update(status=ChallengeStatus.VALID, validated_at=now)
            Authorization.objects.filter(pk=authz.pk, status=AuthorizationStatus.PENDING).update(
                status=AuthorizationStatus.VALID)
        else:
            error = {"type": problem_type or "urn:ietf:params:acme:error:incorrectResponse",
                     "detail": detail[:500], "status": 403}
            Challenge.objects.filter(pk=challenge.pk).update(status=ChallengeStatus.INVALID, validated_at=now,
                                                             error=error)
            Authorization.objects.filter(pk=authz.pk, status=AuthorizationStatus.PENDING).update(
                status=AuthorizationStatus.INVALID)
        order = authz.order
        statuses = set(Authorization.objects.filter(order=order).values_list("status", flat=True))
        if statuses - {AuthorizationStatus.VALID, AuthorizationStatus.PENDING}:
            Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                status=OrderStatus.INVALID, error={"type": problem_type or
                                                   "urn:ietf:params:acme:error:incorrectResponse",
                                                   "detail": f"The authorization of {authz} failed.", "status": 403})
        elif statuses == {AuthorizationStatus.VALID}:
            Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(status=OrderStatus.READY)
        record_acme_event(AuditAction.ACME_CHALLENGE_VALIDATE, order.account, target_type="acme_challenge",
                          target_id=challenge.name, outcome="success" if valid else "failure",
                          details={"type": challenge.type, "identifier": str(authz),
                                   "problem": None if valid else (problem_type or "incorrectResponse")})


# --- finalize ------------------------------------------------------------------------------------


def _csr_identifiers(csr: x509.CertificateSigningRequest) -> set[str]:
    names: set[str] = set()
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for name in san:
            names.add(format_san(parse_san(format_san(name))).lower())
    except x509.ExtensionNotFound:
        pass
    except (CryptoError, KeyError, ValueError):
        raise AcmeProblem("badCSR", "The CSR names an identifier that is not acceptable.") from None
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = str(attribute.value)
        try:
            kind = "IP" if _looks_like_ip(value) else "DNS"
            names.add(format_san(parse_san(f"{kind}:{value}")).lower())
        except CryptoError:
            raise AcmeProblem("badCSR", "The CSR's common name is not one of the order's identifiers.") from None
    return names


def _looks_like_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _order_identifiers(order: Order) -> set[str]:
    return {f"{'DNS' if i['type'] == 'dns' else 'IP'}:{i['value']}".lower() for i in order.identifiers}


def finalize_order(context: AcmeContext, order: Order, account: Account, payload: dict, request=None) -> Order:
    """RFC 8555 7.4: the CSR must name exactly the order's identifiers; one certificate per order."""
    order = expire_if_due(order)
    if order.status != OrderStatus.READY:
        raise AcmeProblem("orderNotReady", f"The order is {order.status}, not ready.")
    raw = jose.b64url_decode(payload.get("csr"), "csr")
    try:
        csr = load_csr(raw)
    except CryptoError as error:
        raise AcmeProblem("badCSR", error.message) from None
    if _csr_identifiers(csr) != _order_identifiers(order):
        raise AcmeProblem("badCSR", "The CSR must name exactly the order's identifiers.")
    # Only one request moves the order from ready to processing: a concurrent finalize gets orderNotReady.
    if not Order.objects.filter(pk=order.pk, status=OrderStatus.READY).update(status=OrderStatus.PROCESSING):
        raise AcmeProblem("orderNotReady", "The order is already being finalized.")
    pem = csr.public_bytes(Encoding.PEM)
    try:
        certificate = submit_issuance(
            context.ca, IssuanceRequest(profile=settings.PKI_ACME_PROFILE, csr=pem,
                                        days=settings.PKI_ACME_CERTIFICATE_DAYS),
            actor=Actor.acme_account(account, request), acme_order=order,
        )
    except ServiceError as error:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PROCESSING).update(status=OrderStatus.READY)
        kind = "badCSR" if error.status == 400 else "rejectedIdentifier" if error.status == 422 else "unauthorized"
        raise AcmeProblem(kind, error.message) from None
    except BaseException:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PROCESSING).update(status=OrderStatus.READY)
        raise
    if isinstance(certificate, IssuanceApproval):  # waits for a second person: the order stays processing
        record_acme_event(AuditAction.ACME_ORDER_FINALIZE, account, target_type="acme_order", target_id=order.name,
                          details={"approval": certificate.pk, "status": "pending"}, request=request)
        order.refresh_from_db()
        return order
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.VALID, certificate=certificate)
        record_acme_event(AuditAction.ACME_ORDER_FINALIZE, account, target_type="acme_order", target_id=order.name,
                          target_serial=certificate.serial, details={"certificate": certificate.pk}, request=request)
    order.refresh_from_db()
    return order


def certificate_chain_pem(order: Order) -> bytes:
    """RFC 8555 7.4.2: the end-entity certificate first, then the CAs up to (not including) the root."""
    if order.status != OrderStatus.VALID or order.certificate_id is None:
        raise AcmeProblem("malformed", "The order has no certificate.", status=404)
    certificate: Certificate = order.certificate
    parts = [_pem(bytes(certificate.der))]
    parts.extend(_pem(bytes(authority.certificate.der)) for authority in ca_chain(order.ca) if not authority.is_root)
    return b"".join(parts)


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def orders_of(context: AcmeContext, account: Account) -> dict:
    """RFC 8555 7.1.2.1: the account's pending and valid orders (newest first, at most 200)."""
    names = Order.objects.filter(account=account, status__in=[OrderStatus.PENDING, OrderStatus.READY,
                                                              OrderStatus.PROCESSING, OrderStatus.VALID]
                                 ).values_list("name", flat=True)[:200]
    return {"orders": [context.order_url(name) for name in names]}
