"""Expiry notifications against a real SMTP server (aiosmtpd) and a real webhook receiver (http.server).

The certificates are issued by the real service from a real root and intermediate; the
command runs as cron would run it; what the receivers got is checked, signatures included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from certificates.errors import Conflict, InvalidInput, NotFound, PermissionRefused
from certificates.models import Certificate
from certificates.notification_models import DeliveryStatus, ExpiryNotification, NotificationTarget
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.notifications import (
    create_target,
    delete_target,
    notify_expiring,
    parse_bands,
    tightest_band,
    update_target,
)
from certificates.services.revocation import revoke_certificate
from organizations.principal import Principal
from pki_project.actor import Actor

pytestmark = pytest.mark.django_db


# --- Receivers ----------------------------------------------------------------------------------------


class SmtpInbox:
    """aiosmtpd on a free loopback port; `messages` holds what it accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = False
        inbox = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if inbox.refuse:
                    return "550 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                inbox.messages.append((list(envelope.rcpt_tos), envelope.content))
                return "250 Message accepted"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()


class WebhookReceiver:
    """A real HTTP server; answers `statuses` in turn (then 200) and keeps every request it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pki?token=not-for-the-audit-trail"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = SmtpInbox()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", inbox.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "pki@example.test"
    yield inbox
    inbox.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


# --- Certificates ----------------------------------------------------------------------------------


def _issue(ca, operator, name: str, days: int) -> Certificate:
    return issue_certificate(ca, IssuanceRequest(profile="server", common_name=name, sans=[f"DNS:{name}"],
                                                 key_type="ec-p256", days=days), actor=operator)


@pytest.fixture
def expiring(intermediate_ca, operator) -> Certificate:
    return _issue(intermediate_ca, operator, "soon.example.com", days=5)


def _admin_of(organization) -> Actor:
    return Actor(principal=Principal(user_id=990, username="alice", role="admin", organization_id=organization.pk))


def _run(**kwargs) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("notify_expiring", stdout=out, **kwargs)
        return out.getvalue(), 0
    except CommandError as error:
        return out.getvalue() + str(error), 1


# --- Bands --------------------------------------------------------------------------------------------


def test_bands_parse_and_refuse():
    assert parse_bands("1, 30,7") == [30, 7, 1]
    for bad in ("", "0", "7,x", "3651", "-1", "1" * 3 + "²", ",".join(str(i) for i in range(1, 12))):
        with pytest.raises(InvalidInput):
            parse_bands(bad)


def test_the_tightest_band_entered_is_chosen():
    now = timezone.now()
    assert tightest_band([30, 7, 1], now + timedelta(days=5), now) == 7
    assert tightest_band([30, 7, 1], now + timedelta(days=20), now) == 30
    assert tightest_band([30, 7, 1], now + timedelta(hours=5), now) == 1
    assert tightest_band([30, 7, 1], now + timedelta(days=31), now) is None


# --- E-mail -------------------------------------------------------------------------------------------


def test_an_expiring_certificate_is_mailed_once(smtp, organization, expiring, intermediate_ca, operator):
    _issue(intermediate_ca, operator, "later.example.com", days=90)  # outside every band: no mail
    create_target(organization, "email", "ops@example.com", "30,7,1", actor=operator)

    output, status = _run()
    assert status == 0, output
    assert "1 newly owed, 1 sent" in output
    assert len(smtp.messages) == 1
    recipients, content = smtp.messages[0]
    assert recipients == ["ops@example.com"]
    mail = message_from_bytes(content)
    assert mail["Subject"].startswith("[PKI] Certificate soon.example.com expires in 4 day(s)")
    assert expiring.serial in mail.get_payload()
    row = ExpiryNotification.objects.get()
    assert (row.certificate_id, row.band, row.status, row.attempts) == (expiring.pk, 7, DeliveryStatus.SENT, 1)
    event = AuditEvent.objects.filter(action="notification.send").get()
    assert event.outcome == "success"
    assert event.target_serial == expiring.serial

    output, status = _run()  # cron again: nothing more is owed
    assert status == 0
    assert "0 newly owed, 0 sent" in output
    assert len(smtp.messages) == 1


def test_a_tighter_band_later_sends_one_more_never_a_looser_one(smtp, organization, expiring, operator):
    create_target(organization, "email", "ops@example.com", "30,7,1", actor=operator)
    notify_expiring(now=expiring.not_after - timedelta(days=20))  # the 30-day notice
    notify_expiring(now=expiring.not_after - timedelta(days=19))  # still the 30-day band: nothing
    notify_expiring(now=expiring.not_after - timedelta(hours=12))  # the 1-day notice (7 skipped, it is past)
    assert sorted(ExpiryNotification.objects.values_list("band", flat=True)) == [1, 30]
    assert len(smtp.messages) == 2


def test_revoked_renewed_and_other_organizations_certificates_are_not_mailed(
        smtp, organization, other_organization, intermediate_ca, operator):
    revoked = _issue(intermediate_ca, operator, "revoked.example.com", days=5)
    revoke_certificate(revoked, reason="superseded", actor=operator)
    renewed = _issue(intermediate_ca, operator, "renewed.example.com", days=5)
    successor = renew_certificate(renewed, actor=operator, days=5)
    create_target(organization, "email", "ops@example.com", "7", actor=operator)
    create_target(other_organization, "email", "other@example.com", "7", actor=operator)

    notify_expiring()
    sent = {row.certificate_id: row.target.address for row in ExpiryNotification.objects.select_related("target")}
    assert sent == {successor.pk: "ops@example.com"}  # only the renewal, which still expires in 5 days
    assert [recipients for recipients, _ in smtp.messages] == [["ops@example.com"]]


def test_a_refused_mail_is_retried_then_given_up(smtp, settings, organization, expiring, operator):
    settings.PKI_NOTIFY_MAX_ATTEMPTS, settings.PKI_NOTIFY_RETRY_MINUTES = 2, 10
    create_target(organization, "email", "ops@example.com", "7", actor=operator)
    smtp.refuse = True
    now = timezone.now()

    first = notify_expiring(now=now)
    assert (first.sent, first.retrying, first.gave_up) == (0, 1, 0)
    row = ExpiryNotification.objects.get()
    assert row.status == DeliveryStatus.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at == now + timedelta(minutes=10)
    assert "refused the recipient" in row.last_error
    assert "ops@example.com" not in row.last_error

    assert notify_expiring(now=now + timedelta(minutes=5)).retrying == 0  # not yet time to retry
    last = notify_expiring(now=now + timedelta(minutes=11))
    assert (last.gave_up, ExpiryNotification.objects.get().status) == (1, DeliveryStatus.GAVE_UP)
    events = AuditEvent.objects.filter(action="notification.send").order_by("seq")
    assert [(e.outcome, e.details["attempt"], e.details["will_retry"]) for e in events] == [
        ("failure", 1, True), ("failure", 2, False)]
    assert smtp.messages == []


def test_the_command_exits_non_zero_when_a_delivery_fails(settings, organization, expiring, operator):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.PKI_NOTIFY_TIMEOUT = "127.0.0.1", _free_port(), 2
    create_target(organization, "email", "ops@example.com", "7", actor=operator)
    output, status = _run()
    assert status == 1
    assert "could not be delivered" in output
    assert "mail server could not be reached" in output


def test_dry_run_lists_and_sends_nothing(smtp, organization, expiring, operator):
    create_target(organization, "email", "ops@example.com", "30,7,1", actor=operator)
    output, status = _run(dry_run=True)
    assert status == 0
    assert "7-day notice to e-mail ops@example.com" in output
    assert "1 notice(s) would be owed" in output
    assert not ExpiryNotification.objects.exists()
    assert smtp.messages == []


# --- Webhooks -----------------------------------------------------------------------------------------


def test_a_webhook_gets_a_signed_post_it_can_verify(webhook, organization, expiring, operator):
    created = create_target(organization, "webhook", webhook.url, "7", actor=operator)
    key = created.webhook_secret.encode()
    summary = notify_expiring()
    assert summary.sent == 1
    (headers, body), = webhook.requests
    expected = "sha256=" + hmac.new(key, headers["x-pki-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-pki-signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "certificate.expiring"
    assert payload["band_days"] == 7
    assert payload["certificate"]["serial"] == expiring.serial
    assert payload["organization"] == organization.slug


def test_a_failing_webhook_is_retried_and_delivered_once(webhook, organization, expiring, operator):
    create_target(organization, "webhook", webhook.url, "7", actor=operator)
    webhook.statuses = [503]
    now = timezone.now()
    assert notify_expiring(now=now).retrying == 1
    assert notify_expiring(now=now + timedelta(hours=1)).sent == 1
    assert notify_expiring(now=now + timedelta(hours=2)).sent == 0
    assert len(webhook.requests) == 2  # the failed one and the delivered one, never a third
    row = ExpiryNotification.objects.get()
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.SENT, 2, "")


def test_the_webhook_key_is_sealed_and_the_url_kept_out_of_the_trail(webhook, organization, operator, data_dir,
                                                                    django_capture_on_commit_callbacks):
    created = create_target(organization, "webhook", webhook.url, "7", actor=operator)
    secret_file = data_dir / created.target.secret_path
    assert secret_file.is_file()
    assert created.webhook_secret.encode() not in secret_file.read_bytes()
    events = AuditEvent.objects.filter(action__startswith="notification")
    assert events.count() == 1
    assert "not-for-the-audit-trail" not in json.dumps(list(events.values("details", "target_id")))
    assert created.webhook_secret not in json.dumps(list(events.values("details")))

    with django_capture_on_commit_callbacks(execute=True):
        delete_target(created.target, actor=operator)
    assert not secret_file.exists()
    assert not NotificationTarget.objects.exists()


# --- Who may, and bad input ------------------------------------------------------------------------


def test_only_an_admin_of_the_organization_manages_targets(organization, other_organization):
    manager = Actor(principal=Principal(user_id=991, username="mo", role="manager", organization_id=organization.pk))
    with pytest.raises(PermissionRefused):
        create_target(organization, "email", "ops@example.com", actor=manager)
    with pytest.raises(NotFound):
        create_target(other_organization, "email", "ops@example.com", actor=_admin_of(organization))
    assert not NotificationTarget.objects.exists()
    assert not AuditEvent.objects.exists()
    created = create_target(organization, "email", "ops@example.com", actor=_admin_of(organization))
    with pytest.raises(NotFound):
        update_target(created.target, bands="1", actor=_admin_of(other_organization))
    assert NotificationTarget.objects.get().bands == [30, 7, 1]


@pytest.mark.parametrize(("kind", "address", "code"), [
    ("email", "not-an-address", "invalid_address"),
    ("webhook", "ftp://example.com/x", "invalid_address"),
    ("webhook", "http://user:pw@example.com/x", "invalid_address"),
    ("webhook", "http://example.com:99999/x", "invalid_address"),
    ("sms", "+15550100", "invalid_kind"),
])
def test_bad_targets_are_refused_and_change_nothing(organization, operator, data_dir, kind, address, code):
    with pytest.raises(InvalidInput) as refused:
        create_target(organization, kind, address, actor=operator)
    assert refused.value.code == code
    assert not NotificationTarget.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not any(data_dir.rglob("*.enc"))


def test_a_duplicate_target_is_a_conflict(organization, operator):
    create_target(organization, "email", "ops@example.com", actor=operator)
    with pytest.raises(Conflict):
        create_target(organization, "email", " ops@example.com ", actor=operator)
    assert NotificationTarget.objects.count() == 1


def test_add_notification_target_command(webhook, organization):
    out = StringIO()
    call_command("add_notification_target", organization=organization.slug, webhook=webhook.url, bands="14,2",
                 json=True, stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["bands"] == [14, 2]
    assert len(payload["webhook_secret"]) >= 40
    with pytest.raises(CommandError, match="already has that target"):
        call_command("add_notification_target", organization=organization.slug, webhook=webhook.url,
                     stdout=StringIO())
    with pytest.raises(CommandError, match="No organization"):
        call_command("add_notification_target", organization="nope", email="a@example.com", stdout=StringIO())
    assert NotificationTarget.objects.count() == 1


def test_consistency_and_backup_know_the_sealed_key(webhook, organization, operator):
    from certificates.consistency import check_consistency

    create_target(organization, "webhook", webhook.url, "7", actor=operator)
    report = check_consistency(grace_seconds=0, audit=False)
    assert not [f for f in report.findings if f.code in ("orphan_artifact", "artifact_missing")], report.as_dict()
    assert report.checked["artifacts_referenced"] >= 1


# --- The admin --------------------------------------------------------------------------------------


ADMIN_TARGETS = "/admin/certificates/notificationtarget/"


def test_an_admin_adds_a_webhook_in_the_admin_and_sees_its_key_once(make_principal_client, organization, webhook):
    admin = make_principal_client("admin", organization, via="cookie")
    response = admin.post(f"{ADMIN_TARGETS}add/", {"organization": organization.pk, "kind": "webhook",
                                                    "address": webhook.url, "bands": "14,3"})
    assert response.status_code == 200, response.content.decode()[:500]
    page = response.content.decode()
    assert "shown <strong>once</strong>" in page
    assert "no-store" in response["Cache-Control"]
    target = NotificationTarget.objects.get()
    assert target.bands == [14, 3]
    assert target.created_by == admin.user.username
    key = page.split('<code id="webhook-secret">')[1].split("</code>")[0]
    from certificates.services.notifications import webhook_key
    assert webhook_key(target) == key.encode()
    change_page = admin.get(f"{ADMIN_TARGETS}{target.pk}/change/").content.decode()
    assert key not in change_page
    assert "not-for-the-audit-trail" in change_page
    event = AuditEvent.objects.get(action="notification_target.create")
    assert event.actor_username == admin.user.username


def test_the_admin_refuses_bad_bands_and_other_roles(make_principal_client, organization, other_organization):
    admin = make_principal_client("admin", organization, via="cookie")
    response = admin.post(f"{ADMIN_TARGETS}add/", {"organization": organization.pk, "kind": "email",
                                                    "address": "ops@example.com", "bands": "0,7"})
    assert response.status_code == 200
    assert "A band is a whole number of days" in response.content.decode()
    response = admin.post(f"{ADMIN_TARGETS}add/", {"organization": other_organization.pk, "kind": "email",
                                                    "address": "ops@example.com", "bands": "7"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not NotificationTarget.objects.exists()
    for role in ("manager", "user"):
        client = make_principal_client(role, organization, via="cookie")
        assert client.get(ADMIN_TARGETS).status_code == 403
        assert client.post(f"{ADMIN_TARGETS}add/", {"organization": organization.pk, "kind": "email",
                                                     "address": "x@example.com", "bands": "7"}).status_code == 403
    assert not NotificationTarget.objects.exists()


def test_an_organization_admin_sees_only_its_targets(make_principal_client, organization, other_organization,
                                                      operator):
    theirs = create_target(other_organization, "email", "theirs@example.com", actor=operator).target
    create_target(organization, "email", "ours@example.com", actor=operator)
    admin = make_principal_client("admin", organization, via="cookie")
    listing = admin.get(ADMIN_TARGETS).content.decode()
    assert "ours@example.com" in listing
    assert "theirs@example.com" not in listing
    assert admin.get(f"{ADMIN_TARGETS}{theirs.pk}/change/").status_code in (302, 404)
    assert admin.post(f"{ADMIN_TARGETS}{theirs.pk}/delete/", {"post": "yes"}).status_code in (302, 404)
    assert NotificationTarget.objects.filter(pk=theirs.pk).exists()


# --- Settings -----------------------------------------------------------------------------------------


def test_notification_settings_are_bounded():
    from pki_project.config import ConfigError, NotificationConfig, notification_config

    assert notification_config({}) == NotificationConfig(timeout=10, max_attempts=5, retry_minutes=15)
    assert notification_config({"PKI_NOTIFY_TIMEOUT": "3", "PKI_NOTIFY_MAX_ATTEMPTS": "1"}).timeout == 3
    for name, bad in (("PKI_NOTIFY_TIMEOUT", "0"), ("PKI_NOTIFY_MAX_ATTEMPTS", "51"),
                      ("PKI_NOTIFY_RETRY_MINUTES", "1.5"), ("PKI_NOTIFY_TIMEOUT", "²")):
        with pytest.raises(ConfigError, match=name):
            notification_config({name: bad})


@pytest.mark.slow
def test_a_bad_notification_setting_stops_manage_py_with_one_line(tmp_path):
    from tests.helpers import clean_environment, run_manage

    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"), PKI_NOTIFY_MAX_ATTEMPTS="0")
    result = run_manage("check", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("Configuration error: PKI_NOTIFY_MAX_ATTEMPTS must be a whole number from 1 "
                                     "to 50 (it is '0').")
