"""tls-alpn-01 (RFC 8737; IP identifiers RFC 8738 §6): a self-signed certificate proving the key authorization.

A TLS connection to the identifier on PKI_ACME_TLS_PORT, SNI the name (for an address, its
reverse-mapping name), offering only the ALPN protocol "acme-tls/1", which must be negotiated.
The certificate must have exactly one subjectAltName, the identifier, and the critical
id-pe-acmeIdentifier extension whose value is the DER OCTET STRING of SHA-256(key authorization).
Its chain and validity are not checked: RFC 8737 §3 says the certificate is self-signed and only
these fields are the proof.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from acme_server.validation.identifiers import Identifier
from acme_server.validation.network import Deadline, ValidationConfig, connect, display_address, resolve_addresses
from acme_server.validation.outcome import INCORRECT_RESPONSE, TLS, ChallengeFailure

ACME_TLS_ALPN = "acme-tls/1"
ID_PE_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
OCTET_STRING_TAG = 0x04


def acme_identifier_value(key_authorization: str) -> bytes:
    """The extension's DER value: OCTET STRING (SIZE (32)) of the digest (RFC 8737 §3)."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return bytes([OCTET_STRING_TAG, len(digest)]) + digest


def validate_tlsalpn01(identifier: Identifier, token: str, key_authorization: str, config: ValidationConfig,
                       deadline: Deadline) -> None:
    """Return when the certificate proves the key authorization; raise `ChallengeFailure` otherwise."""
    server_name = identifier.tls_server_name
    host = identifier.value
    sock = connect(resolve_addresses(host, config, deadline), config.tls_port, deadline)
    where = _peer(sock, host, config.tls_port)
    try:
        with deadline.watch(sock) as watched:
            sock.settimeout(deadline.step_timeout(f"TLS handshake with {where}"))
            sock = watched.sock = _acme_tls_context().wrap_socket(sock, server_hostname=server_name)
            protocol = sock.selected_alpn_protocol()
            certificate = sock.getpeercert(binary_form=True)
    except ssl.SSLError as error:
        if deadline.expired:
            raise deadline.timed_out(f"TLS handshake with {where}") from None
        raise ChallengeFailure(TLS, f"TLS handshake with {where} (SNI {server_name}) failed: "
                                    f"{error.reason or type(error).__name__}") from None
    except OSError as error:
        if deadline.expired or isinstance(error, TimeoutError):
            raise deadline.timed_out(f"TLS handshake with {where}") from None
        raise ChallengeFailure(TLS, f"TLS handshake with {where} (SNI {server_name}) failed: "
                                    f"{error.strerror or 'the connection was closed'}") from None
    finally:
        sock.close()
    if protocol != ACME_TLS_ALPN:
        raise ChallengeFailure(TLS, f"{where} (SNI {server_name}) did not negotiate the ALPN protocol "
                                    f"{ACME_TLS_ALPN} (RFC 8737 §3)")
    if not certificate:
        raise ChallengeFailure(TLS, f"{where} (SNI {server_name}) sent no certificate")
    check_certificate(certificate, identifier, key_authorization, where)


def check_certificate(der: bytes, identifier: Identifier, key_authorization: str, where: str) -> None:
    """The RFC 8737 §3 checks of the challenge certificate."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        extensions = certificate.extensions
    except (ValueError, x509.DuplicateExtension):
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate that cannot be parsed, or has an "
                                                   "extension twice") from None
    _check_subject_alt_name(extensions, identifier, where)
    try:
        extension = extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate without the acmeIdentifier "
                                                   "extension (1.3.6.1.5.5.7.1.31)") from None
    if not extension.critical:
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate whose acmeIdentifier extension is "
                                                   "not critical (RFC 8737 §3)")
    value = getattr(extension.value, "value", b"")
    if not hmac.compare_digest(value, acme_identifier_value(key_authorization)):
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate whose acmeIdentifier is not the "
                                                   "digest of this challenge's key authorization")


def _check_subject_alt_name(extensions: x509.Extensions, identifier: Identifier, where: str) -> None:
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    if len(names) != 1:
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate with {len(names)} subjectAltNames: "
                                                   f"exactly one, {identifier.value}, is required (RFC 8737 §3)")
    name = names[0]
    if identifier.address is not None:
        matches = isinstance(name, x509.IPAddress) and name.value == identifier.address
    else:
        matches = isinstance(name, x509.DNSName) and name.value.lower().removesuffix(".") == identifier.value
    if not matches:
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{where} sent a certificate for another name: its subjectAltName "
                                                   f"is not {identifier.value}")


def _peer(sock, host: str, port: int) -> str:
    try:
        return display_address(sock.getpeername()[0], port)
    except OSError:
        return display_address(host, port)


def _acme_tls_context() -> ssl.SSLContext:
    """TLS 1.2 or later, offering only acme-tls/1, no certificate verification (RFC 8737 §3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed by design
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN])
    return context
