"""dns-01 (RFC 8555 §8.4) against pebble-challtestsrv's DNS server and small local DNS servers."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest

from acme_server.validation import (
    DNS,
    INCORRECT_RESPONSE,
    UNAUTHORIZED,
    ChallengeOutcome,
    validate_challenge,
)
from tests.acme.challenge_servers import (
    LOOPBACK,
    ChallTestSrv,
    key_authorization,
    nxdomain_dns_server,
    silent_udp_socket,
)


@pytest.fixture
def pointed(settings, challtestsrv: ChallTestSrv) -> ChallTestSrv:
    settings.PKI_ACME_DNS_RESOLVER = challtestsrv.resolver
    settings.PKI_ACME_VALIDATION_TIMEOUT = 5
    return challtestsrv


def digest(key_auth: str) -> str:
    """RFC 8555 §8.4, computed here independently of the validator's code."""
    return base64.urlsafe_b64encode(hashlib.sha256(key_auth.encode("ascii")).digest()).decode().rstrip("=")


def fresh_name() -> str:
    """A name of its own per test: challtestsrv's TXT answers accumulate per name."""
    return f"host-{secrets.token_hex(4)}.dns01.example"


def dns01(name: str, token: str, key_auth: str) -> ChallengeOutcome:
    return validate_challenge("dns-01", "dns", name, token, key_auth)


def test_the_digest_in_txt_is_valid(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token)))
    outcome = dns01(name, token, key_authorization(token))
    assert outcome == ChallengeOutcome(valid=True, problem_type=None, detail=f"dns-01 validated for dns {name}")


def test_a_wildcard_is_validated_at_its_base_name(pointed: ChallTestSrv) -> None:
    """For *.{name} the caller passes {name}; the TXT is at _acme-challenge.{name} (RFC 8555 §8.4)."""
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token)))
    assert dns01(name, token, key_authorization(token)).valid
    with pytest.raises(ValueError, match="without its"):
        dns01(f"*.{name}", token, key_authorization(token))


def test_one_right_value_among_several_is_enough(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(secrets.token_urlsafe(32))))
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token)))
    assert dns01(name, token, key_authorization(token)).valid


def test_a_wrong_digest_is_an_incorrect_response(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token, thumbprint="z" * 43)))
    outcome = dns01(name, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, INCORRECT_RESPONSE)
    assert f"1 TXT record(s) at _acme-challenge.{name}" in outcome.detail


def test_the_key_authorization_itself_is_not_the_digest(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", key_authorization(token))
    assert dns01(name, token, key_authorization(token)).problem_type == INCORRECT_RESPONSE


def test_no_txt_record_is_unauthorized(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    outcome = dns01(name, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, UNAUTHORIZED)
    assert outcome.detail == f"no TXT record at _acme-challenge.{name}"


def test_a_cleared_record_no_longer_validates(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token)))
    assert dns01(name, token, key_authorization(token)).valid
    pointed.clear_txt(f"_acme-challenge.{name}")
    assert dns01(name, token, key_authorization(token)).problem_type == UNAUTHORIZED


def test_a_cname_to_a_delegated_zone_is_followed(pointed: ChallTestSrv) -> None:
    """The common set-up: _acme-challenge.{name} is a CNAME into a zone the ACME client may update."""
    name, token = fresh_name(), secrets.token_urlsafe(32)
    target = f"{secrets.token_hex(4)}.acme-delegation.example"
    pointed.set_cname(f"_acme-challenge.{name}", target)
    pointed.set_txt(target, digest(key_authorization(token)))
    assert dns01(name, token, key_authorization(token)).valid


def test_a_name_in_capitals_is_looked_up_as_the_same_name(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_txt(f"_acme-challenge.{name}", digest(key_authorization(token)))
    assert dns01(name.upper(), token, key_authorization(token)).valid


def test_servfail_is_a_dns_problem(pointed: ChallTestSrv) -> None:
    name, token = fresh_name(), secrets.token_urlsafe(32)
    pointed.set_servfail(f"_acme-challenge.{name}")
    outcome = dns01(name, token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, DNS)
    assert "SERVFAIL" in outcome.detail


def test_nxdomain_is_a_dns_problem_of_its_own(settings) -> None:
    token = secrets.token_urlsafe(32)
    with nxdomain_dns_server() as port:
        settings.PKI_ACME_DNS_RESOLVER = f"{LOOPBACK}:{port}"
        outcome = dns01("gone.dns01.example", token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, DNS)
    assert outcome.detail == "DNS lookup of TXT _acme-challenge.gone.dns01.example: the name does not exist (NXDOMAIN)"


def test_a_resolver_that_never_answers_times_out(settings) -> None:
    token = secrets.token_urlsafe(32)
    with silent_udp_socket() as port:
        settings.PKI_ACME_DNS_RESOLVER = f"{LOOPBACK}:{port}"
        settings.PKI_ACME_VALIDATION_TIMEOUT = 0.5
        outcome = dns01("slow.dns01.example", token, key_authorization(token))
    assert (outcome.valid, outcome.problem_type) == (False, DNS)
    assert "timed out" in outcome.detail
    assert "NXDOMAIN" not in outcome.detail


def test_dns01_cannot_prove_an_ip_address() -> None:
    token = secrets.token_urlsafe(32)
    with pytest.raises(ValueError, match="dns-01 cannot validate"):
        validate_challenge("dns-01", "ip", LOOPBACK, token, key_authorization(token))
