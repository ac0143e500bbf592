"""Subject building and SAN parsing/validation (IDNA, labels, wildcards, IPs, e-mail)."""

from __future__ import annotations

import encodings.idna
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


# --- Bidirectional controls and invisible characters ----------------------------------

REFUSED = {
    "\u202a": "LEFT-TO-RIGHT EMBEDDING", "\u202b": "RIGHT-TO-LEFT EMBEDDING", "\u202c": "POP DIRECTIONAL FORMATTING",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE", "\u202e": "RIGHT-TO-LEFT OVERRIDE", "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE", "\u2068": "FIRST STRONG ISOLATE", "\u2069": "POP DIRECTIONAL ISOLATE",
    "\u200e": "LEFT-TO-RIGHT MARK", "\u200f": "RIGHT-TO-LEFT MARK", "\u061c": "ARABIC LETTER MARK",
    "\u200b": "ZERO WIDTH SPACE", "\u200d": "ZERO WIDTH JOINER", "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
    "\u00ad": "SOFT HYPHEN", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR",
    "\x1b": "", "\x85": "", "\x7f": "", "\ue000": "", "\U000e0041": "TAG LATIN CAPITAL LETTER A",
}
BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
        "\u200f", "\u061c"}


@pytest.mark.parametrize("char", list(REFUSED))
def test_a_subject_with_a_bidi_control_or_invisible_character_is_refused(char: str) -> None:
    for value in (f"Acme{char}Root", f"Acme Root{char}", f"{char}Acme Root"):
        with pytest.raises(InvalidRequestError) as refused:
            build_subject(value)
        assert refused.value.code == "subject_invalid"
        message = str(refused.value)
        assert f"U+{ord(char):04X}" in message
        assert REFUSED[char] in message
        assert ("bidirectional control" in message) == (char in BIDI)
        assert value not in message  # the name itself is not echoed
    with pytest.raises(InvalidRequestError):
        build_subject("Acme Root", organization=f"Acme{char} Corp")


@pytest.mark.parametrize("char", list(REFUSED))
def test_a_san_with_a_bidi_control_or_invisible_character_is_refused(char: str) -> None:
    for text in (f"DNS:exa{char}mple.com", f"DNS:example.com{char}", f"{char}DNS:example.com",
                 f"EMAIL:ops@exa{char}mple.com", f"IP:192.0.2.1{char}"):
        with pytest.raises(InvalidRequestError) as refused:
            parse_san(text)
        assert refused.value.code == "san_invalid"


@pytest.mark.parametrize("char", ["\u200b", "\u00ad", "\ufeff", "\u200d"])
def test_characters_idna_would_silently_drop_are_refused_not_dropped(char: str) -> None:
    """IDNA 2003 nameprep maps these to nothing (RFC 3454 table B.1): 'pay\u200bpal' must not become 'paypal'."""
    from certificates.crypto.names import normalize_dns_name

    assert encodings.idna.ToASCII(f"pay{char}pal") == b"paypal"  # what the codec alone would make of it
    with pytest.raises(InvalidRequestError):
        normalize_dns_name(f"pay{char}pal.example")


def test_name_constraints_with_a_bidi_control_are_refused() -> None:
    from certificates.crypto.policy import constraint_general_names

    for entry in ("exa\u202emple.com", "example.com\u2029", "ops@exa\u200bmple.com"):
        with pytest.raises(InvalidRequestError) as refused:
            constraint_general_names([entry])
        assert refused.value.code == "name_constraints_invalid"


@pytest.mark.parametrize("name", ["Zürich Root CA", "Ελληνική Αρχή Πιστοποίησης", "中国根证书", "سلطة الشهادات",
                                  "שורש", "Acme-Corp (EU) #2"])
def test_names_in_any_script_are_kept(name: str) -> None:
    assert build_subject(name).get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
