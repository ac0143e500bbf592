"""The identifier being validated (RFC 8555 §7.1.4 `dns`, RFC 8738 `ip`) and the challenge token's form."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from acme_server.validation.outcome import MALFORMED, ChallengeFailure

DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
MAX_DNS_NAME_LENGTH = 253
# RFC 8555 §8.1: base64url without padding, at least 128 bits of entropy (22 characters).
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,256}")


@dataclass(frozen=True)
class Identifier:
    type: str  # "dns" or "ip"
    value: str  # a lower-case A-label name without the final dot, or the address in its canonical text
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def url_host(self) -> str:
        """The host as it goes in a URL and a Host header: IPv6 in brackets (RFC 8738 §3, RFC 3986 §3.2.2)."""
        return f"[{self.value}]" if isinstance(self.address, ipaddress.IPv6Address) else self.value

    @property
    def tls_server_name(self) -> str:
        """The SNI: the name, or for an address its reverse-mapping name (RFC 8738 §6)."""
        return self.address.reverse_pointer if self.address is not None else self.value


def parse_identifier(identifier_type: str, value: str) -> Identifier:
    """The identifier, or a `malformed` problem when its value is not a DNS name or an IP address."""
    if identifier_type == "ip":
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ChallengeFailure(MALFORMED, f"{value!r} is not an IP address (RFC 8738 §3)") from None
        return Identifier("ip", str(address), address)
    if identifier_type != "dns":
        raise ValueError(f"unknown identifier type {identifier_type!r}")
    if value.startswith("*."):
        raise ValueError("a wildcard identifier is validated by dns-01 only, and comes without its '*.'")
    name = value.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > MAX_DNS_NAME_LENGTH or not all(DNS_LABEL.fullmatch(label) for label in labels):
        raise ChallengeFailure(MALFORMED, f"{value!r} is not a DNS name in its ASCII (A-label) form")
    return Identifier("dns", name)


def check_token(token: str) -> None:
    """A `malformed` problem unless the token is base64url of at least 128 bits (RFC 8555 §8.1)."""
    if not TOKEN.fullmatch(token):
        raise ChallengeFailure(MALFORMED, "the challenge token is not base64url of at least 128 bits "
                                          "(RFC 8555 §8.1)")
