"""Certificate requests that wait for a second person (two-person approval of issuance).

A request of a profile or CA with `requires_approval` is vetted as issuance would vet it and
stored here as `pending`: the CSR (PEM), or the parameters of a key to generate on the server
(never a key: that is generated when the request is approved). One decision ends it: an
approver of the organization other than the requester approves it (the certificate is issued
then, once) or rejects it with a reason; or it expires (PKI_APPROVAL_TTL_HOURS).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from certificates.models import Certificate, CertificateAuthority
from organizations.models import Organization

MAX_REASON_LENGTH = 500


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class RequesterKind(models.TextChoices):
    MEMBER = "member"  # a signed-in user (any of their API keys or sessions is the same person)
    OPERATOR = "operator"  # the console (`manage.py issue_certificate`)
    ACME = "acme"  # an ACME account finalizing an order


class IssuanceApproval(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="issuance_approvals")
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="issuance_approvals")
    profile = models.CharField(max_length=64)
    csr = models.TextField(blank=True, help_text="The vetted CSR (PEM); empty for a key generated at approval.")
    common_name = models.CharField(max_length=64, blank=True)
    sans = models.JSONField(default=list, blank=True, help_text='SANs as "DNS:…", "IP:…", "EMAIL:…".')
    key_type = models.CharField(max_length=16, blank=True, help_text="For a key generated at approval.")
    names = models.JSONField(default=list, blank=True, help_text="The SANs the certificate will carry (display).")
    days = models.PositiveIntegerField(null=True, blank=True)
    hours = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    requester_kind = models.CharField(max_length=10, choices=RequesterKind.choices)
    requester_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    requester_acme_account_id = models.BigIntegerField(null=True, blank=True)
    requested_by = models.CharField(max_length=150, help_text="Username, operator or ACME account label.")
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    acme_order = models.OneToOneField("acme_server.Order", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="approval")
    decided_by = models.CharField(max_length=150, blank=True)
    decider_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=MAX_REASON_LENGTH, blank=True)
    certificate = models.OneToOneField(Certificate, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="approval")

    class Meta:
        verbose_name = "issuance approval"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ApprovalStatus.values), name="approval_status_known"),
            models.CheckConstraint(condition=Q(requester_kind__in=RequesterKind.values),
                                   name="approval_requester_kind_known"),
            # One decision, recorded with its time: a pending request has none.
            models.CheckConstraint(condition=Q(status=ApprovalStatus.PENDING, decided_at__isnull=True)
                                   | (~Q(status=ApprovalStatus.PENDING) & Q(decided_at__isnull=False)),
                                   name="approval_decided_iff_not_pending"),
            # The certificate exists exactly when the request was approved.
            models.CheckConstraint(condition=Q(status=ApprovalStatus.APPROVED, certificate__isnull=False)
                                   | (~Q(status=ApprovalStatus.APPROVED) & Q(certificate__isnull=True)),
                                   name="approval_approved_iff_certificate"),
            models.CheckConstraint(condition=~Q(status=ApprovalStatus.REJECTED) | ~Q(reason=""),
                                   name="approval_rejection_has_reason"),
            # A CSR or a key to generate, never both.
            models.CheckConstraint(condition=Q(csr="") | Q(key_type=""), name="approval_csr_or_server_key"),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("requested_at")),
                                   name="approval_expires_after_request"),
        ]
        indexes = [models.Index(fields=["organization", "status", "expires_at"], name="approval_org_status")]

    def __str__(self) -> str:
        return f"Request #{self.pk} ({self.common_name or ', '.join(self.sans[:2]) or 'CSR'}, {self.status})"

    @property
    def key_source(self) -> str:
        return "csr" if self.csr else "server"
