"""http-01 (RFC 8555 §8.3, RFC 8738 §3) against pebble-challtestsrv and small local HTTP servers."""

from __future__ import annotations

import itertools
import secrets
import socket
import threading

import pytest

from acme_server.validation import (
    CONNECTION,
    DNS,
    INCORRECT_RESPONSE,
    UNAUTHORIZED,
    ChallengeOutcome,
    validate_challenge,
)
from tests.acme.challenge_servers import (
    LOOPBACK,
    ChallTestSrv,
    dripping_body,
    free_port,
    http_responder,
    key_authorization,
    raw_tcp_responder,
    silent_tcp_listener,
    unbounded_body,
)

NAME = "www.acme-validation.example"
WELL_KNOWN = "/.well-known/acme-challenge/"


@pytest.fixture
def pointed(settings, challtestsrv: ChallTestSrv) -> ChallTestSrv:
    """The validator aimed at challtestsrv: its HTTP port, its HTTPS port for redirects, its DNS."""
    settings.PKI_ACME_HTTP_PORT = challtestsrv.http_port
    settings.PKI_ACME_TLS_PORT = challtestsrv.https_port
    settings.PKI_ACME_DNS_RESOLVER = challtestsrv.resolver
    settings.PKI_ACME_VALIDATION_TIMEOUT = 5
    return challtestsrv


def new_token() -> str:
    return secrets.token_urlsafe(32)


def http01(value: str, token: str, key_auth: str, identifier_type: str = "dns") -> ChallengeOutcome:
    return validate_challenge("http-01", identifier_type, value, token, key_auth)


def test_the_key_authorization_served_by_challtestsrv_is_valid(pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_http01(token, key_authorization(token))
    outcome = http01(NAME, token, key_authorization(token))
    assert outcome == ChallengeOutcome(valid=True, problem_type=None, detail=f"http-01 validated for dns {NAME}")


def test_a_name_in_capitals_is_the_same_name(pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_http01(token, key_authorization(token))
    assert http01(NAME.upper(), token, key_authorization(token)).valid


def test_surrounding_whitespace_is_ignored(settings) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: (200, {}, f"\n  {key_authorization(token)}\r\n".encode())}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        assert http01(LOOPBACK, token, key_authorization(token), "ip").valid


def test_a_wrong_key_authorization_is_an_incorrect_response(pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_http01(token, key_authorization(token, thumbprint="y" * 43))
    outcome = http01(NAME, token, key_authorization(token))
    assert not outcome.valid
    assert outcome.problem_type == INCORRECT_RESPONSE
    assert "not the key authorization" in outcome.detail
    assert "y" * 43 not in outcome.detail, "the peer's body is never echoed"


def test_an_unknown_token_on_challtestsrv_is_unauthorized(pointed: ChallTestSrv) -> None:
    """challtestsrv answers 200 with an empty body for a token it does not know."""
    token = new_token()
    outcome = http01(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, UNAUTHORIZED)
    assert "empty body" in outcome.detail


def test_a_404_is_unauthorized(settings) -> None:
    token = new_token()
    with http_responder({}) as (port, seen):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, UNAUTHORIZED)
    assert "HTTP 404" in outcome.detail
    assert seen == [(WELL_KNOWN + token, f"{LOOPBACK}:{port}")]


def test_an_ip_identifier_is_fetched_from_the_address(pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_http01(token, key_authorization(token))
    outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert outcome == ChallengeOutcome(valid=True, problem_type=None, detail=f"http-01 validated for ip {LOOPBACK}")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_an_ipv6_identifier_goes_in_brackets(settings) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: (200, {}, key_authorization(token).encode())}, host="::1") as (port, seen):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01("::1", token, key_authorization(token), "ip")
    assert outcome.valid, outcome.detail
    assert seen == [(WELL_KNOWN + token, f"[::1]:{port}")]


def test_the_host_header_is_the_name_with_the_port(settings, challtestsrv: ChallTestSrv) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: (200, {}, key_authorization(token).encode())}) as (port, seen):
        settings.PKI_ACME_HTTP_PORT = port
        settings.PKI_ACME_DNS_RESOLVER = challtestsrv.resolver
        assert http01(NAME, token, key_authorization(token)).valid
    assert seen == [(WELL_KNOWN + token, f"{NAME}:{port}")]


def test_the_system_resolver_is_used_without_a_configured_one(settings, challtestsrv: ChallTestSrv) -> None:
    token = new_token()
    challtestsrv.add_http01(token, key_authorization(token))
    settings.PKI_ACME_HTTP_PORT = challtestsrv.http_port
    settings.PKI_ACME_DNS_RESOLVER = ""
    assert http01("localhost", token, key_authorization(token)).valid


def test_a_name_that_does_not_resolve_is_a_dns_problem(settings) -> None:
    token = new_token()
    settings.PKI_ACME_DNS_RESOLVER = ""
    outcome = http01("no-such-host.invalid", token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, DNS)
    assert "no-such-host.invalid" in outcome.detail


def test_an_unreachable_port_is_a_connection_problem(pointed: ChallTestSrv, settings) -> None:
    token = new_token()
    settings.PKI_ACME_HTTP_PORT = free_port()  # nothing listens there
    outcome = http01(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "connection refused" in outcome.detail


def test_a_server_that_never_answers_times_out(settings) -> None:
    token = new_token()
    with silent_tcp_listener() as port:
        settings.PKI_ACME_HTTP_PORT = port
        settings.PKI_ACME_VALIDATION_TIMEOUT = 0.5
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "timed out" in outcome.detail


def test_a_body_that_drips_forever_ends_at_the_deadline(settings) -> None:
    """Each byte comes before a per-read timeout would fire: only the whole-validation deadline ends it."""
    token = new_token()
    with http_responder({WELL_KNOWN + token: dripping_body}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        settings.PKI_ACME_VALIDATION_TIMEOUT = 1
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "timed out" in outcome.detail


def test_a_declared_oversized_body_is_refused(settings) -> None:
    token = new_token()
    body = key_authorization(token).encode() + b" " * 9000
    with http_responder({WELL_KNOWN + token: (200, {}, body)}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "at most 8192" in outcome.detail


def test_an_oversized_body_without_a_length_is_cut_and_refused(settings) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: unbounded_body}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert "larger than 8192" in outcome.detail


def test_a_redirect_on_the_same_server_is_followed(pointed: ChallTestSrv) -> None:
    token, other = new_token(), new_token()
    pointed.add_redirect(WELL_KNOWN + token, f"http://{NAME}:{pointed.http_port}{WELL_KNOWN}{other}")
    pointed.add_http01(other, key_authorization(token))
    assert http01(NAME, token, key_authorization(token)).valid


def test_a_redirect_to_https_on_the_tls_port_is_followed_without_checking_the_certificate(
        pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_redirect(WELL_KNOWN + token, f"https://{NAME}:{pointed.https_port}{WELL_KNOWN}{token}")
    pointed.add_http01(token, key_authorization(token))
    assert http01(NAME, token, key_authorization(token)).valid


def _redirect_chain(server: ChallTestSrv, token: str, hops: int) -> None:
    """`hops` redirects from the token's path, the last target serving the key authorization."""
    paths = [WELL_KNOWN + token] + [f"{WELL_KNOWN}{new_token()}" for _ in range(hops)]
    for source, target in itertools.pairwise(paths):
        server.add_redirect(source, f"http://{LOOPBACK}:{server.http_port}{target}")
    server.add_http01(paths[-1].removeprefix(WELL_KNOWN), key_authorization(token))


def test_ten_redirects_are_followed(pointed: ChallTestSrv) -> None:
    token = new_token()
    _redirect_chain(pointed, token, hops=10)
    assert http01(NAME, token, key_authorization(token)).valid


def test_an_eleventh_redirect_is_not(pointed: ChallTestSrv) -> None:
    token = new_token()
    _redirect_chain(pointed, token, hops=11)
    outcome = http01(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "at most 10" in outcome.detail


def test_a_redirect_to_another_port_is_not_followed(pointed: ChallTestSrv) -> None:
    """The other port would answer the right key authorization: refusing it is the policy, not a failure."""
    token = new_token()
    with http_responder({WELL_KNOWN + token: (200, {}, key_authorization(token).encode())}) as (port, seen):
        pointed.add_redirect(WELL_KNOWN + token, f"http://{LOOPBACK}:{port}{WELL_KNOWN}{token}")
        outcome = http01(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert f"port {port}" in outcome.detail
    assert seen == [], "the refused target was never contacted"


def test_a_redirect_to_https_on_port_80_is_not_followed(pointed: ChallTestSrv) -> None:
    token = new_token()
    pointed.add_redirect(WELL_KNOWN + token, f"https://{LOOPBACK}:80{WELL_KNOWN}{token}")
    outcome = http01(NAME, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "https port 80" in outcome.detail


def test_a_redirect_to_another_scheme_is_not_followed(settings) -> None:
    token = new_token()
    routes = {WELL_KNOWN + token: (302, {"Location": "ftp://files.example/key"}, b"")}
    with http_responder(routes) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "not http or https" in outcome.detail


def test_a_redirect_without_location_is_refused(settings) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: (301, {}, b"")}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "without a Location" in outcome.detail


def test_a_relative_redirect_is_followed(settings) -> None:
    token = new_token()
    routes = {WELL_KNOWN + token: (307, {"Location": "/elsewhere?x=1"}, b""),
              "/elsewhere?x=1": (200, {}, key_authorization(token).encode())}
    with http_responder(routes) as (port, seen):
        settings.PKI_ACME_HTTP_PORT = port
        assert http01(LOOPBACK, token, key_authorization(token), "ip").valid
    assert [path for path, _ in seen] == [WELL_KNOWN + token, "/elsewhere?x=1"]


def test_a_server_that_closes_without_answering_is_a_connection_problem(settings) -> None:
    token = new_token()
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        settings.PKI_ACME_HTTP_PORT = listener.getsockname()[1]

        def close_at_once() -> None:
            connection, _ = listener.accept()
            connection.recv(1024)
            connection.close()

        thread = threading.Thread(target=close_at_once, daemon=True)
        thread.start()
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
        thread.join(timeout=5)
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "closed the connection" in outcome.detail


def _short_body(handler) -> None:
    handler.close_connection = True
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.write(b"0123456789")


def test_a_body_shorter_than_announced_is_a_connection_problem(settings) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: _short_body}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "after 10 of the 100 bytes" in outcome.detail


@pytest.mark.parametrize("location", ["http://[::1/x", "http://127.0.0.1:99999/x", "http://bad_host.example/x",
                                      "http://bücher.example/x", "http://:80/x",
                                      "http://127.0.0.1:0/x"])
def test_a_redirect_to_a_broken_url_is_refused(settings, location: str) -> None:
    token = new_token()
    with http_responder({WELL_KNOWN + token: (302, {"Location": location}, b"")}) as (port, _):
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert any(refusal in outcome.detail for refusal in ("not followed", "cannot be parsed", "are followed"))


def test_an_answer_that_is_not_http_is_a_connection_problem(settings) -> None:
    token = new_token()
    with raw_tcp_responder(b"SSH-2.0-OpenSSH_9.9\r\n") as port:
        settings.PKI_ACME_HTTP_PORT = port
        outcome = http01(LOOPBACK, token, key_authorization(token), "ip")
    assert (outcome.valid, outcome.problem_type) == (False, CONNECTION)
    assert "not a valid HTTP answer" in outcome.detail


def test_proxies_from_the_environment_are_never_used(pointed: ChallTestSrv, monkeypatch) -> None:
    """A proxy variable pointing at a server that never answers: the validation goes direct all the same."""
    token = new_token()
    pointed.add_http01(token, key_authorization(token))
    with silent_tcp_listener() as proxy_port:
        for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(variable, f"http://{LOOPBACK}:{proxy_port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert http01(NAME, token, key_authorization(token)).valid
