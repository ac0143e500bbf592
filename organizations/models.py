"""Organizations (the tenants), users' membership and role, API keys and session tokens.

Every CA, certificate and user belongs to one organization; only a global admin
(role admin, no organization) stands outside them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from organizations.roles import Role


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="organization_name_unique_ci"),
            models.CheckConstraint(condition=~models.Q(slug=""), name="organization_slug_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


ROLE_CHOICES = [(role.value, role.value.capitalize()) for role in Role]


class Membership(models.Model):
    """A Django user's role and organization. A user without a membership cannot sign in.

    The organization may be empty only for an admin: that admin is global and sees
    every organization. The database refuses anything else.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="memberships"
    )

    class Meta:
        ordering = ["user__username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[role.value for role in Role]), name="membership_role_known"
            ),
            models.CheckConstraint(
                condition=models.Q(organization__isnull=False) | models.Q(role=Role.ADMIN.value),
                name="membership_organization_required_unless_admin",
            ),
        ]

    def __str__(self) -> str:
        where = self.organization.slug if self.organization_id else "all organizations"
        return f"{self.user} ({self.role}, {where})"

    @property
    def is_global_admin(self) -> bool:
        return self.role == Role.ADMIN.value and self.organization_id is None


class ApiKey(models.Model):
    """An API key: `pki_<prefix>_<secret>`. Only the prefix (public lookup id) and a hash are stored.

    The key itself is shown once, when created. `key_hash` is the hex SHA-256 of the whole
    key: the secret part carries 256 random bits, so a fast hash is already beyond brute
    force and a slow KDF would only slow every request (see `organizations.keys`).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Scopes beyond the role, met by the issuance services for every request the key (or a session
    # it opened) makes: empty means "any CA" / "any profile", null "the profile's own maximum".
    allowed_cas = models.ManyToManyField("certificates.CertificateAuthority", blank=True, related_name="+",
                                         help_text="Issue and renew only from these CAs; none: every CA.")
    allowed_profiles = models.JSONField(default=list, blank=True,
                                        help_text="Profile names the key may issue; empty: every profile.")
    max_validity_days = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="The longest validity the key may ask for.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(condition=~models.Q(prefix=""), name="api_key_prefix_not_empty"),
            models.CheckConstraint(condition=~models.Q(key_hash=""), name="api_key_hash_not_empty"),
            models.CheckConstraint(condition=models.Q(max_validity_days__isnull=True)
                                   | models.Q(max_validity_days__gte=1), name="api_key_max_validity_positive"),
        ]

    def __str__(self) -> str:
        return f"pki_{self.prefix}_… ({self.label or 'no label'})"

    @property
    def is_scoped(self) -> bool:
        """Whether the key carries a scope beyond its role (callers should prefetch `allowed_cas`)."""
        return bool(self.allowed_profiles) or self.max_validity_days is not None or bool(self.allowed_cas.all())

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class SessionToken(models.Model):
    """One issued session JWT, by its `jti`. The database is the source of truth for logout.

    Every request that presents a session JWT looks its row up (with the key and user),
    so logout, key revocation, key expiry and user deactivation win on the very next
    request in every worker process.
    """

    jti = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="session_tokens")
    # What opened the session: an API key, or a client certificate bound to the user (exactly one).
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="sessions", null=True, blank=True)
    client_certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.CASCADE, related_name="sessions", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="session_token_expiry")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(api_key__isnull=False, client_certificate__isnull=True)
                | models.Q(api_key__isnull=True, client_certificate__isnull=False),
                name="session_token_one_credential",
            ),
        ]

    def __str__(self) -> str:
        return f"session of {self.user_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class ClientCertificateBinding(models.Model):
    """A certificate this PKI issued, bound by staff to the member who may sign in with it (mTLS).

    A certificate is bound to one user at most (the one-to-one field's unique index); the user must
    be a member of the certificate's organization (checked when binding and at every sign-in and request).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="client_certificate_bindings")
    certificate = models.OneToOneField("certificates.Certificate", on_delete=models.CASCADE,
                                       related_name="client_binding")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, help_text="Username or operator label.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "client certificate binding"

    def __str__(self) -> str:
        return f"{self.certificate_id} → {self.user_id}"
