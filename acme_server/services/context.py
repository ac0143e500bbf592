"""Where an ACME request arrived: the directory's CA and the absolute URLs of its resources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from certificates.models import CertificateAuthority


def iso_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as every ACME document writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AcmeContext:
    ca: CertificateAuthority
    base: str  # e.g. "https://pki.example.com/acme/issuing-ca" (no trailing slash)
    client_ip: str = ""

    def url(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    @property
    def directory_url(self) -> str:
        return self.url("directory")

    def account_url(self, name: str) -> str:
        return self.url("account", name)

    def order_url(self, name: str) -> str:
        return self.url("order", name)

    def authz_url(self, name: str) -> str:
        return self.url("authz", name)

    def challenge_url(self, name: str) -> str:
        return self.url("challenge", name)

    def certificate_url(self, name: str) -> str:
        return self.url("cert", name)

    def directory(self, *, terms_of_service: str, eab_required: bool) -> dict:
        """RFC 8555 7.1.1."""
        meta: dict = {"externalAccountRequired": eab_required}
        if terms_of_service:
            meta["termsOfService"] = terms_of_service
        return {
            "newNonce": self.url("new-nonce"), "newAccount": self.url("new-account"),
            "newOrder": self.url("new-order"), "revokeCert": self.url("revoke-cert"),
            "keyChange": self.url("key-change"), "renewalInfo": self.url("renewal-info"), "meta": meta,
        }
