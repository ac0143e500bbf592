"""Profiles, SAN policy, name constraints (RFC 5280 4.2.1.10) and validity clamping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from certificates.crypto import (
    PROFILES,
    InvalidRequestError,
    KeyType,
    NameConstraintSpec,
    PolicyError,
    check_name_constraints,
    clamp_validity,
    get_profile,
    parse_san,
    validate_sans_for_profile,
)
from tests.crypto.helpers import cached_key

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def sans(*texts: str):
    return [parse_san(t) for t in texts]


def test_profiles_as_specified() -> None:
    assert set(PROFILES) == {"server", "client", "server-client", "email"}
    server = get_profile("server")
    assert server.extended_key_usages == (ExtendedKeyUsageOID.SERVER_AUTH,)
    assert server.max_days == 398
    assert server.requires_san
    assert server.allow_wildcard
    assert server.allowed_san_types == {"dns", "ip"}
    assert get_profile("client").allowed_san_types == {"dns", "email", "ip"}
    assert not get_profile("client").requires_san
    assert set(get_profile("server-client").extended_key_usages) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    email = get_profile("email")
    assert email.max_days == 825
    assert email.allowed_san_types == {"email"}
    assert email.requires_san


@pytest.mark.parametrize("name", ["", "SERVER", "ca", None])
def test_unknown_profile(name) -> None:
    with pytest.raises(InvalidRequestError, match="unknown profile") as err:
        get_profile(name)
    assert err.value.code == "unknown_profile"


def test_key_usage_per_key_type() -> None:
    server = get_profile("server")
    rsa_ku = server.key_usage_for(cached_key(KeyType.RSA_2048, "leaf").public_key())
    assert rsa_ku.digital_signature
    assert rsa_ku.key_encipherment
    ec_ku = server.key_usage_for(cached_key(KeyType.EC_P256, "leaf").public_key())
    assert ec_ku.digital_signature
    assert not ec_ku.key_encipherment
    assert not ec_ku.key_agreement
    ed_ku = get_profile("email").key_usage_for(cached_key(KeyType.ED25519, "leaf").public_key())
    assert ed_ku.digital_signature
    assert not ed_ku.key_encipherment
    assert not ed_ku.key_agreement


@pytest.mark.parametrize(
    ("profile", "names"),
    [
        ("server", ["DNS:a.example.com", "IP:192.0.2.1", "DNS:*.example.com"]),
        ("server-client", ["DNS:a.example.com"]),
        ("client", []),
        ("client", ["EMAIL:a@example.com", "DNS:a.example.com", "IP:2001:db8::1"]),
        ("email", ["EMAIL:a@example.com"]),
    ],
)
def test_sans_allowed(profile: str, names: list[str]) -> None:
    validate_sans_for_profile(get_profile(profile), sans(*names))


@pytest.mark.parametrize(
    ("profile", "names"),
    [
        ("server", []),
        ("server", ["EMAIL:a@example.com"]),
        ("server-client", []),
        ("email", []),
        ("email", ["DNS:a.example.com"]),
        ("client", ["DNS:*.example.com"]),
        ("email", ["EMAIL:a@example.com", "IP:192.0.2.1"]),
    ],
)
def test_sans_not_allowed(profile: str, names: list[str]) -> None:
    with pytest.raises(InvalidRequestError) as err:
        validate_sans_for_profile(get_profile(profile), sans(*names))
    assert err.value.code == "san_not_allowed"


# --------------------------------------------------------------------------
# Name constraints
# --------------------------------------------------------------------------

PERMITTED_OK = [
    (["example.com"], "DNS:example.com"),
    (["example.com"], "DNS:www.example.com"),
    (["example.com"], "DNS:a.b.example.com"),
    (["example.com"], "DNS:*.example.com"),
    ([".example.com"], "DNS:www.example.com"),
    (["example.com"], "EMAIL:alice@example.com"),
    ([".example.com"], "EMAIL:alice@mail.example.com"),
    (["alice@example.com"], "EMAIL:alice@example.com"),
    (["10.0.0.0/8"], "IP:10.1.2.3"),
    (["2001:db8::/32"], "IP:2001:db8::1"),
    # RFC 5280: a name form without permitted subtrees is unconstrained.
    (["example.com"], "IP:192.0.2.1"),
    (["10.0.0.0/8"], "DNS:anything.example.org"),
]

PERMITTED_BAD = [
    (["example.com"], "DNS:example.org"),
    (["example.com"], "DNS:badexample.com"),
    (["example.com"], "DNS:example.com.evil.org"),
    ([".example.com"], "DNS:example.com"),
    (["example.com"], "EMAIL:alice@mail.example.com"),
    (["example.com"], "EMAIL:alice@example.org"),
    (["alice@example.com"], "EMAIL:bob@example.com"),
    (["10.0.0.0/8"], "IP:11.0.0.1"),
    (["10.0.0.0/8"], "IP:::ffff:10.0.0.1"),
    (["2001:db8::/32"], "IP:2001:db9::1"),
]


@pytest.mark.parametrize(("permitted", "san"), PERMITTED_OK)
def test_name_constraints_permit(permitted: list[str], san: str) -> None:
    check_name_constraints(permitted, None, sans(san))


@pytest.mark.parametrize(("permitted", "san"), PERMITTED_BAD)
def test_name_constraints_refuse_outside_permitted(permitted: list[str], san: str) -> None:
    with pytest.raises(PolicyError) as err:
        check_name_constraints(permitted, None, sans(san))
    assert err.value.code == "name_constraints"


@pytest.mark.parametrize(
    ("excluded", "san"),
    [
        (["secret.example.com"], "DNS:secret.example.com"),
        (["secret.example.com"], "DNS:a.secret.example.com"),
        # a wildcard one level above would match the excluded host
        (["secret.example.com"], "DNS:*.example.com"),
        (["192.168.0.0/16"], "IP:192.168.1.1"),
        (["example.com"], "EMAIL:x@example.com"),
    ],
)
def test_name_constraints_excluded(excluded: list[str], san: str) -> None:
    with pytest.raises(PolicyError) as err:
        check_name_constraints(["example.com", "192.168.0.0/16"], excluded, sans(san))
    assert err.value.code == "name_constraints"


def test_name_constraints_excluded_does_not_overreach() -> None:
    check_name_constraints(None, ["secret.example.com"], sans("DNS:public.example.com", "DNS:*.other.example.com"))
    check_name_constraints(None, [".secret.example.com"], sans("DNS:secret.example.com"))


@pytest.mark.parametrize("entry", ["", "10.0.0.1/8", "bad..domain", "*.example.com", "300.0.0.0/8"])
def test_name_constraint_syntax(entry: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        NameConstraintSpec.of([entry], None).to_extension()
    assert err.value.code == "name_constraints_invalid"


# --------------------------------------------------------------------------
# Validity
# --------------------------------------------------------------------------


def test_clamp_validity_inclusive_days() -> None:
    start, end = clamp_validity(NOW, 90, get_profile("server"), NOW + timedelta(days=1000))
    assert start == NOW
    assert end == NOW + timedelta(days=90) - timedelta(seconds=1)


def test_clamp_validity_to_issuer() -> None:
    issuer_end = NOW + timedelta(days=30)
    _, end = clamp_validity(NOW, 398, get_profile("server"), issuer_end)
    assert end == issuer_end
    start, _ = clamp_validity(NOW, 10, None, issuer_end, issuer_not_before=NOW + timedelta(hours=1))
    assert start == NOW + timedelta(hours=1)


def test_clamp_validity_refuses() -> None:
    with pytest.raises(PolicyError) as err:
        clamp_validity(NOW, 399, get_profile("server"), NOW + timedelta(days=1000))
    assert err.value.code == "validity_too_long"
    with pytest.raises(PolicyError) as err:
        clamp_validity(NOW, 10, get_profile("server"), NOW - timedelta(days=1))
    assert err.value.code == "issuer_expired"
    for days in (0, -1, True, 10**9):
        with pytest.raises(InvalidRequestError) as err:
            clamp_validity(NOW, days, None, None)
        assert err.value.code == "validity_invalid"
    with pytest.raises(InvalidRequestError) as err:
        clamp_validity(datetime(2026, 1, 1), 10, None, None)  # naive on purpose
    assert err.value.code == "time_invalid"


def test_clamp_validity_converts_to_utc() -> None:
    from datetime import timezone

    plus_two = datetime(2026, 1, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    start, _ = clamp_validity(plus_two, 1, None, None)
    assert start == NOW
    assert start.tzinfo == UTC
