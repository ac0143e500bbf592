"""Certificate profiles are data, so a backup carries them and a restore brings them back."""

from __future__ import annotations

from pathlib import Path

from backups.services import restore_backup
from certificates.models import CertificateAuthority, CertificateProfile
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.profiles import create_profile, delete_profile, update_profile
from pki_project.actor import Actor
from tests.backups.helpers import make_backup, read_members


def profile_rows() -> list[dict]:
    return list(CertificateProfile.objects.order_by("pk").values())


def test_profiles_travel_with_the_backup(populated_pki: CertificateAuthority, operator: Actor,
                                         tmp_path: Path) -> None:
    create_profile({"name": "backed-up", "organization": populated_pki.organization.slug,
                    "extended_key_usages": ["serverAuth"], "allowed_san_types": ["dns"], "max_validity_hours": 6,
                    "must_staple": True}, actor=operator)
    update_profile(CertificateProfile.objects.get(name="server"), {"max_validity_hours": 90 * 24}, actor=operator)
    at_backup = profile_rows()
    archive = make_backup(tmp_path / "backup.zip")
    assert "db/certificates.certificateprofile.jsonl" in read_members(archive)

    delete_profile(CertificateProfile.objects.get(name="backed-up"), actor=operator)
    update_profile(CertificateProfile.objects.get(name="server"), {"max_validity_hours": 30 * 24}, actor=operator)
    create_profile({"name": "after-backup", "extended_key_usages": ["clientAuth"], "allowed_san_types": ["dns"],
                    "max_validity_hours": 1}, actor=operator)

    restore_backup(archive, Actor.operator("restore-test"))

    assert profile_rows() == at_backup
    issued = issue_certificate(populated_pki, IssuanceRequest(profile="backed-up", common_name="www.example.com",
                                                              hours=2), actor=operator)
    assert issued.profile == "backed-up"
