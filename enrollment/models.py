"""One-time enrollment tokens: the credential a machine uses, once, to get its certificate.

A token is bound to an organization, one of its intermediate CAs, a certificate profile and the
names the certificate may carry (`san_patterns`); it expires, and staff may revoke it. Only the
SHA-256 of its secret is stored (the secret has 256 random bits, so a plain hash is enough); the
token itself is shown once, at creation. Using it sets `used_at` in the transaction that issues the
certificate, by a conditional UPDATE, so two parallel uses give one certificate.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from certificates.models import Certificate, CertificateAuthority, CertificateProfile
from organizations.models import Organization


class EnrollmentTokenQuerySet(models.QuerySet):
    def usable(self, now=None) -> EnrollmentTokenQuerySet:
        """Neither used, revoked nor expired at `now`."""
        now = now or timezone.now()
        return self.filter(used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


class EnrollmentToken(models.Model):
    token_id = models.CharField(max_length=32, unique=True, help_text="Public part of the token; names it.")
    secret_sha256 = models.CharField(max_length=64, help_text="SHA-256 (hex) of the whole token.")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="enrollment_tokens")
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="enrollment_tokens")
    profile = models.ForeignKey(CertificateProfile, on_delete=models.PROTECT, related_name="enrollment_tokens")
    san_patterns = models.JSONField(default=list, help_text='Allowed names, e.g. "DNS:*.robots.example.com".')
    label = models.CharField(max_length=100, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    certificate = models.OneToOneField(Certificate, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="enrollment_token")

    objects = EnrollmentTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=F("created_at")), name="enrollment_token_expires_later"),
            # The certificate is linked in the same transaction that marks the token used, never without it.
            models.CheckConstraint(condition=Q(certificate__isnull=True) | Q(used_at__isnull=False),
                                   name="enrollment_token_certificate_means_used"),
            models.CheckConstraint(condition=~Q(secret_sha256=""), name="enrollment_token_has_hash"),
        ]

    def __str__(self) -> str:
        return self.token_id

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.used_at:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "usable"
