"""Expiry notifications: who hears about an organization's expiring certificates, and what was sent.

A `NotificationTarget` is an e-mail address or a webhook URL of one organization, with the
bands (days before expiry) at which it wants to hear. An `ExpiryNotification` is one message
owed to one target about one certificate at one band; its unique constraint is what makes
"each sent once" hold even when two `notify_expiring` runs overlap.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from organizations.models import Organization

DEFAULT_BANDS = [30, 7, 1]
MAX_BAND_DAYS = 3650


class NotificationKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (HMAC-signed POST)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # owed: not sent yet, or a failed attempt that will be retried
    SENT = "sent", "Sent"
    GAVE_UP = "gave_up", "Gave up"  # every attempt failed


def default_bands() -> list[int]:
    return list(DEFAULT_BANDS)


class NotificationTarget(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="notification_targets")
    kind = models.CharField(max_length=8, choices=NotificationKind.choices)
    address = models.CharField(max_length=500, help_text="An e-mail address, or the webhook's http(s) URL.")
    bands = models.JSONField(default=default_bands, help_text="Days before expiry at which to notify, e.g. [30, 7, 1].")
    secret_path = models.CharField(max_length=255, blank=True,
                                   help_text="The webhook's HMAC key, encrypted at rest (relative to PKI_DATA_DIR).")
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "certificates"
        ordering = ["organization", "kind", "address"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "address"], name="notification_target_unique"),
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notification_target_kind"),
            models.CheckConstraint(condition=Q(kind=NotificationKind.EMAIL) | ~Q(secret_path=""),
                                   name="notification_webhook_has_secret"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.organization}"


class ExpiryNotification(models.Model):
    target = models.ForeignKey(NotificationTarget, on_delete=models.CASCADE, related_name="notifications")
    certificate = models.ForeignKey("certificates.Certificate", on_delete=models.CASCADE,
                                    related_name="expiry_notifications")
    band = models.PositiveIntegerField(help_text="The band (days before expiry) this message is for.")
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=200, blank=True, help_text="Why the last attempt failed (no secrets).")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "certificates"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["target", "certificate", "band"], name="expiry_notification_once"),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="expiry_notification_status"),
            models.CheckConstraint(condition=Q(band__gte=1, band__lte=MAX_BAND_DAYS), name="expiry_notification_band"),
            models.CheckConstraint(condition=~Q(status=DeliveryStatus.SENT) | Q(sent_at__isnull=False),
                                   name="expiry_notification_sent_has_time"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="expiry_notification_due")]

    def __str__(self) -> str:
        return f"{self.band}-day notice about {self.certificate_id} to target {self.target_id}"
