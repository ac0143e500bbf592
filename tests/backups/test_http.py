"""The staff routes: GET /admin/backup/database and POST /admin/restore/database, for every role."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from certificates.models import CertificateAuthority
from organizations.models import Organization
from tests.backups.helpers import live_state, read_members, write_members

# Authentication keeps books on every request (API key last use, RBAC denials in the audit trail):
# a refused restore must leave everything else exactly as it was.
BOOKKEEPING = {"audit.auditevent", "organizations.apikey", "organizations.sessiontoken", "sessions",
               "ratelimits.counter"}  # volatile: not in backups, counted by sign-ins and refusals
BACKUP_URL = "/admin/backup/database"
RESTORE_URL = "/admin/restore/database"


def pki_state(data_dir: Path):
    database, files, siblings = live_state(data_dir)
    restores = AuditEvent.objects.filter(action=AuditAction.BACKUP_RESTORE, outcome="success").count()
    return {k: v for k, v in database.items() if k not in BOOKKEEPING}, files, siblings, restores


def download(client) -> bytes:
    response = client.get(BACKUP_URL)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="pki-backup-')
    assert response["Content-Disposition"].endswith('.zip"')
    assert response.streaming
    return b"".join(response.streaming_content)


def upload(client, data: bytes, **extra):
    """Step one: the archive goes up and a preview comes back (nothing changes)."""
    return client.post(RESTORE_URL, {"backup": io.BytesIO(data)}, **extra)


def confirm(client, preview: dict, **fields):
    """Step two, as a script would: the pending token and the phrase the preview asked for."""
    body = {"pending": preview["pending"], "confirmation": preview["confirmation_phrase"], **fields}
    return client.post(RESTORE_URL, body, content_type="application/json")


def form_fields(page) -> dict[str, str]:
    """The hidden token and the phrase of the preview page's confirmation form, as a person reads them."""
    import re

    html = page.content.decode()
    token = re.search(r'name="pending" value="([0-9a-f]{32})"', html).group(1)
    phrase = re.search(r"Type <code>([^<]+)</code> to restore", html).group(1)
    return {"pending": token, "confirmation": phrase}


@pytest.fixture
def admin(make_principal_client, populated_pki: CertificateAuthority):
    return make_principal_client("admin")


def test_admin_downloads_a_backup_and_it_is_audited(admin) -> None:
    data = download(admin)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "manifest.json" in archive.namelist()
        assert archive.testzip() is None
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.action == AuditAction.BACKUP_CREATE
    assert event.actor_username == admin.user.username


def test_admin_restores_over_http_after_a_preview(admin, tmp_path: Path, data_dir: Path) -> None:
    data = download(admin)
    Organization.objects.create(name="After", slug="after")
    before = pki_state(data_dir)
    response = upload(admin, data)
    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["preview"]["organizations_dropped"] == 1
    assert preview["preview"]["audit_trail"] == "kept"
    assert preview["confirmation_phrase"].startswith("restore 20")
    assert any("revocations will be carried forward" in line for line in preview["preview"]["summary"])
    assert pki_state(data_dir) == before, "the preview changes nothing"

    response = confirm(admin, preview)
    assert response.status_code == 200, response.content
    restored = response.json()["restored"]
    assert restored["artifacts"] == 4
    assert restored["audit_trail"] == "kept"
    assert not Organization.objects.filter(slug="after").exists()
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.action == AuditAction.BACKUP_RESTORE
    assert event.actor_username == admin.user.username
    # The running application serves the restored state at once (no restart).
    listed = admin.get("/api/v1/cas/")
    assert listed.status_code == 200
    assert "Example Issuing CA" in listed.content.decode()
    assert confirm(admin, preview).json()["error"]["code"] == "no_pending_restore", "a confirmation is used once"


def test_a_wrong_phrase_or_another_admins_confirmation_changes_nothing(admin, make_principal_client,
                                                                       data_dir: Path) -> None:
    other_admin = make_principal_client("admin")
    preview = upload(admin, download(admin)).json()
    before = pki_state(data_dir)
    wrong = confirm(admin, preview, confirmation="yes")
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "confirmation_mismatch"
    stolen = confirm(other_admin, wrong.json())
    assert stolen.status_code == 400
    assert stolen.json()["error"]["code"] == "no_pending_restore"
    assert pki_state(data_dir) == before
    assert confirm(admin, wrong.json()).status_code == 200  # the renewed token, with the right phrase


def test_a_preview_that_no_longer_holds_is_shown_again(admin, populated_pki, operator, data_dir: Path) -> None:
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from certificates.services.revocation import revoke_certificate

    certificate = issue_certificate(populated_pki, IssuanceRequest(profile="server", common_name="x.example.com",
                                                                   key_type="ec-p256"), actor=operator)
    preview = upload(admin, download(admin)).json()
    revoke_certificate(certificate, reason="keyCompromise", actor=operator)  # after the preview was shown
    before = pki_state(data_dir)
    response = confirm(admin, preview)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "preview_changed"
    assert response.json()["preview"]["revocations_carried"] == 1
    assert pki_state(data_dir) == before
    assert confirm(admin, response.json()).status_code == 200
    certificate.refresh_from_db()
    assert certificate.revoked_at is not None, "the restore carried the revocation forward"


def test_a_cancelled_restore_changes_nothing(admin, data_dir: Path) -> None:
    preview = upload(admin, download(admin)).json()
    before = pki_state(data_dir)
    assert confirm(admin, preview, cancel="1").json() == {"cancelled": True}
    assert pki_state(data_dir) == before
    assert confirm(admin, preview).json()["error"]["code"] == "no_pending_restore"


def test_hostile_upload_is_refused_with_json_and_changes_nothing(admin, tmp_path: Path, data_dir: Path) -> None:
    members = read_members_from_bytes(download(admin), tmp_path)
    members["../../evil.pem.enc"] = b"x"
    hostile = write_members(tmp_path / "hostile.zip", members).read_bytes()
    before = pki_state(data_dir)
    response = upload(admin, hostile)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "path_traversal"
    assert "leaves the archive" in response.json()["error"]["message"]
    assert pki_state(data_dir) == before


def test_upload_over_the_limit_is_refused(admin, settings, data_dir: Path) -> None:
    settings.PKI_BACKUP_MAX_UPLOAD_BYTES = 1000
    before = pki_state(data_dir)
    response = upload(admin, b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert pki_state(data_dir) == before


def test_missing_field(admin) -> None:
    response = admin.post(RESTORE_URL, {"other": io.BytesIO(b"x")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_file"


def test_form_restore_previews_then_redirects_with_a_message(make_principal_client, populated_pki,
                                                             tmp_path: Path) -> None:
    admin = make_principal_client("admin", via="cookie")
    data = download(admin)
    page = upload(admin, data, HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    html = page.content.decode()
    assert "what would change" in html
    assert "revocations will be carried forward" in html
    response = admin.post(RESTORE_URL, form_fields(page), HTTP_ACCEPT="text/html")
    assert response.status_code == 302
    assert response["Location"] == "/toolbox"
    refused = upload(admin, b"not a zip", HTTP_ACCEPT="text/html")
    assert refused.status_code == 302
    messages = [str(m) for m in refused.wsgi_request._messages]
    assert any("not a readable zip" in m and "Nothing was changed" in m for m in messages)


@pytest.mark.parametrize("role", ["manager", "user"])
def test_other_roles_are_refused(make_principal_client, populated_pki, role: str, data_dir: Path) -> None:
    client = make_principal_client(role)
    assert client.get(BACKUP_URL).status_code == 403
    before = pki_state(data_dir)
    assert upload(client, b"whatever").status_code == 403
    assert pki_state(data_dir) == before


def test_an_organization_admin_is_refused(make_principal_client, populated_pki, organization) -> None:
    client = make_principal_client("admin", organization)
    assert client.get(BACKUP_URL).status_code == 403
    assert upload(client, b"whatever").status_code == 403


def test_anonymous_is_refused(client, populated_pki, data_dir: Path) -> None:
    assert client.get(BACKUP_URL, HTTP_ACCEPT="application/json").status_code == 401
    before = pki_state(data_dir)
    assert upload(client, b"whatever", HTTP_ACCEPT="application/json").status_code in (401, 403)
    assert pki_state(data_dir) == before


def test_wrong_methods(admin) -> None:
    assert admin.post(BACKUP_URL).status_code in (403, 405)
    assert admin.get(RESTORE_URL).status_code in (403, 405)


def read_members_from_bytes(data: bytes, tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / "downloaded.zip"
    path.write_bytes(data)
    return read_members(path)


def test_upload_handler_streams_to_disk_and_stops_past_the_bound(settings, rf) -> None:
    from django.core.files.uploadhandler import StopUpload

    from backups.views import BoundedUploadHandler

    settings.PKI_BACKUP_MAX_UPLOAD_BYTES = 10
    handler = BoundedUploadHandler(rf.post("/admin/restore/database"))
    handler.new_file("backup", "b.zip", "application/zip", 20)
    assert handler.receive_data_chunk(b"12345", 0) is None  # written to its temporary file, not kept
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"1234567890", 5)
    assert handler.exceeded
    handler.file.close()


def test_toolbox_round_trip_shows_the_result(make_principal_client, populated_pki) -> None:
    """The toolbox page's controls: its form posts here, and the page then shows a clear result."""
    admin = make_principal_client("admin", via="cookie")
    page = admin.get("/toolbox")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'action="/admin/restore/database"' in html
    assert 'name="backup"' in html
    assert 'href="/admin/backup/database"' in html
    data = download(admin)
    preview = upload(admin, data, HTTP_ACCEPT="text/html")
    done = admin.post(RESTORE_URL, form_fields(preview), HTTP_ACCEPT="text/html", follow=True)
    assert done.status_code == 200
    assert "Backup restored:" in done.content.decode()
    refused = upload(admin, b"PK\x03\x04 truncated", HTTP_ACCEPT="text/html", follow=True)
    assert "not a readable zip" in refused.content.decode()
    assert "Nothing was changed." in refused.content.decode()
