"""Subject names and subjectAltName entries.

Upper bounds come from RFC 5280 Appendix A (``ub-common-name`` 64, etc.). DNS
names follow RFC 1034/1123 "LDH" rules, IDNs are converted to A-labels with the
standard library's IDNA 2003 codec (RFC 3490; the third-party ``idna`` package
is not installed), as RFC 5280 4.2.1.6 requires A-labels in dNSName.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
import unicodedata
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import InvalidRequestError

SAN_DNS = "dns"
SAN_IP = "ip"
SAN_EMAIL = "email"
SAN_TYPES = frozenset({SAN_DNS, SAN_IP, SAN_EMAIL})

#: RFC 5280 Appendix A upper bounds.
UB_COMMON_NAME = 64
UB_ORGANIZATION_NAME = 64
UB_ORGANIZATIONAL_UNIT_NAME = 64
UB_LOCALITY_NAME = 128
UB_STATE_NAME = 128
UB_EMAIL_ADDRESS = 255

MAX_DNS_NAME_LENGTH = 253  # RFC 1035 2.3.4 (255 octets on the wire)
MAX_LABEL_LENGTH = 63
MAX_EMAIL_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_EMAIL_LENGTH = 254  # RFC 5321 4.5.3.1.3 (path limit minus the angle brackets)
#: Longest "TYPE:value" text parse_san looks at (a 253-octet name in Unicode
#: form plus prefix fits easily); longer input is refused before any work.
MAX_SAN_TEXT_LENGTH = 1024

#: Unicode general categories refused in every name a person reads (CA names, subject
#: attributes, organization names, SAN values): controls (Cc), format characters (Cf: the
#: bidirectional embeddings, overrides and isolates U+202A-202E and U+2066-2069, the marks
#: U+200E, U+200F and U+061C, zero-width characters, the BOM...), line and paragraph
#: separators (Zl, Zp), and surrogates, private-use and unassigned code points (Cs, Co, Cn),
#: which cannot be encoded or whose rendering nobody can predict. A right-to-left override
#: makes "moc.elgoog" display as "google.com" (the "Trojan Source" attack, CVE-2021-42574;
#: Unicode TR #36 section 2.2): a name must read as it is stored.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
BIDI_CONTROLS = frozenset(
    [chr(code) for code in range(0x202A, 0x202F)] + [chr(code) for code in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# RFC 5322 3.2.3 "atext"; quoted local parts are deliberately not supported.
_LOCAL_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_COUNTRY = re.compile(r"[A-Z]{2}")


# --------------------------------------------------------------------------
# Characters a name may not carry
# --------------------------------------------------------------------------


def refused_character(value: str) -> tuple[int, str] | None:
    """The position and character of the first code point a name may not carry, or None."""
    for position, char in enumerate(value):
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return position, char
    return None


def describe_character(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: how a refused character is named in a message."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


def check_name_characters(label: str, value: str, code: str = "subject_invalid") -> None:
    """Refuse a name holding a bidirectional control, an invisible or a control character.

    Raises :class:`InvalidRequestError` naming the character and its position (1-based),
    never echoing the value itself.
    """
    found = refused_character(value)
    if found is None:
        return
    position, char = found
    kind = "bidirectional control" if char in BIDI_CONTROLS else "control or invisible character"
    raise InvalidRequestError(
        f"{label} must not contain a {kind} ({describe_character(char)} at position {position + 1})",
        code=code,
    )


# --------------------------------------------------------------------------
# Subject names
# --------------------------------------------------------------------------


def _check_attribute(label: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{label} must be text", code="subject_invalid")
    check_name_characters(label, value)
    if value != value.strip():
        raise InvalidRequestError(f"{label} must not start or end with whitespace", code="subject_invalid")
    if not value:
        return None
    if len(value) > limit:
        raise InvalidRequestError(
            f"{label} is too long ({len(value)} characters, at most {limit} allowed by RFC 5280)",
            code="subject_invalid",
        )
    return value


def build_subject(
    common_name: str | None,
    organization: str | None = None,
    organizational_unit: str | None = None,
    country: str | None = None,
    state: str | None = None,
    locality: str | None = None,
) -> x509.Name:
    """Build a subject DN, most significant attribute first (C, ST, L, O, OU, CN).

    Empty or ``None`` attributes are left out; ``common_name`` may be None for
    an empty subject (then the SAN must be critical, RFC 5280 4.2.1.6). Note
    that BR 7.1.2.10.2 requires countryName, organizationName and commonName
    in CA certificates, and BR 7.1.2.7.2 allows only commonName in a DV
    subscriber certificate.
    """
    attributes: list[x509.NameAttribute] = []
    if (c := _check_attribute("country", country, 2)) is not None:
        if not _COUNTRY.fullmatch(c):
            raise InvalidRequestError("country must be a two-letter upper-case ISO 3166 code", code="subject_invalid")
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, c))
    for oid, label, value, limit in (
        (NameOID.STATE_OR_PROVINCE_NAME, "state", state, UB_STATE_NAME),
        (NameOID.LOCALITY_NAME, "locality", locality, UB_LOCALITY_NAME),
        (NameOID.ORGANIZATION_NAME, "organization", organization, UB_ORGANIZATION_NAME),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit", organizational_unit, UB_ORGANIZATIONAL_UNIT_NAME),
        (NameOID.COMMON_NAME, "common name", common_name, UB_COMMON_NAME),
    ):
        if (checked := _check_attribute(label, value, limit)) is not None:
            attributes.append(x509.NameAttribute(oid, checked))
    return x509.Name(attributes)


def common_name_of(name: x509.Name) -> str | None:
    """Return the (single) commonName of ``name`` or None.

    Raises :class:`InvalidRequestError` when several commonNames are present,
    which is ambiguous and refused.
    """
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError("subject has more than one common name", code="subject_invalid")
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# DNS names
# --------------------------------------------------------------------------


def _to_a_label(label: str) -> str:
    """Convert one label to its lowercase A-label (RFC 3490 ToASCII)."""
    if label.isascii():
        label = label.lower()
        if label.startswith("xn--"):
            try:
                encodings.idna.ToUnicode(label.encode("ascii"))
            except UnicodeError:
                raise InvalidRequestError("invalid punycode label in DNS name", code="san_invalid") from None
        return label
    try:
        return encodings.idna.ToASCII(label).decode("ascii").lower()
    except UnicodeError:
        raise InvalidRequestError(
            "DNS name contains a label that cannot be converted with IDNA", code="san_invalid"
        ) from None


def _check_ldh(label: str) -> None:
    if not label:
        raise InvalidRequestError("DNS name contains an empty label", code="san_invalid")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidRequestError("DNS label longer than 63 characters", code="san_invalid")
    if not _LDH_LABEL.fullmatch(label):
        raise InvalidRequestError("DNS labels may contain only letters, digits and inner hyphens", code="san_invalid")
    # RFC 5891 4.2.3.1: "--" in positions 3-4 is reserved for A-labels.
    if label[2:4] == "--" and not label.startswith("xn--"):
        raise InvalidRequestError("DNS label has a reserved '--' in positions 3 and 4", code="san_invalid")


def normalize_dns_name(value: str, *, allow_wildcard: bool = True) -> str:
    """Validate a DNS name and return its lowercase A-label form.

    Accepts an optional single trailing dot (removed). A wildcard is accepted
    only as the entire left-most label, followed by at least two labels
    (``*.example.com``; BR 3.2.2.6 / RFC 6125 6.4.3). The last label must not
    be all digits, so that an IPv4 address cannot masquerade as a DNS name.
    """
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("DNS name is empty", code="san_invalid")
    # Before IDNA: nameprep (RFC 3491 section 3.1) would silently drop zero-width characters.
    check_name_characters("DNS name", value, code="san_invalid")
    if any(ch.isspace() for ch in value):
        raise InvalidRequestError("DNS name must not contain whitespace", code="san_invalid")
    if value.endswith("."):
        value = value[:-1]
    labels = value.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        if not allow_wildcard:
            raise InvalidRequestError("wildcard DNS names are not allowed here", code="san_invalid")
        labels = labels[1:]
        if len(labels) < 2:
            raise InvalidRequestError("a wildcard needs at least two labels after it", code="san_invalid")
    if any("*" in label for label in labels):
        raise InvalidRequestError("a wildcard is only allowed as the whole left-most label", code="san_invalid")
    a_labels = [_to_a_label(label) for label in labels]
    for label in a_labels:
        _check_ldh(label)
    if a_labels[-1].isdigit():
        raise InvalidRequestError("the last DNS label must not be numeric", code="san_invalid")
    result = ".".join((["*"] if wildcard else []) + a_labels)
    if len(result) > MAX_DNS_NAME_LENGTH:
        raise InvalidRequestError("DNS name longer than 253 characters", code="san_invalid")
    return result


def is_wildcard(name: x509.GeneralName) -> bool:
    """True for a dNSName whose left-most label is ``*``."""
    return isinstance(name, x509.DNSName) and name.value.startswith("*.")


# --------------------------------------------------------------------------
# IP addresses and e-mail addresses
# --------------------------------------------------------------------------


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse an IPv4 or IPv6 address (``[::1]`` brackets accepted, no zone id)."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidRequestError("invalid IP address", code="san_invalid") from None
    if getattr(address, "scope_id", None):
        raise InvalidRequestError("IPv6 zone identifiers are not allowed", code="san_invalid")
    return address


def normalize_email(value: str) -> str:
    """Validate ``local@domain`` and return it with an A-label, lowercase domain.

    The local part must be an RFC 5322 dot-atom of ASCII characters (no quoted
    strings, no SMTPUTF8) of at most 64 characters; the domain must be a valid
    DNS name without wildcard.
    """
    if not isinstance(value, str) or value.count("@") != 1:
        raise InvalidRequestError("e-mail address must have the form local@domain", code="san_invalid")
    local, domain = value.split("@")
    if not local or len(local) > MAX_EMAIL_LOCAL_PART:
        raise InvalidRequestError("e-mail local part must be 1 to 64 characters", code="san_invalid")
    if not all(_LOCAL_ATOM.fullmatch(atom) for atom in local.split(".")):
        raise InvalidRequestError("e-mail local part contains invalid characters", code="san_invalid")
    try:
        domain = normalize_dns_name(domain, allow_wildcard=False)
    except InvalidRequestError:
        raise InvalidRequestError("e-mail address has an invalid domain", code="san_invalid") from None
    if "." not in domain:
        raise InvalidRequestError("e-mail domain must be fully qualified", code="san_invalid")
    result = f"{local}@{domain}"
    if len(result) > MAX_EMAIL_LENGTH:
        raise InvalidRequestError("e-mail address is too long", code="san_invalid")
    return result


# --------------------------------------------------------------------------
# subjectAltName entries
# --------------------------------------------------------------------------

_PREFIXES = {"dns": SAN_DNS, "ip": SAN_IP, "email": SAN_EMAIL}


def parse_san(text: str) -> x509.GeneralName:
    """Parse ``DNS:name``, ``IP:address`` or ``EMAIL:address`` (any case prefix).

    Returns a normalised :class:`x509.DNSName`, :class:`x509.IPAddress` or
    :class:`x509.RFC822Name`; raises :class:`InvalidRequestError` (code
    ``san_invalid``) with a message naming the problem.
    """
    if isinstance(text, str) and len(text) > MAX_SAN_TEXT_LENGTH:
        raise InvalidRequestError("subject alternative name is too long", code="san_invalid")
    if isinstance(text, str):  # before strip(), which would quietly drop a trailing U+2029
        check_name_characters("subject alternative name", text, code="san_invalid")
    if not isinstance(text, str) or ":" not in text:
        raise InvalidRequestError(
            "subject alternative name must look like DNS:name, IP:address or EMAIL:address",
            code="san_invalid",
        )
    prefix, _, value = text.partition(":")
    kind = _PREFIXES.get(prefix.strip().lower())
    if kind is None:
        raise InvalidRequestError("unknown subject alternative name type; use DNS:, IP: or EMAIL:", code="san_invalid")
    value = value.strip()
    if kind == SAN_DNS:
        return x509.DNSName(normalize_dns_name(value))
    if kind == SAN_IP:
        return x509.IPAddress(parse_ip(value))
    return x509.RFC822Name(normalize_email(value))


def parse_sans(texts: Iterable[str]) -> list[x509.GeneralName]:
    """Parse several SAN strings, dropping exact duplicates (order kept)."""
    return dedupe_sans(parse_san(text) for text in texts)


def normalize_general_name(name: x509.GeneralName) -> x509.GeneralName:
    """Validate a GeneralName (e.g. from a CSR) and return its normal form."""
    kind = san_type(name)
    if kind == SAN_IP:
        value = name.value
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise InvalidRequestError("IP address SAN must be a single address", code="san_invalid")
        return name
    raw = name.value
    if not isinstance(raw, str):
        raise InvalidRequestError("subject alternative name is not text", code="san_invalid")
    if kind == SAN_DNS:
        return x509.DNSName(normalize_dns_name(raw))
    return x509.RFC822Name(normalize_email(raw))


def dedupe_sans(names: Iterable[x509.GeneralName]) -> list[x509.GeneralName]:
    """Drop duplicate GeneralNames, keeping the first occurrence's position."""
    seen: set[x509.GeneralName] = set()
    result: list[x509.GeneralName] = []
    for name in names:
        if name not in seen:
            seen.add(name)
            result.append(name)
    return result


def san_type(name: x509.GeneralName) -> str:
    """Return ``"dns"``, ``"ip"`` or ``"email"`` for a supported GeneralName.

    Any other GeneralName (URI, directoryName, otherName...) raises
    :class:`InvalidRequestError` with code ``san_not_allowed``.
    """
    if isinstance(name, x509.DNSName):
        return SAN_DNS
    if isinstance(name, x509.IPAddress):
        return SAN_IP
    if isinstance(name, x509.RFC822Name):
        return SAN_EMAIL
    raise InvalidRequestError(
        f"subject alternative name of type {type(name).__name__} is not supported",
        code="san_not_allowed",
    )


def format_san(name: x509.GeneralName) -> str:
    """Inverse of :func:`parse_san`: ``DNS:example.com``, ``IP:10.0.0.1``..."""
    kind = san_type(name)
    prefix = {SAN_DNS: "DNS", SAN_IP: "IP", SAN_EMAIL: "EMAIL"}[kind]
    return f"{prefix}:{name.value}"
