"""Expiry notifications: e-mail and signed webhooks on configurable bands, each sent once.

`manage.py notify_expiring`, run from cron, does two things:

1. **queue**: for every enabled target and every certificate of its organization that is
   neither revoked nor expired nor renewed (a renewal's successor is what matters then), it
   owes one message at the tightest band the certificate has entered (a certificate found 5
   days before expiry with bands 30/7/1 gets the 7-day notice, not a late 30-day one too). The
   row's unique (target, certificate, band) makes a second or concurrent run owe nothing more.
2. **deliver**: every owed message whose time has come is sent; a failure is retried later
   (PKI_NOTIFY_RETRY_MINUTES, doubling) until PKI_NOTIFY_MAX_ATTEMPTS, then given up. Every
   attempt's outcome is an audit event.

A webhook is an HTTP POST of JSON, signed with the target's own HMAC-SHA256 key (shown once at
creation, kept encrypted at rest): `X-PKI-Signature: sha256=<hex of HMAC(key, timestamp + "." +
body)>` and `X-PKI-Timestamp: <unix seconds>`, so that a receiver can refuse replays. Nothing
secret goes into the audit trail or an error text: a webhook is named by its host only, since
its URL may carry a token.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.errors import Conflict, InvalidInput
from certificates.keystore import artifact_store
from certificates.models import Certificate
from certificates.notification_models import (
    MAX_BAND_DAYS,
    DeliveryStatus,
    ExpiryNotification,
    NotificationKind,
    NotificationTarget,
)
from certificates.services.permissions import Action, require
from certificates.vault import load_secret, store_secret
from certificates.vault.paths import PASSWORD_FILENAME
from organizations.models import Organization
from pki_project.actor import Actor

MAX_BANDS = 10
MAX_ADDRESS_LENGTH = 500
USER_AGENT = "private-pki-notifier/1"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class NewTarget:
    target: NotificationTarget
    webhook_secret: str | None  # shown once to whoever created it; None for e-mail


@dataclass
class RunSummary:
    queued: int = 0
    sent: int = 0
    retrying: int = 0
    gave_up: int = 0
    failures: list[str] = field(default_factory=list)  # "target 3, certificate 41: SMTP refused (550)"

    def as_dict(self) -> dict[str, object]:
        return {"queued": self.queued, "sent": self.sent, "retrying": self.retrying, "gave_up": self.gave_up,
                "failures": self.failures}


class DeliveryFailed(Exception):
    """One attempt failed; the message is safe to store and show (no address, URL or key)."""


# --- Targets ----------------------------------------------------------------------------------------


def parse_bands(value: str | Iterable[int | str]) -> list[int]:
    """"30,7,1" or [30, 7, 1] -> [30, 7, 1]: whole days from 1 to 3650, distinct, at most 10, widest first."""
    items = value.split(",") if isinstance(value, str) else list(value)
    bands: set[int] = set()
    for item in items:
        text = str(item).strip()
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_BAND_DAYS:
            raise InvalidInput(f"A band is a whole number of days from 1 to {MAX_BAND_DAYS} (got {text!r}).",
                               code="invalid_bands")
        bands.add(int(text))
    if not bands or len(bands) > MAX_BANDS:
        raise InvalidInput(f"Give from 1 to {MAX_BANDS} bands, e.g. 30,7,1.", code="invalid_bands")
    return sorted(bands, reverse=True)


def _clean_address(kind: str, address: str) -> str:
    address = address.strip()
    if not address or len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidInput(f"The address must be 1 to {MAX_ADDRESS_LENGTH} characters.", code="invalid_address")
    if kind == NotificationKind.EMAIL:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidInput("That is not a valid e-mail address.", code="invalid_address") from None
        return address
    if kind == NotificationKind.WEBHOOK:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise InvalidInput("A webhook is an http:// or https:// URL with a host and without user:password@.",
                               code="invalid_address")
        try:
            parts.port  # noqa: B018  (raises on a port out of range)
        except ValueError:
            raise InvalidInput("The webhook URL's port is not valid.", code="invalid_address") from None
        return address
    raise InvalidInput("The kind is 'email' or 'webhook'.", code="invalid_kind")


def describe_target(target: NotificationTarget) -> str:
    """How a target is named where secrets must not go: an e-mail address, or a webhook's host only."""
    if target.kind == NotificationKind.WEBHOOK:
        return f"webhook {urlsplit(target.address).hostname}"
    return f"e-mail {target.address}"


def create_target(organization: Organization, kind: str, address: str, bands: str | Iterable[int | str] = (30, 7, 1),
                  *, actor: Actor) -> NewTarget:
    """A new e-mail or webhook target; a webhook's signing key is made here, stored sealed and returned once."""
    require(actor, Action.MANAGE_NOTIFICATIONS, organization)
    address = _clean_address(kind, address)
    band_list = parse_bands(bands)
    if NotificationTarget.objects.filter(organization=organization, kind=kind, address=address).exists():
        raise Conflict("This organization already has that target.", code="duplicate")
    secret = secrets.token_urlsafe(32) if kind == NotificationKind.WEBHOOK else None
    secret_path = ""
    if secret is not None:
        secret_path = store_secret(artifact_store(), f"notifications/{uuid.uuid4().hex}/{PASSWORD_FILENAME}",
                                   secret.encode())
    try:
        with transaction.atomic():
            target = NotificationTarget.objects.create(
                organization=organization, kind=kind, address=address, bands=band_list,
                secret_path=secret_path, created_by=actor.username[:150])
            record_event(AuditAction.NOTIFICATION_TARGET_CREATE, organization=organization,
                         target_type="notification_target", target_id=str(target.pk),
                         details={"kind": kind, "to": describe_target(target), "bands": band_list},
                         **actor.audit_kwargs())
    except IntegrityError:
        _remove_secret(secret_path)
        raise Conflict("This organization already has that target.", code="duplicate") from None
    except BaseException:
        _remove_secret(secret_path)
        raise
    return NewTarget(target=target, webhook_secret=secret)


def update_target(target: NotificationTarget, *, actor: Actor, bands: str | Iterable[int | str] | None = None,
                  enabled: bool | None = None) -> NotificationTarget:
    require(actor, Action.MANAGE_NOTIFICATIONS, target.organization)
    changes: dict[str, object] = {}
    if bands is not None and parse_bands(bands) != target.bands:
        changes["bands"] = parse_bands(bands)
    if enabled is not None and enabled != target.enabled:
        changes["enabled"] = enabled
    if not changes:
        return target
    with transaction.atomic():
        NotificationTarget.objects.filter(pk=target.pk).update(**changes)
        record_event(AuditAction.NOTIFICATION_TARGET_CHANGE, organization_id=target.organization_id,
                     target_type="notification_target", target_id=str(target.pk),
                     details={"to": describe_target(target), **changes}, **actor.audit_kwargs())
    target.refresh_from_db()
    return target


def delete_target(target: NotificationTarget, *, actor: Actor) -> None:
    """Delete a target, its owed messages and (once committed) its sealed key."""
    require(actor, Action.MANAGE_NOTIFICATIONS, target.organization)
    secret_path = target.secret_path
    with transaction.atomic():
        record_event(AuditAction.NOTIFICATION_TARGET_DELETE, organization_id=target.organization_id,
                     target_type="notification_target", target_id=str(target.pk),
                     details={"to": describe_target(target)}, **actor.audit_kwargs())
        target.delete()
        transaction.on_commit(lambda: _remove_secret(secret_path))


def _remove_secret(relpath: str) -> None:
    if relpath:
        artifact_store().delete(relpath, missing_ok=True)


def webhook_key(target: NotificationTarget) -> bytes:
    return load_secret(artifact_store(), target.secret_path)


def sign_webhook(key: bytes, timestamp: str, body: bytes) -> str:
    """The X-PKI-Signature value: what a receiver recomputes and compares in constant time."""
    return "sha256=" + hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


# --- Queueing --------------------------------------------------------------------------------------


def tightest_band(bands: Iterable[int], not_after: datetime, now: datetime) -> int | None:
    """The smallest band the certificate has entered (it expires within that many days), or None."""
    entered = [band for band in bands if not_after <= now + timedelta(days=band)]
    return min(entered) if entered else None


def _candidates(target: NotificationTarget, now: datetime):
    widest = max(target.bands)
    return (Certificate.objects.filter(organization_id=target.organization_id, revoked_at__isnull=True,
                                       not_after__gt=now, not_after__lte=now + timedelta(days=widest),
                                       successor__isnull=True)
            .only("pk", "not_after").order_by("pk"))


def _tightest_owed(target: NotificationTarget) -> dict[int, int]:
    """certificate id -> the tightest band already owed to this target about it."""
    owed: dict[int, int] = {}
    for certificate_id, band in target.notifications.values_list("certificate_id", "band"):
        owed[certificate_id] = min(band, owed.get(certificate_id, band))
    return owed


def queue_due(now: datetime) -> int:
    """Owe one message per (target, certificate) at its tightest band; answers how many are newly owed."""
    queued = 0
    for target in NotificationTarget.objects.filter(enabled=True).order_by("pk"):
        tightest_owed = _tightest_owed(target)
        owed = []
        for certificate in _candidates(target, now):
            band = tightest_band(target.bands, certificate.not_after, now)
            if band is None or tightest_owed.get(certificate.pk, MAX_BAND_DAYS + 1) <= band:
                continue  # this band or a tighter one was owed before: never a second, looser notice
            owed.append(ExpiryNotification(target=target, certificate_id=certificate.pk, band=band,
                                           next_attempt_at=now))
        created = ExpiryNotification.objects.bulk_create(owed, ignore_conflicts=True)
        queued += len(created)
    return queued


# --- Delivery --------------------------------------------------------------------------------------


def _days_left(not_after: datetime, now: datetime) -> int:
    return max(0, (not_after - now).days)


def _message(notification: ExpiryNotification, now: datetime) -> dict[str, object]:
    certificate = notification.certificate
    return {
        "event": "certificate.expiring",
        "notification_id": notification.pk,
        "organization": notification.target.organization.slug,
        "band_days": notification.band,
        "certificate": {
            "id": certificate.pk,
            "serial": certificate.serial,
            "common_name": certificate.common_name,
            "sans": certificate.sans,
            "kind": certificate.kind,
            "profile": certificate.profile,
            "not_after": certificate.not_after.isoformat().replace("+00:00", "Z"),
            "days_left": _days_left(certificate.not_after, now),
        },
    }


def _send_email(target: NotificationTarget, message: dict[str, object]) -> None:
    certificate = message["certificate"]
    subject = (f"[PKI] Certificate {certificate['common_name'] or certificate['serial']} expires in "
               f"{certificate['days_left']} day(s)")
    lines = [
        f"A certificate of the organization {message['organization']} expires on {certificate['not_after']}"
        f" ({certificate['days_left']} day(s) from now).",
        "",
        f"Common name: {certificate['common_name'] or '(none)'}",
        f"Names: {', '.join(certificate['sans']) or '(none)'}",
        f"Serial: {certificate['serial']}",
        f"Profile: {certificate['profile'] or certificate['kind']}",
        "",
        "Renew it before then (the staff pages, POST /api/v1/certificates/{id}/renew/ or "
        "manage.py renew_certificate). This is the " f"{message['band_days']}-day notice; you will not get it twice.",
    ]
    try:
        send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, [target.address],
                  fail_silently=False)
    except smtplib.SMTPResponseException as error:
        raise DeliveryFailed(f"the mail server refused it ({error.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("the mail server refused the recipient") from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryFailed(f"the mail server could not be reached ({type(error).__name__})") from None


def _post_webhook(target: NotificationTarget, message: dict[str, object]) -> None:
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode("utf-8")
    timestamp = str(int(time.time()))
    parts = urlsplit(target.address)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = settings.PKI_NOTIFY_TIMEOUT
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-PKI-Timestamp": timestamp,
               "X-PKI-Signature": sign_webhook(webhook_key(target), timestamp, body),
               "X-PKI-Event": "certificate.expiring"}
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
    except TimeoutError:
        raise DeliveryFailed(f"the webhook did not answer within {timeout} s") from None
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailed(f"the webhook could not be reached ({type(error).__name__})") from None
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"the webhook answered HTTP {response.status}")


def _deliver(notification: ExpiryNotification, now: datetime) -> None:
    message = _message(notification, now)
    if notification.target.kind == NotificationKind.EMAIL:
        _send_email(notification.target, message)
    else:
        _post_webhook(notification.target, message)


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(minutes=settings.PKI_NOTIFY_RETRY_MINUTES * 2 ** max(0, attempts - 1))


def _claim(notification: ExpiryNotification, now: datetime) -> bool:
    """Take the message for this run: a concurrent run that claimed it first makes this one skip it."""
    lease = now + timedelta(seconds=settings.PKI_NOTIFY_TIMEOUT * 3 + 60)
    return bool(ExpiryNotification.objects.filter(pk=notification.pk, status=DeliveryStatus.PENDING,
                                                  next_attempt_at=notification.next_attempt_at)
                .update(next_attempt_at=lease))


def _record_outcome(notification: ExpiryNotification, error: DeliveryFailed | None, now: datetime) -> str:
    attempts = notification.attempts + 1
    target = notification.target
    details: dict[str, object] = {"to": describe_target(target), "band_days": notification.band, "attempt": attempts}
    if error is None:
        status, fields = DeliveryStatus.SENT, {"sent_at": now, "last_error": ""}
    elif attempts >= settings.PKI_NOTIFY_MAX_ATTEMPTS:
        status, fields = DeliveryStatus.GAVE_UP, {"last_error": str(error)[:200]}
    else:
        status, fields = DeliveryStatus.PENDING, {"last_error": str(error)[:200],
                                                  "next_attempt_at": now + _retry_delay(attempts)}
    if error is not None:
        details |= {"error": str(error)[:200], "will_retry": status == DeliveryStatus.PENDING}
    with transaction.atomic():
        ExpiryNotification.objects.filter(pk=notification.pk).update(status=status, attempts=attempts, **fields)
        record_event(AuditAction.NOTIFICATION_SEND, outcome="success" if error is None else "failure",
                     organization_id=target.organization_id, target_type="certificate",
                     target_id=str(notification.certificate_id), target_serial=notification.certificate.serial,
                     details=details, actor_label="cli:notify_expiring")
    return status


def deliver_due(now: datetime, summary: RunSummary, progress: Progress | None = None) -> None:
    due = (ExpiryNotification.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
           .select_related("target__organization", "certificate").order_by("next_attempt_at", "pk"))
    for notification in due:
        if not _claim(notification, now):
            continue
        try:
            _deliver(notification, now)
            error = None
        except DeliveryFailed as failure:
            error = failure
        status = _record_outcome(notification, error, now)
        label = f"{describe_target(notification.target)}, certificate {notification.certificate_id}"
        if status == DeliveryStatus.SENT:
            summary.sent += 1
        else:
            summary.failures.append(f"{label}: {error}")
            if status == DeliveryStatus.GAVE_UP:
                summary.gave_up += 1
            else:
                summary.retrying += 1
        if progress:
            progress(f"{status:8} {label} ({notification.band}-day notice)")


def notify_expiring(now: datetime | None = None, progress: Progress | None = None) -> RunSummary:
    """One cron run: owe what is due, then deliver what is owed (including earlier failures whose time came)."""
    now = now or timezone.now()
    summary = RunSummary(queued=queue_due(now))
    if progress:
        progress(f"{summary.queued} new notice(s) owed")
    deliver_due(now, summary, progress)
    return summary


def pending_preview(now: datetime | None = None) -> list[tuple[NotificationTarget, Certificate, int]]:
    """What a run would owe now, without writing anything (`notify_expiring --dry-run`)."""
    now = now or timezone.now()
    preview = []
    for target in NotificationTarget.objects.filter(enabled=True).select_related("organization").order_by("pk"):
        tightest_owed = _tightest_owed(target)
        for certificate in _candidates(target, now).only("pk", "not_after", "common_name", "serial"):
            band = tightest_band(target.bands, certificate.not_after, now)
            if band is not None and tightest_owed.get(certificate.pk, MAX_BAND_DAYS + 1) > band:
                preview.append((target, certificate, band))
    return preview
