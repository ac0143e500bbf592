"""Subject building and SAN parsing/validation (IDNA, labels, wildcards, IPs, e-mail)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certificates.crypto import InvalidRequestError, build_subject, format_san, parse_san, parse_sans, san_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DNS:www.example.com", x509.DNSName("www.example.com")),
        ("dns:WWW.Example.COM", x509.DNSName("www.example.com")),
        ("Dns:host.example.com.", x509.DNSName("host.example.com")),
        ("DNS:bücher.example", x509.DNSName("xn--bcher-kva.example")),
        ("DNS:münchen.de", x509.DNSName("xn--mnchen-3ya.de")),
        ("DNS:xn--bcher-kva.example", x509.DNSName("xn--bcher-kva.example")),
        ("DNS:*.example.com", x509.DNSName("*.example.com")),
        ("DNS:localhost", x509.DNSName("localhost")),
        ("DNS:a-b.c0.example", x509.DNSName("a-b.c0.example")),
        ("IP:192.0.2.1", x509.IPAddress(ipaddress.ip_address("192.0.2.1"))),
        ("ip:2001:DB8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
        ("IP:[::1]", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("EMAIL:alice@example.com", x509.RFC822Name("alice@example.com")),
        ("email:Alice.Smith+tag@EXAMPLE.com", x509.RFC822Name("Alice.Smith+tag@example.com")),
        ("Email:jörg@bücher.example", None),  # non-ASCII local part: refused below
    ][:-1],
)
def test_parse_san_accepts_and_normalises(text: str, expected: x509.GeneralName) -> None:
    assert parse_san(text) == expected


def test_email_domain_is_idna_encoded() -> None:
    assert parse_san("EMAIL:info@bücher.example") == x509.RFC822Name("info@xn--bcher-kva.example")


LONG_LABEL = "a" * 64
TOO_LONG_NAME = ".".join(["a" * 63] * 4) + ".com"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "www.example.com",  # no prefix
        "URI:http://example.com",
        "DNS:",
        "DNS:exa mple.com",
        "DNS:a..example.com",
        "DNS:.example.com",
        "DNS:-a.example.com",
        "DNS:a-.example.com",
        "DNS:a_b.example.com",
        "DNS:ab--cd.example.com",
        f"DNS:{LONG_LABEL}.example.com",
        f"DNS:{TOO_LONG_NAME}",
        "DNS:foo.*.example.com",
        "DNS:f*.example.com",
        "DNS:*.*.example.com",
        "DNS:*.com",
        "DNS:*",
        "DNS:192.0.2.1",
        "DNS:xn--zzzz-.example",
        "DNS:exa\x00mple.com",
        "DNS:example.com/path",
        "IP:256.1.1.1",
        "IP:192.0.2.0/24",
        "IP:fe80::1%eth0",
        "IP:example.com",
        "EMAIL:alice",
        "EMAIL:alice@",
        "EMAIL:@example.com",
        "EMAIL:a@b@example.com",
        "EMAIL:a..b@example.com",
        "EMAIL:.a@example.com",
        "EMAIL:alice@localhost",
        "EMAIL:alice@*.example.com",
        "EMAIL:jörg@example.com",
        'EMAIL:"quoted"@example.com',
        f"EMAIL:{'a' * 65}@example.com",
        "DNS:" + "a." * 600_000 + "com",
        "DNS:" + "ü" * 100_000 + ".com",
        None,
    ],
)
def test_parse_san_refuses(text: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_san(text)
    assert err.value.code == "san_invalid"
    assert str(err.value)


def test_san_type_and_format_round_trip() -> None:
    for text, kind in (("DNS:a.example.com", "dns"), ("IP:2001:db8::1", "ip"), ("EMAIL:a@example.com", "email")):
        name = parse_san(text)
        assert san_type(name) == kind
        assert parse_san(format_san(name)) == name
    with pytest.raises(InvalidRequestError) as err:
        san_type(x509.UniformResourceIdentifier("http://example.com"))
    assert err.value.code == "san_not_allowed"


def test_parse_sans_drops_duplicates() -> None:
    assert parse_sans(["DNS:a.example.com", "dns:A.example.com", "IP:192.0.2.1"]) == [
        x509.DNSName("a.example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
    ]


def test_build_subject_order_and_values() -> None:
    name = build_subject("www.example.com", "Acme", "Ops", "DE", "Berlin", "Berlin")
    assert [attr.oid for attr in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    assert build_subject(None) == x509.Name([])
    assert build_subject("x" * 64).rfc4514_string() == "CN=" + "x" * 64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"common_name": "x" * 65},
        {"common_name": "ok", "organization": "o" * 65},
        {"common_name": "ok", "country": "Germany"},
        {"common_name": "ok", "country": "de"},
        {"common_name": " padded"},
        {"common_name": "bad\x07bell"},
        {"common_name": "ok", "locality": "l" * 129},
    ],
)
def test_build_subject_refuses(kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidRequestError) as err:
        build_subject(**kwargs)
    assert err.value.code == "subject_invalid"
