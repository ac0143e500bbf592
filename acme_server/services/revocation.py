"""revokeCert (RFC 8555 7.6): by the account that ordered the certificate, or by the certificate's own key.

The revocation itself is the project's revocation service: the certificate is marked revoked in
the same transaction as its audit event, OCSP answers from the database at once, and the issuer's
CRL is re-signed when the transaction commits.
"""

from __future__ import annotations

from cryptography import x509
from django.db import transaction

from acme_server.models import Account
from acme_server.services import jose
from acme_server.services.audit import record_acme_event
from acme_server.services.problems import AcmeProblem
from acme_server.services.requests import VerifiedRequest
from audit.actions import AuditAction
from certificates.crypto.fingerprints import certificate_fingerprint_sha256
from certificates.errors import ServiceError
from certificates.models import Certificate, CertificateKind, RevocationReason
from certificates.services.revocation import revoke_certificate
from pki_project.actor import Actor

# RFC 5280 5.3.1 reason codes a subscriber may give (no certificateHold/removeFromCRL: revocation is final;
# cACompromise and aACompromise are the CA's to declare).
SUBSCRIBER_REASONS = {
    0: RevocationReason.UNSPECIFIED,
    1: RevocationReason.KEY_COMPROMISE,
    3: RevocationReason.AFFILIATION_CHANGED,
    4: RevocationReason.SUPERSEDED,
    5: RevocationReason.CESSATION_OF_OPERATION,
    9: RevocationReason.PRIVILEGE_WITHDRAWN,
}


def _reason(payload: dict) -> RevocationReason:
    code = payload.get("reason", 0)
    if isinstance(code, bool) or not isinstance(code, int) or code not in SUBSCRIBER_REASONS:
        raise AcmeProblem("badRevocationReason", "Allowed reason codes: 0, 1, 3, 4, 5 and 9 (RFC 5280 5.3.1).")
    return SUBSCRIBER_REASONS[code]


def _certificate_row(der: bytes, ca_organization_id: int) -> Certificate:
    try:
        parsed = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AcmeProblem("malformed", "The certificate is not DER.") from None
    fingerprint = certificate_fingerprint_sha256(parsed)
    row = (Certificate.objects.filter(fingerprint_sha256=fingerprint, organization_id=ca_organization_id,
                                      kind=CertificateKind.END_ENTITY).select_related("acme_order__account").first())
    if row is None:
        raise AcmeProblem("malformed", "This server did not issue that certificate.", status=404)
    return row


def revoke(verified: VerifiedRequest, organization_id: int, request=None) -> Certificate:
    payload = verified.payload_object()
    der = jose.b64url_decode(payload.get("certificate"), "certificate")
    reason = _reason(payload)
    row = _certificate_row(der, organization_id)
    order = getattr(row, "acme_order", None)
    if verified.account is not None:
        if order is None or order.account_id != verified.account.pk:
            raise AcmeProblem("unauthorized", "This account did not order that certificate.")
        account: Account = verified.account
    else:  # signed with the certificate's key (jwk): the JWK must be that key
        certificate_key = x509.load_der_x509_certificate(der).public_key()
        if jose.jwk_of_key(certificate_key) != verified.jwk.members:
            raise AcmeProblem("unauthorized", "The request is not signed by the certificate's key.")
        if order is None:
            raise AcmeProblem("unauthorized", "That certificate was not issued through ACME.")
        account = order.account
    if row.is_revoked:
        raise AcmeProblem("alreadyRevoked", "The certificate is already revoked.")
    signed_by = "account" if verified.account else "certificate_key"
    try:
        with transaction.atomic():  # the revocation and the ACME event commit together
            revoke_certificate(row, reason=str(reason), actor=Actor.acme_account(account, request))
            record_acme_event(AuditAction.ACME_CERTIFICATE_REVOKE, account, target_type="certificate",
                              target_id=str(row.pk), target_serial=row.serial,
                              details={"reason": str(reason), "signed_by": signed_by}, request=request)
    except ServiceError as error:
        if error.code == "already_revoked":
            raise AcmeProblem("alreadyRevoked", "The certificate is already revoked.") from None
        raise AcmeProblem("unauthorized", error.message) from None
    return row
