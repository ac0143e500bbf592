"""The validator's interface: what it answers, what raises, and its settings checked at start-up."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest

from acme_server.validation import (
    MALFORMED,
    SUPPORTED_CHALLENGES,
    ChallengeOutcome,
    validate_challenge,
)
from pki_project.config import AcmeValidationConfig, ConfigError, acme_validation_config, parse_resolver_address
from tests.acme.challenge_servers import key_authorization
from tests.helpers import clean_environment, run_manage


def test_supported_challenges_are_exactly_the_contract() -> None:
    expected = {"dns": frozenset({"http-01", "dns-01", "tls-alpn-01"}), "ip": frozenset({"http-01", "tls-alpn-01"})}
    assert expected == SUPPORTED_CHALLENGES


def test_an_outcome_is_frozen() -> None:
    outcome = ChallengeOutcome(valid=False, problem_type=MALFORMED, detail="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.valid = True  # type: ignore[misc]


@pytest.mark.parametrize("token", ["short", "has space in it and is long enough", "padded=" + "A" * 30,
                                   "A" * 21, "é" * 30])
@pytest.mark.parametrize("challenge", ["http-01", "dns-01", "tls-alpn-01"])
def test_a_malformed_token_is_a_malformed_problem_before_any_network(challenge: str, token: str) -> None:
    outcome = validate_challenge(challenge, "dns", "www.example.com", token, f"{token}.thumbprint")
    assert outcome == ChallengeOutcome(valid=False, problem_type=MALFORMED, detail=outcome.detail)
    assert "token" in outcome.detail


@pytest.mark.parametrize(("identifier_type", "value"), [
    ("dns", "under_score.example"), ("dns", "-leading.example"), ("dns", "a..b"), ("dns", "x" * 64 + ".example"),
    ("dns", "bücher.example"), ("dns", ""), ("ip", "300.1.1.1"), ("ip", "localhost"), ("ip", "[::1]"),
])
def test_a_malformed_identifier_is_a_malformed_problem(identifier_type: str, value: str) -> None:
    token = secrets.token_urlsafe(32)
    outcome = validate_challenge("http-01", identifier_type, value, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, MALFORMED)


@pytest.mark.parametrize(("challenge", "identifier_type", "message"), [
    ("http-02", "dns", "unknown challenge type"),
    ("http-01", "email", "unknown identifier type"),
    ("dns-01", "ip", "cannot validate"),
])
def test_a_call_outside_the_contract_raises(challenge: str, identifier_type: str, message: str) -> None:
    token = secrets.token_urlsafe(32)
    with pytest.raises(ValueError, match=message):
        validate_challenge(challenge, identifier_type, "www.example.com", token, key_authorization(token))


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_a_wildcard_is_for_dns01_only(challenge: str) -> None:
    token = secrets.token_urlsafe(32)
    with pytest.raises(ValueError, match="wildcard"):
        validate_challenge(challenge, "dns", "*.example.com", token, key_authorization(token))


@pytest.mark.parametrize("key_auth", ["no-dot", "{other}.thumb", "{token}.", "{token}"])
def test_a_key_authorization_not_of_this_token_raises(key_auth: str) -> None:
    token = secrets.token_urlsafe(32)
    value = key_auth.format(token=token, other=secrets.token_urlsafe(32))
    with pytest.raises(ValueError, match="key authorization"):
        validate_challenge("http-01", "dns", "www.example.com", token, value)


# --- Settings ------------------------------------------------------------------------------------


def test_the_defaults() -> None:
    assert acme_validation_config({}) == AcmeValidationConfig(http_port=80, tls_port=443, dns_resolver="",
                                                               timeout=10.0)


def test_the_settings_carry_them(settings) -> None:
    """The test run sets no PKI_ACME_* variable: Django's settings hold the defaults, with their types."""
    assert (settings.PKI_ACME_HTTP_PORT, settings.PKI_ACME_TLS_PORT, settings.PKI_ACME_DNS_RESOLVER,
            settings.PKI_ACME_VALIDATION_TIMEOUT) == (80, 443, "", 10.0)


def test_values_are_read() -> None:
    config = acme_validation_config({"PKI_ACME_HTTP_PORT": "5002", "PKI_ACME_TLS_PORT": "5001",
                                     "PKI_ACME_DNS_RESOLVER": "127.0.0.1:8053",
                                     "PKI_ACME_VALIDATION_TIMEOUT": "2.5"})
    assert config == AcmeValidationConfig(http_port=5002, tls_port=5001, dns_resolver="127.0.0.1:8053", timeout=2.5)


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.53", ("10.0.0.53", 53)), ("10.0.0.53:5353", ("10.0.0.53", 5353)), ("fd00::53", ("fd00::53", 53)),
    ("[fd00::53]:5353", ("fd00::53", 5353)), ("[::1]", ("::1", 53)),
])
def test_resolver_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_resolver_address(text) == expected


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("PKI_ACME_HTTP_PORT", "0", "PKI_ACME_HTTP_PORT must be a TCP port from 1 to 65535 (it is '0')."),
    ("PKI_ACME_HTTP_PORT", "http", "PKI_ACME_HTTP_PORT must be a TCP port"),
    ("PKI_ACME_TLS_PORT", "65536", "PKI_ACME_TLS_PORT must be a TCP port"),
    ("PKI_ACME_DNS_RESOLVER", "dns.example:53", "PKI_ACME_DNS_RESOLVER must be an IP address"),
    ("PKI_ACME_DNS_RESOLVER", "10.0.0.53:0", "PKI_ACME_DNS_RESOLVER must be an IP address"),
    ("PKI_ACME_DNS_RESOLVER", "[fd00::53", "PKI_ACME_DNS_RESOLVER must be an IP address"),
    ("PKI_ACME_VALIDATION_TIMEOUT", "0", "PKI_ACME_VALIDATION_TIMEOUT must be a number of seconds from 0.1 to 300"),
    ("PKI_ACME_VALIDATION_TIMEOUT", "301", "PKI_ACME_VALIDATION_TIMEOUT must be a number of seconds"),
    ("PKI_ACME_VALIDATION_TIMEOUT", "nan", "PKI_ACME_VALIDATION_TIMEOUT must be a number of seconds"),
    ("PKI_ACME_VALIDATION_TIMEOUT", "ten", "PKI_ACME_VALIDATION_TIMEOUT must be a number of seconds"),
])
def test_a_bad_value_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        acme_validation_config({variable: value})
    assert str(raised.value).startswith(expected)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("variable", "value"), [("PKI_ACME_HTTP_PORT", "99999"),
                                                 ("PKI_ACME_DNS_RESOLVER", "resolver.internal"),
                                                 ("PKI_ACME_VALIDATION_TIMEOUT", "-1")])
def test_manage_py_stops_on_a_bad_value_with_one_line(variable: str, value: str, tmp_path: Path) -> None:
    env = clean_environment(**{variable: value}, DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}",
                            PKI_DATA_DIR=str(tmp_path / "data"), PKI_ENV_FILE=str(tmp_path / "no-such.env"))
    result = run_manage("check", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Configuration error: {variable} must be")
    assert "Traceback" not in result.stderr


def test_manage_py_starts_with_good_values(tmp_path: Path) -> None:
    env = clean_environment(PKI_ACME_HTTP_PORT="5002", PKI_ACME_TLS_PORT="5001",
                            PKI_ACME_DNS_RESOLVER="[::1]:8053", PKI_ACME_VALIDATION_TIMEOUT="3",
                            DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "no-such.env"))
    result = run_manage("check", env=env)
    assert result.returncode == 0, result.stderr
