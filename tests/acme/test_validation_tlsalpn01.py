"""tls-alpn-01 (RFC 8737, RFC 8738 §6) against pebble-challtestsrv and local TLS responders.

challtestsrv builds a correct challenge certificate for any name it was given; the hostile ones
(wrong or non-critical extension, two SANs, no ALPN, an IP SAN) come from `tls_responder`
with certificates built here with cryptography.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket

import pytest
from cryptography import x509

from acme_server.validation import (
    CONNECTION,
    INCORRECT_RESPONSE,
    TLS,
    ChallengeOutcome,
    validate_challenge,
)
from tests.acme.challenge_servers import (
    LOOPBACK,
    ChallTestSrv,
    challenge_certificate,
    free_port,
    key_authorization,
    raw_tcp_responder,
    silent_tcp_listener,
    tls_responder,
)

NAME = "service.tls-alpn.example"


@pytest.fixture
def pointed(settings, challtestsrv: ChallTestSrv) -> ChallTestSrv:
    settings.PKI_ACME_TLS_PORT = challtestsrv.tls_alpn_port
    settings.PKI_ACME_DNS_RESOLVER = challtestsrv.resolver
    settings.PKI_ACME_VALIDATION_TIMEOUT = 5
    return challtestsrv


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(32)


def fresh_name() -> str:
    return f"host-{secrets.token_hex(4)}.tls-alpn.example"


def tls_alpn(value: str, token: str, key_auth: str, identifier_type: str = "dns") -> ChallengeOutcome:
    return validate_challenge("tls-alpn-01", identifier_type, value, token, key_auth)


def test_challtestsrvs_certificate_is_valid(pointed: ChallTestSrv, token: str) -> None:
    name = fresh_name()
    pointed.add_tlsalpn01(name, key_authorization(token))
    outcome = tls_alpn(name, token, key_authorization(token))
    assert outcome == ChallengeOutcome(valid=True, problem_type=None, detail=f"tls-alpn-01 validated for dns {name}")


def test_a_certificate_for_another_key_authorization_is_an_incorrect_response(pointed: ChallTestSrv,
                                                                              token: str) -> None:
    name = fresh_name()
    pointed.add_tlsalpn01(name, key_authorization(token, thumbprint="w" * 43))
    outcome = tls_alpn(name, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "not the digest" in outcome.detail


def test_no_certificate_for_the_name_is_a_tls_problem(pointed: ChallTestSrv, token: str) -> None:
    """challtestsrv aborts the handshake for a server name it has no answer for."""
    outcome = tls_alpn(fresh_name(), token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, TLS)
    assert "handshake" in outcome.detail


def test_an_unreachable_port_is_a_connection_problem(pointed: ChallTestSrv, settings, token: str) -> None:
    settings.PKI_ACME_TLS_PORT = free_port()
    outcome = tls_alpn(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "connection refused" in outcome.detail


def test_a_server_that_never_answers_the_handshake_times_out(settings, token: str) -> None:
    with silent_tcp_listener() as port:
        settings.PKI_ACME_TLS_PORT = port
        settings.PKI_ACME_VALIDATION_TIMEOUT = 0.5
        outcome = tls_alpn(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "timed out" in outcome.detail


def _served(settings, certificate: tuple[bytes, bytes], value: str, token: str, identifier_type: str = "dns",
            alpn: tuple[str, ...] | None = ("acme-tls/1",), host: str = LOOPBACK) -> tuple[ChallengeOutcome, list[str]]:
    """Validate against a local responder serving `certificate`; the outcome and the SNI names it saw."""
    with tls_responder(*certificate, alpn=alpn, host=host) as (port, server_names):
        settings.PKI_ACME_TLS_PORT = port
        return tls_alpn(value, token, key_authorization(token), identifier_type), server_names


def test_a_certificate_built_here_is_valid_and_sni_is_the_name(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)])
    outcome, server_names = _served(settings, certificate, NAME, token)
    assert outcome.valid, outcome.detail
    assert server_names == [NAME]


def test_an_ip_identifier_needs_an_ip_san_and_sends_the_reverse_name(settings, token: str) -> None:
    """RFC 8738 §6: SNI is the in-addr.arpa name, the SAN is an iPAddress."""
    certificate = challenge_certificate(key_authorization(token),
                                        names=[x509.IPAddress(ipaddress.ip_address(LOOPBACK))])
    outcome, server_names = _served(settings, certificate, LOOPBACK, token, "ip")
    assert outcome == ChallengeOutcome(valid=True, problem_type=None, detail=f"tls-alpn-01 validated for ip {LOOPBACK}")
    assert server_names == ["1.0.0.127.in-addr.arpa"]


def test_an_ip_identifier_answered_with_a_dns_san_is_refused(pointed: ChallTestSrv, token: str) -> None:
    """challtestsrv puts the SNI (the reverse name) in a dNSName: RFC 8738 §6 wants the address as iPAddress."""
    pointed.add_tlsalpn01("1.0.0.127.in-addr.arpa", key_authorization(token))
    outcome = tls_alpn(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "subjectAltName is not 127.0.0.1" in outcome.detail


def test_a_non_critical_extension_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)], critical=False)
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "not critical" in outcome.detail


def test_a_wrong_extension_value_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    other = hashlib.sha256(b"another key authorization").digest()
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)],
                                        extension_value=b"\x04\x20" + other)
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "not the digest" in outcome.detail


def test_the_bare_digest_without_its_octet_string_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    """The value is the DER OCTET STRING of the digest, not the 32 bytes alone (RFC 8737 §3)."""
    bare = hashlib.sha256(key_authorization(token).encode()).digest()
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)], extension_value=bare)
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)


def test_a_missing_extension_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)], with_extension=False)
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "without the acmeIdentifier" in outcome.detail


def test_two_sans_are_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token),
                                        names=[x509.DNSName(NAME), x509.DNSName("other.tls-alpn.example")])
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "2 subjectAltNames" in outcome.detail


def test_no_san_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[])
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "0 subjectAltNames" in outcome.detail


def test_a_san_for_another_name_is_refused(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName("other.tls-alpn.example")])
    outcome, _ = _served(settings, certificate, NAME, token)
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert f"is not {NAME}" in outcome.detail


def test_a_server_without_alpn_is_a_tls_problem(pointed: ChallTestSrv, settings, token: str) -> None:
    """A right certificate served without negotiating acme-tls/1 proves nothing (RFC 8737 §3)."""
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)])
    outcome, _ = _served(settings, certificate, NAME, token, alpn=None)
    assert (outcome.valid, outcome.problem_type) == (False, TLS)
    assert "did not negotiate the ALPN protocol acme-tls/1" in outcome.detail


def test_a_server_speaking_another_protocol_is_a_tls_problem(pointed: ChallTestSrv, settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.DNSName(NAME)])
    outcome, _ = _served(settings, certificate, NAME, token, alpn=("h2", "http/1.1"))
    assert (outcome.valid, outcome.problem_type) == (False, TLS)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_an_ipv6_identifier_sends_its_ip6_arpa_name(settings, token: str) -> None:
    certificate = challenge_certificate(key_authorization(token), names=[x509.IPAddress(ipaddress.ip_address("::1"))])
    outcome, server_names = _served(settings, certificate, "::1", token, "ip", host="::1")
    assert outcome.valid, outcome.detail
    assert server_names == [ipaddress.ip_address("::1").reverse_pointer]
    assert server_names[0].endswith(".ip6.arpa")


def test_an_answer_that_is_not_tls_is_a_tls_problem(settings, token: str) -> None:
    with raw_tcp_responder(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        settings.PKI_ACME_TLS_PORT = port
        outcome = tls_alpn(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, TLS)
    assert "handshake" in outcome.detail
