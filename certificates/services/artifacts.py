"""What a certificate's holder downloads: PEM, DER, chains, the PKCS#12 and its password.

Every download and every password reveal leaves an audit event. The PKCS#12 and its
password hold the private key: managers and admins only (`permissions`), in every channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.serialization import Encoding

from audit.actions import AuditAction
from audit.services import record_event
from certificates.errors import InvalidInput, NotFound
from certificates.keystore import artifact_store
from certificates.models import Certificate, CertificateAuthority
from certificates.selectors import ca_chain
from certificates.services.permissions import Action, require
from certificates.services.records import load_x509
from certificates.vault.custody import load_secret
from pki_project.actor import Actor


class DownloadFormat(StrEnum):
    PEM = "pem"
    DER = "der"
    CHAIN = "chain"  # the certificate and its intermediates: what a TLS server sends
    FULLCHAIN = "fullchain"  # ... and the root
    P12 = "p12"


CONTENT_TYPES = {
    DownloadFormat.PEM: "application/x-pem-file",
    DownloadFormat.DER: "application/pkix-cert",
    DownloadFormat.CHAIN: "application/pem-certificate-chain",  # RFC 8555 9.1
    DownloadFormat.FULLCHAIN: "application/pem-certificate-chain",
    DownloadFormat.P12: "application/x-pkcs12",
}
EXTENSIONS = {
    DownloadFormat.PEM: "pem", DownloadFormat.DER: "der", DownloadFormat.CHAIN: "chain.pem",
    DownloadFormat.FULLCHAIN: "fullchain.pem", DownloadFormat.P12: "p12",
}


@dataclass(frozen=True)
class Download:
    content: bytes
    content_type: str
    filename: str


def parse_format(value: str) -> DownloadFormat:
    try:
        return DownloadFormat(value)
    except ValueError:
        raise InvalidInput(
            f"Unknown format '{value}'. Use one of: {', '.join(DownloadFormat)}.", code="invalid_format"
        ) from None


def certificate_pem(certificate: Certificate) -> bytes:
    return load_x509(certificate).public_bytes(Encoding.PEM)


def issuer_chain(certificate: Certificate, include_root: bool) -> list[Certificate]:
    """The CA certificates above `certificate`, nearest first."""
    if certificate.issuer_id is None:
        return []
    return [ca.certificate for ca in ca_chain(_issuer_of(certificate)) if include_root or not ca.is_root]


def chain_pem(certificate: Certificate, include_root: bool = False) -> bytes:
    return certificate_pem(certificate) + _issuer_chain_pem(certificate, include_root)


# The PEM of the CA certificates above an issuer, by the issuer certificate's fingerprint
# and whether the root is included. What is above a CA certificate never changes (its
# signature fixes its issuer), so the walk up the hierarchy is done once per process.
_ISSUER_CHAIN_PEMS: dict[tuple[str, bool], bytes] = {}
_ISSUER_CHAIN_PEMS_MAX = 1024


def _issuer_chain_pem(certificate: Certificate, include_root: bool) -> bytes:
    if certificate.issuer_id is None:
        return b""
    issuer = _issuer_of(certificate)
    key = (issuer.certificate.fingerprint_sha256, include_root)
    pem = _ISSUER_CHAIN_PEMS.get(key)
    if pem is None:
        pem = b"".join(certificate_pem(ca.certificate) for ca in ca_chain(issuer) if include_root or not ca.is_root)
        if len(_ISSUER_CHAIN_PEMS) >= _ISSUER_CHAIN_PEMS_MAX:
            _ISSUER_CHAIN_PEMS.clear()
        _ISSUER_CHAIN_PEMS[key] = pem
    return pem


def _issuer_of(certificate: Certificate) -> CertificateAuthority:
    """The issuing CA with its certificate row: the one in hand if the caller loaded both, else one query."""
    issuer = certificate.issuer if Certificate.issuer.is_cached(certificate) else None
    if issuer is not None and CertificateAuthority.certificate.is_cached(issuer):
        return issuer
    return CertificateAuthority.objects.select_related("certificate").get(pk=certificate.issuer_id)


def _file_stem(certificate: Certificate) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", certificate.common_name or "").strip("._") or certificate.serial
    return stem[:64]


def _content(certificate: Certificate, fmt: DownloadFormat) -> bytes:
    if fmt is DownloadFormat.PEM:
        return certificate_pem(certificate)
    if fmt is DownloadFormat.DER:
        return bytes(certificate.der)
    if fmt is DownloadFormat.CHAIN:
        return chain_pem(certificate)
    if fmt is DownloadFormat.FULLCHAIN:
        return chain_pem(certificate, include_root=True)
    if not certificate.pkcs12_path:
        raise NotFound("This certificate has no PKCS#12: its key was never on this server.", code="no_pkcs12")
    return artifact_store().read(certificate.pkcs12_path)


def download_certificate(certificate: Certificate, fmt: str, *, actor: Actor) -> Download:
    fmt = parse_format(fmt)
    require(actor, Action.DOWNLOAD_PKCS12 if fmt is DownloadFormat.P12 else Action.DOWNLOAD, certificate)
    content = _content(certificate, fmt)
    record_event(
        AuditAction.CERTIFICATE_DOWNLOAD, **actor.audit_kwargs(), organization_id=certificate.organization_id,
        target_type="certificate", target_id=str(certificate.pk), target_serial=certificate.serial,
        details={"format": str(fmt)},
    )
    return Download(content, CONTENT_TYPES[fmt], f"{_file_stem(certificate)}.{EXTENSIONS[fmt]}")


def reveal_pkcs12_password(certificate: Certificate, *, actor: Actor) -> str:
    """The PKCS#12 password of a server-generated key. Each reveal is audited."""
    require(actor, Action.REVEAL_PKCS12_PASSWORD, certificate)
    if not certificate.pkcs12_password_path:
        raise NotFound("This certificate has no PKCS#12 password: its key was never on this server.",
                       code="no_pkcs12")
    password = load_secret(artifact_store(), certificate.pkcs12_password_path).decode()
    record_event(
        AuditAction.PKCS12_PASSWORD_REVEAL, **actor.audit_kwargs(), organization_id=certificate.organization_id,
        target_type="certificate", target_id=str(certificate.pk), target_serial=certificate.serial,
    )
    return password
