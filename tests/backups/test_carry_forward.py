"""A restore never un-revokes, and never rewrites the audit trail unless the operator explicitly says so.

Each test takes a backup, changes the live data the way an operator (or an attacker) would, restores,
and looks at what relying parties see: the OCSP answer, the next CRL, an API key's login.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.anchor import anchor_path
from audit.keys import audit_keys
from audit.maintenance import delete_all_events
from audit.models import AuditEvent
from audit.services import record_event
from audit.verification import verify_chain
from backups.errors import BackupError
from backups.services import preview_restore, replaced_trail_path, restore_backup
from certificates.consistency import check_consistency
from certificates.models import Certificate, CertificateAuthority, PresignedOCSPResponse
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.ocsp import answer_ocsp_request, forget_responders
from certificates.services.publication import generate_crl
from certificates.services.revocation import revoke_certificate
from organizations.models import ApiKey, SessionToken
from organizations.services import AuthenticationFailed, authenticate_bearer, close_session, open_session
from pki_project.actor import Actor
from tests.audit.helpers import build_chain, rewrite_from, tamper
from tests.backups.conftest import ROOT_PASSWORD
from tests.backups.helpers import live_state, make_backup, restore_refusals
from tests.publishing.conftest import ocsp_request_der


def issue(ca: CertificateAuthority, name: str, operator: Actor) -> Certificate:
    return issue_certificate(ca, IssuanceRequest(profile="server", common_name=name, key_type="ec-p256"),
                             actor=operator)


def ocsp_status(certificate: Certificate) -> ocsp.OCSPCertStatus:
    forget_responders()
    issuer = certificate.issuer
    request = ocsp_request_der(x509.load_der_x509_certificate(bytes(certificate.der)),
                               x509.load_der_x509_certificate(bytes(issuer.certificate.der)))
    answer = answer_ocsp_request(issuer.slug, request)
    return ocsp.load_der_ocsp_response(answer.der).certificate_status


def latest_crl_serials(ca: CertificateAuthority, operator: Actor, **unlock) -> set[int]:
    crl = x509.load_der_x509_crl(bytes(generate_crl(ca, actor=operator, **unlock).der))
    return {entry.serial_number for entry in crl}


def restore(archive: Path, **options) -> object:
    return restore_backup(archive, Actor.operator("tests"), **options)


@pytest.fixture
def backup_then(populated_pki: CertificateAuthority, tmp_path: Path):
    """The backup, taken now; the test then changes the live data."""
    return make_backup(tmp_path / "backup.zip")


def test_a_revocation_after_the_backup_stays_in_ocsp_and_the_next_crl(populated_pki, operator, tmp_path):
    certificate = issue(populated_pki, "revoke-me.example.com", operator)
    archive = make_backup(tmp_path / "backup.zip")
    revoke_certificate(certificate, reason="keyCompromise", actor=operator)
    assert ocsp_status(certificate) == ocsp.OCSPCertStatus.REVOKED

    report = restore(archive)

    certificate.refresh_from_db()
    assert (certificate.revocation_reason, report.carried.certificate_revocations) == ("keyCompromise", 1)
    assert ocsp_status(certificate) == ocsp.OCSPCertStatus.REVOKED
    assert int(certificate.serial, 16) in latest_crl_serials(populated_pki, operator)


def test_a_certificate_issued_and_revoked_since_comes_back_as_revoked(backup_then, populated_pki, operator):
    certificate = issue(populated_pki, "short-lived.example.com", operator)
    revoke_certificate(certificate, reason="superseded", actor=operator)
    der, serial = bytes(certificate.der), certificate.serial

    report = restore(backup_then)

    kept = Certificate.objects.get(fingerprint_sha256=certificate.fingerprint_sha256)
    assert (kept.revocation_reason, kept.issuer_id, kept.key_path, kept.pkcs12_path) == (
        "superseded", populated_pki.pk, "", "")
    assert bytes(kept.der) == der
    assert report.carried.revoked_certificates_added == 1
    assert report.preview.revoked_certificates_kept == 1
    assert ocsp_status(kept) == ocsp.OCSPCertStatus.REVOKED
    assert int(serial, 16) in latest_crl_serials(populated_pki, operator)
    assert kept.pk == certificate.pk, "its id, which its audit events name, is kept"
    errors = [finding for finding in check_consistency().errors if finding.code != "artifact_orphan"]
    assert errors == [], errors


def test_a_revoked_intermediate_stays_revoked_in_the_roots_ocsp_and_crl(populated_pki, operator, tmp_path,
                                                                        django_capture_on_commit_callbacks):
    archive = make_backup(tmp_path / "backup.zip")
    with django_capture_on_commit_callbacks(execute=True):  # the root's CRL and answers are signed after commit
        revoke_certificate(populated_pki.certificate, reason="cACompromise", actor=operator,
                           root_password=ROOT_PASSWORD)
    root = populated_pki.parent
    presigned = PresignedOCSPResponse.objects.get(ca=root, serial=populated_pki.certificate.serial,
                                                  hash_algorithm="sha1")
    assert presigned.status == "revoked"

    restore(archive)

    intermediate = Certificate.objects.get(pk=populated_pki.certificate_id)
    assert intermediate.revocation_reason == "cACompromise"
    answer = PresignedOCSPResponse.objects.get(ca=root, serial=intermediate.serial, hash_algorithm="sha1")
    assert answer.status == "revoked", "the root's pre-signed answer signed after the backup wins"
    assert ocsp_status(intermediate) == ocsp.OCSPCertStatus.REVOKED
    newest = root.crls.order_by("-number").first()
    assert int(intermediate.serial, 16) in {entry.serial_number for entry in x509.load_der_x509_crl(bytes(newest.der))}


def test_revoked_api_keys_ended_sessions_and_deactivated_users_stay_so(make_principal_client, populated_pki,
                                                                         tmp_path):
    from django.contrib.auth import get_user_model

    from organizations.services import create_api_key, revoke_api_key

    client = make_principal_client("admin")
    user = get_user_model().objects.get(username=client.user.username)
    revoked_key = create_api_key(user, label="lost laptop")
    session = open_session(create_api_key(user, label="desk").api_key, user.membership)
    get_user_model().objects.create(username="leaver")
    archive = make_backup(tmp_path / "backup.zip")
    revoke_api_key(revoked_key.api_key)
    close_session(session.jti)
    get_user_model().objects.filter(username="leaver").update(is_active=False)

    report = restore(archive)

    for credential in (revoked_key.key, session.token):
        with pytest.raises(AuthenticationFailed):
            authenticate_bearer(credential)
    assert ApiKey.objects.get(prefix=revoked_key.api_key.prefix).revoked_at is not None
    assert SessionToken.objects.get(jti=session.jti).revoked_at is not None
    assert not get_user_model().objects.get(username="leaver").is_active
    assert (report.carried.api_key_revocations, report.carried.session_revocations,
            report.carried.user_deactivations) == (1, 1, 1)


def test_the_preview_counts_what_would_change_and_changes_nothing(backup_then, populated_pki, operator, data_dir):
    issue(populated_pki, "new.example.com", operator)
    also = issue(populated_pki, "revoked-new.example.com", operator)
    revoke_certificate(also, reason="superseded", actor=operator)
    before = live_state(data_dir)

    preview = preview_restore(backup_then, Actor.operator("tests"))

    assert live_state(data_dir) == before
    assert (preview.certificates_dropped, preview.certificates_dropped_valid) == (1, 1)
    assert (preview.revoked_certificates_kept, preview.revocations_carried) == (1, 0)
    assert preview.audit_trail == "kept"
    assert preview.audit_events_after_backup > 0
    assert preview.audit_events_dropped == 0
    assert preview.confirmation_phrase.startswith("restore 20")
    summary = preview.lines()[0]
    assert "hours older than the live data: it would drop 1 certificates (1 still valid) and 0 audit events" in summary
    assert "1 revocations will be carried forward" in summary


def test_the_audit_trail_is_kept_with_every_event_since_the_backup(backup_then, populated_pki, operator):
    issue(populated_pki, "after.example.com", operator)
    head_before = AuditEvent.objects.order_by("-seq").first()

    report = restore(backup_then)

    assert report.audit_trail == "kept"
    assert AuditEvent.objects.filter(seq=head_before.seq, hash=head_before.hash).exists()
    newest = AuditEvent.objects.order_by("-seq").first()
    assert (newest.seq, newest.action, newest.details["audit_trail"]) == (head_before.seq + 1, "backup.restore",
                                                                           "kept")
    result = verify_chain()
    assert result.ok, result.broken
    anchor = json.loads(anchor_path().read_text())
    assert (anchor["head_seq"], anchor["head_hash"]) == (newest.seq, newest.hash), "the anchor moved to the restore"


def test_a_younger_trail_adopts_the_backups(backup_then):
    delete_all_events()  # an installation that has recorded nothing yet (a new machine)

    report = restore(backup_then)

    assert report.audit_trail == "adopted"
    assert verify_chain().ok


def test_a_diverged_trail_is_refused_unless_replaced_explicitly_and_the_override_is_recorded(
        backup_then, data_dir, tmp_path):
    delete_all_events()
    build_chain(3)  # another history than the backup's
    off_site = verify_chain().make_checkpoint(audit_keys())
    before, refusals = live_state(data_dir), restore_refusals()

    with pytest.raises(BackupError) as refused:
        restore(backup_then)

    assert refused.value.code == "audit_trail_diverged"
    assert "not one history" in refused.value.message
    assert live_state(data_dir) == before
    assert restore_refusals() == [*refusals, "audit_trail_diverged"]
    replaced_head = AuditEvent.objects.order_by("-seq").first()

    report = restore(backup_then, replace_audit_trail=True)

    assert report.audit_trail == "replaced"
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.details["override"] == "replace_audit_trail"
    assert (event.details["replaced_head_seq"], event.details["replaced_head_hash"]) == (
        replaced_head.seq, replaced_head.hash)
    assert verify_chain().ok
    exported = replaced_trail_path(data_dir.resolve(), report.restore_id)
    assert len(exported.read_text().splitlines()) == replaced_head.seq, \
        "the replaced trail (with the refusal recorded on it) is kept beside the data directory"
    assert any("exported" in warning for warning in report.warnings)
    # An off-site checkpoint of the replaced trail no longer matches, and the verifier says why.
    against = verify_chain(checkpoint=off_site)
    assert not against.ok
    assert "replaced the audit trail" in against.broken.message


def test_a_tampered_live_trail_counts_as_diverged(backup_then, populated_pki, operator):
    issue(populated_pki, "x.example.com", operator)
    rewrite_from(2, {"outcome": "failure"}, with_key=False)  # a database owner's rewrite

    with pytest.raises(BackupError) as refused:
        restore(backup_then)

    assert refused.value.code == "audit_trail_diverged"
    assert "does not verify" in refused.value.message


def test_a_confirmation_of_an_older_preview_is_refused(backup_then, populated_pki, operator, data_dir):
    preview = preview_restore(backup_then, Actor.operator("tests"))
    leaf = issue(populated_pki, "late.example.com", operator)
    revoke_certificate(leaf, reason="superseded", actor=operator)
    before = live_state(data_dir)

    with pytest.raises(BackupError) as refused:
        restore(backup_then, expected_digest=preview.digest)

    assert refused.value.code == "preview_changed"
    assert live_state(data_dir) == before


def test_events_rehashed_in_the_live_database_with_dropped_triggers_do_not_block_a_replacing_restore(
        backup_then, data_dir):
    """A database owner deleted events and re-hashed: the restore can replace that trail, on the record."""
    tamper(("DELETE FROM audit_auditevent WHERE seq = 2", []),  # renumbered in two steps: seq is unique
           ("UPDATE audit_auditevent SET seq = seq + 1000000 WHERE seq > 2", []),
           ("UPDATE audit_auditevent SET seq = seq - 1000001 WHERE seq > 1000000", []))
    rewrite_from(2, {}, with_key=False)
    report = restore(backup_then, replace_audit_trail=True)
    assert report.audit_trail == "replaced"
    assert "MAC" in AuditEvent.objects.order_by("-seq").first().details["replaced_trail_broken"]


class TestCommand:
    def test_preview_only_changes_nothing(self, backup_then, data_dir):
        before = live_state(data_dir)
        out = StringIO()
        call_command("restore_database", str(backup_then), "--preview", "--json", stdout=out, stderr=StringIO())
        preview = json.loads(out.getvalue())["preview"]
        assert preview["audit_trail"] == "kept"
        assert preview["confirmation_phrase"].startswith("restore ")
        assert live_state(data_dir) == before

    def test_without_a_terminal_it_asks_for_yes(self, backup_then, data_dir):
        before = live_state(data_dir)
        with pytest.raises(CommandError, match="--yes"):
            call_command("restore_database", str(backup_then), stdout=StringIO(), stderr=StringIO())
        assert live_state(data_dir) == before

    def test_a_diverged_trail_needs_the_flag(self, backup_then, data_dir):
        delete_all_events()
        record_event("auth.login", actor_label="someone")
        with pytest.raises(CommandError, match="replace-audit-trail"):
            call_command("restore_database", str(backup_then), "--yes", stdout=StringIO(), stderr=StringIO())
        out = StringIO()
        call_command("restore_database", str(backup_then), "--yes", "--replace-audit-trail", "--json", stdout=out,
                     stderr=StringIO())
        assert json.loads(out.getvalue())["restored"]["audit_trail"] == "replaced"

    def test_typed_confirmation_on_a_terminal(self, backup_then, monkeypatch):
        monkeypatch.setattr("sys.stdin.isatty", lambda: True)
        answers = iter(["yes"])
        monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
        with pytest.raises(CommandError, match="cancelled"):
            call_command("restore_database", str(backup_then), stdout=StringIO(), stderr=StringIO())
        phrase = preview_restore(backup_then, Actor.operator("tests")).confirmation_phrase
        answers = iter([phrase])
        monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
        err = StringIO()
        call_command("restore_database", str(backup_then), stdout=StringIO(), stderr=err)
        assert "revocations will be carried forward" in err.getvalue()
