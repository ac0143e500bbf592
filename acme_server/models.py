"""ACME (RFC 8555) state: accounts, external account bindings, orders, authorizations, challenges, nonces.

Everything lives in the database so every worker and host sees the same state: a nonce
issued by one worker is consumed (once) by another, a challenge validated in one worker's
thread pool is read as valid by the next request wherever it lands. Objects are named in
URLs by a random `name`, never by their sequential id.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q

from certificates.models import Certificate, CertificateAuthority
from organizations.models import Organization


def new_name() -> str:
    """A URL-safe random name for an object's URL (128 bits)."""
    return secrets.token_urlsafe(16)


class AccountStatus(models.TextChoices):  # RFC 8555 7.1.6
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthorizationStatus(models.TextChoices):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class IdentifierType(models.TextChoices):
    DNS = "dns"
    IP = "ip"  # RFC 8738


class ExternalAccountKey(models.Model):
    """An EAB credential (RFC 8555 7.3.4): a key id and an HMAC key staff hand to one ACME client.

    The HMAC key is sealed in the vault (`hmac_key_path`, relative to PKI_DATA_DIR), shown once at
    creation, and binds at most one account; the bound account belongs to `organization` and, when
    `ca` is set, may only order from that CA.
    """

    key_id = models.CharField(max_length=64, unique=True)
    hmac_key_path = models.CharField(max_length=255, help_text="Sealed HMAC key, relative to PKI_DATA_DIR.")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="acme_eab_keys")
    ca = models.ForeignKey(CertificateAuthority, null=True, blank=True, on_delete=models.PROTECT,
                           related_name="acme_eab_keys")
    label = models.CharField(max_length=100, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "ACME external account key"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(key_id=""), name="acme_eab_key_id_present"),
            models.CheckConstraint(condition=~Q(hmac_key_path=""), name="acme_eab_hmac_path_present"),
        ]

    def __str__(self) -> str:
        return self.key_id

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.used_at is None


class Account(models.Model):
    name = models.CharField(max_length=32, unique=True, default=new_name)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="acme_accounts")
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="acme_accounts",
                           help_text="The directory the account was created in.")
    thumbprint = models.CharField(max_length=64, unique=True, help_text="RFC 7638 SHA-256 JWK thumbprint.")
    jwk = models.JSONField(help_text="The account's public key (JWK).")
    contacts = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=AccountStatus.choices, default=AccountStatus.VALID)
    terms_agreed = models.BooleanField(default=False)
    external_key = models.OneToOneField(ExternalAccountKey, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="account")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "ACME account"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=AccountStatus.values), name="acme_account_status_known"),
            models.CheckConstraint(condition=~Q(thumbprint=""), name="acme_account_thumbprint_present"),
        ]

    def __str__(self) -> str:
        return f"ACME account {self.name[:8]}"


class Order(models.Model):
    name = models.CharField(max_length=32, unique=True, default=new_name)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="acme_orders")
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="acme_orders")
    status = models.CharField(max_length=12, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    identifiers = models.JSONField(help_text='[{"type": "dns", "value": "…"}], as ordered.')
    expires_at = models.DateTimeField()
    error = models.JSONField(null=True, blank=True)
    certificate = models.OneToOneField(Certificate, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="acme_order")
    replaces = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="acme_replacements",
                                 help_text="The certificate this order renews (RFC 9773 5).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "ACME order"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="acme_order_status_known"),
            models.CheckConstraint(condition=Q(status=OrderStatus.VALID, certificate__isnull=False)
                                   | ~Q(status=OrderStatus.VALID), name="acme_order_valid_has_certificate"),
            # RFC 9773 5: a certificate is replaced by one order at a time (a failed one frees it)
            models.UniqueConstraint(fields=["replaces"], condition=Q(replaces__isnull=False)
                                    & ~Q(status=OrderStatus.INVALID), name="acme_order_replaces_once"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="acme_order_status_expiry")]

    def __str__(self) -> str:
        return f"ACME order {self.name[:8]}"


class Authorization(models.Model):
    name = models.CharField(max_length=32, unique=True, default=new_name)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="authorizations")
    identifier_type = models.CharField(max_length=8, choices=IdentifierType.choices)
    identifier_value = models.CharField(max_length=253, help_text="Without the '*.' of a wildcard.")
    wildcard = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=AuthorizationStatus.choices,
                              default=AuthorizationStatus.PENDING)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "ACME authorization"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=AuthorizationStatus.values),
                                   name="acme_authz_status_known"),
            models.CheckConstraint(condition=Q(identifier_type__in=IdentifierType.values),
                                   name="acme_authz_identifier_type_known"),
            models.CheckConstraint(condition=Q(wildcard=False) | Q(identifier_type=IdentifierType.DNS),
                                   name="acme_authz_wildcard_only_dns"),
            models.UniqueConstraint(fields=["order", "identifier_type", "identifier_value", "wildcard"],
                                    name="acme_authz_unique_identifier_per_order"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="acme_authz_status_expiry")]

    def __str__(self) -> str:
        return f"{'*.' if self.wildcard else ''}{self.identifier_value}"


class Challenge(models.Model):
    name = models.CharField(max_length=32, unique=True, default=new_name)
    authorization = models.ForeignKey(Authorization, on_delete=models.CASCADE, related_name="challenges")
    type = models.CharField(max_length=16)
    token = models.CharField(max_length=64, default=new_name, help_text="RFC 8555 8.1: public, in the challenge.")
    status = models.CharField(max_length=12, choices=ChallengeStatus.choices, default=ChallengeStatus.PENDING)
    validated_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "ACME challenge"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ChallengeStatus.values),
                                   name="acme_challenge_status_known"),
            models.CheckConstraint(condition=Q(type__in=["http-01", "dns-01", "tls-alpn-01"]),
                                   name="acme_challenge_type_known"),
            models.UniqueConstraint(fields=["authorization", "type"], name="acme_challenge_one_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} for {self.authorization}"


class Nonce(models.Model):
    """A Replay-Nonce (RFC 8555 6.5): issued by any worker, consumed once by a DELETE that only one wins."""

    value = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "ACME nonce"
        indexes = [models.Index(fields=["expires_at"], name="acme_nonce_expiry")]
        constraints = [models.CheckConstraint(condition=~Q(value=""), name="acme_nonce_value_present")]

    def __str__(self) -> str:
        return "ACME nonce"
