"""Which names an enrollment token allows: patterns, and the check of a CSR's names against them.

A pattern is `TYPE:VALUE`; without a type it is a DNS pattern:

* `DNS:robot-*.fleet.example.com`: `*` stands for one or more letters, digits or hyphens within one
  label (RFC 6125 6.4.3 style: never a dot), so `*.example.com` allows `a.example.com`, not
  `a.b.example.com`. Compared in lower case.
* `IP:10.20.0.0/16` or `IP:10.20.0.7`: an address inside the network.
* `EMAIL:*@robots.example.com`: `*` stands for a local part (no `@`).
* `CN:robot-*`: a subject common name that is not itself one of the SANs (`*`: any characters).

Every SAN of the request must match a pattern of its type, and its common name must be one of its
SANs or match a pattern (a `CN:` one, or a DNS or EMAIL one for a name that the profile turns
into a SAN).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from certificates.errors import InvalidInput, PermissionRefused

MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 253
PATTERN_TYPES = ("DNS", "IP", "EMAIL", "CN")
_DNS_GLOB = re.compile(r"^(?:[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?)(?:\.[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?)*$")
_EMAIL_GLOB = re.compile(r"^[a-z0-9.!#$%&'+/=?^_`{|}~*-]{1,64}@[a-z0-9*.-]{1,253}$")


@dataclass(frozen=True)
class NamePattern:
    kind: str  # DNS, IP, EMAIL or CN
    text: str  # as written (normalised), e.g. "*.robots.example.com"
    regex: re.Pattern[str] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.text}"

    def matches(self, value: str) -> bool:
        if self.network is not None:
            try:
                return ipaddress.ip_address(value) in self.network
            except ValueError:
                return False
        return self.regex is not None and self.regex.fullmatch(value.lower() if self.kind != "CN" else value) \
            is not None


def _glob(text: str, star: str) -> re.Pattern[str]:
    return re.compile("".join(star if part == "*" else re.escape(part) for part in re.split(r"(\*)", text)))


def _refuse(pattern: str, why: str) -> InvalidInput:
    return InvalidInput(f"The name pattern '{pattern[:80]}' is not valid: {why}", code="invalid_san_pattern")


def parse_pattern(raw: object) -> NamePattern:
    """One pattern as written by staff, refused with a readable message when it means nothing."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("A name pattern is a non-empty string such as 'DNS:*.robots.example.com'.",
                           code="invalid_san_pattern")
    text = raw.strip()
    if len(text) > MAX_PATTERN_LENGTH + 6 or not text.isprintable():
        raise _refuse(text, "too long, or not printable.")
    kind, sep, value = text.partition(":")
    if not sep or kind.upper() not in PATTERN_TYPES:
        kind, value = "DNS", text
    kind = kind.upper()
    if kind == "DNS":
        value = value.lower().rstrip(".")
        if not _DNS_GLOB.fullmatch(value) or "**" in value:
            raise _refuse(text, "a DNS pattern is a host name in which '*' may stand for part of a label.")
        if value.split(".")[-1] == "*" or value == "*":
            raise _refuse(text, "the last label (the top-level domain) must be written out.")
        return NamePattern("DNS", value, regex=_glob(value, "[a-z0-9-]+"))
    if kind == "IP":
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _refuse(text, "an IP pattern is an address or a network such as 10.20.0.0/16.") from None
        return NamePattern("IP", str(network), network=network)
    if kind == "EMAIL":
        value = value.lower()
        if not _EMAIL_GLOB.fullmatch(value):
            raise _refuse(text, "an EMAIL pattern is a mailbox such as '*@robots.example.com'.")
        return NamePattern("EMAIL", value, regex=_glob(value, "[^@]+"))
    if not value:
        raise _refuse(text, "a CN pattern needs a value.")
    return NamePattern("CN", value, regex=_glob(value, ".+"))


def parse_patterns(raws: object) -> list[NamePattern]:
    """The token's patterns: at least one, at most MAX_PATTERNS, each valid; duplicates dropped."""
    if isinstance(raws, str):
        raws = [raws]
    if not isinstance(raws, list | tuple) or not raws:
        raise InvalidInput("Give at least one allowed-name pattern (san_patterns), e.g. 'DNS:*.robots.example.com'.",
                           code="san_patterns_required")
    if len(raws) > MAX_PATTERNS:
        raise InvalidInput(f"At most {MAX_PATTERNS} name patterns.", code="too_many_san_patterns")
    patterns: dict[str, NamePattern] = {}
    for raw in raws:
        pattern = parse_pattern(raw)
        patterns.setdefault(str(pattern), pattern)
    return list(patterns.values())


def _san_value(name: x509.GeneralName) -> tuple[str, str] | None:
    if isinstance(name, x509.DNSName):
        return "DNS", name.value.lower()
    if isinstance(name, x509.IPAddress):
        return "IP", str(name.value)
    if isinstance(name, x509.RFC822Name):
        return "EMAIL", name.value.lower()
    return None


def _allowed(patterns: Sequence[NamePattern], kinds: Sequence[str], value: str) -> bool:
    return any(pattern.kind in kinds and pattern.matches(value) for pattern in patterns)


def check_requested_names(patterns: Sequence[NamePattern], sans: Sequence[x509.GeneralName],
                          common_name: str | None) -> None:
    """Refuse (403 `name_not_allowed`) a request naming anything the token does not allow."""
    values = []
    for name in sans:
        typed = _san_value(name)
        if typed is None:
            raise PermissionRefused("The enrollment token allows DNS, IP and e-mail names only.",
                                    code="name_not_allowed")
        kind, value = typed
        if not _allowed(patterns, (kind,), value):
            raise PermissionRefused(f"The enrollment token does not allow the name {kind}:{value[:100]}.",
                                    code="name_not_allowed")
        values.append(value)
    if common_name is not None:
        if common_name.lower() in values or common_name in values:
            return
        if not _allowed(patterns, ("CN", "DNS", "EMAIL"), common_name):
            raise PermissionRefused(f"The enrollment token does not allow the common name '{common_name[:100]}'.",
                                    code="name_not_allowed")
    if not values and common_name is None:
        raise InvalidInput("The CSR names nothing: give a common name or a subject alternative name.",
                           code="csr_without_names")
