"""Coverage: every audited operation, done through its real interface, leaves exactly one event.

One row per action. A row prepares what it needs, calls `world.mark()` just before
the operation, performs it the way a client or operator would, and returns what
the event must say. A new `AuditAction` needs a row here (a test checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.verification import verify_chain
from certificates.models import Certificate, CertificateAuthority
from certificates.services.artifacts import download_certificate, reveal_pkcs12_password
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.publication import generate_crl
from certificates.services.revocation import revoke_certificate
from organizations.models import ApiKey, Membership, Organization
from organizations.principal import Principal
from organizations.roles import Role
from organizations.services import change_user, create_api_key, create_organization
from pki_project.actor import Actor
from tests.acme import audit_rows as acme_rows
from tests.approvals import audit_rows as approval_rows
from tests.enrollment import audit_rows as enrollment_rows
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory
from tests.mtls import audit_rows as mtls_rows

pytestmark = pytest.mark.django_db

ROOT_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Expected:
    """What the one event must say. `None` means "not checked"; "" means "must be empty"."""

    outcome: str = "success"
    actor_username: str | None = None
    actor_label: str | None = None
    actor_role: str | None = None
    actor_api_key_id: int | None = None
    organization_id: int | None = None
    target_type: str = ""
    target_id: str | None = None
    target_serial: str | None = None
    details: dict[str, object] = field(default_factory=dict)


class World:
    """What a row needs: clients signed in through the real login, and the mark before the operation."""

    def __init__(self, make_principal_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> None:
        self.make_client = make_principal_client
        self.monkeypatch = monkeypatch
        self.tmp_path = tmp_path
        self.baseline = 0

    def mark(self) -> None:
        head = AuditEvent.objects.newest_first().values_list("seq", flat=True).first()
        self.baseline = head or 0

    def new_events(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(seq__gt=self.baseline).order_by("seq"))


# --- One function per audited operation ------------------------------------------------------


def login_success(world: World) -> Expected:
    user = UserFactory(role="manager")
    key = ApiKeyFactory(user=user)
    world.mark()
    response = Client().post("/auth/session", {"api_key": key.plain_key}, content_type="application/json")
    assert response.status_code == 200
    return Expected(actor_username=user.username, actor_role="manager", actor_api_key_id=key.pk,
                    organization_id=user.membership.organization_id, target_type="session", actor_label=key.prefix)


def login_failure(world: World) -> Expected:
    key = ApiKeyFactory(user=UserFactory(role="manager"))
    wrong = key.plain_key[:-4] + ("AAAA" if not key.plain_key.endswith("AAAA") else "BBBB")
    world.mark()
    response = Client().post("/auth/session", {"api_key": wrong}, content_type="application/json")
    assert response.status_code == 401
    return Expected(outcome="failure", actor_username="", actor_label=key.prefix, actor_role="", target_type="")


def logout(world: World) -> Expected:
    client = world.make_client("manager", via="cookie")
    world.mark()
    assert client.delete("/auth/session").status_code == 200
    return Expected(actor_username=client.user.username, actor_api_key_id=client.api_key.pk, target_type="session",
                    organization_id=client.organization.pk)


def api_key_create(world: World) -> Expected:
    client = world.make_client("manager")
    world.mark()
    response = client.post("/api/v1/api-keys/", {"label": "ci"}, content_type="application/json")
    assert response.status_code == 201
    return Expected(actor_username=client.user.username, actor_api_key_id=client.api_key.pk, target_type="api_key",
                    target_id=str(response.json()["id"]), organization_id=client.organization.pk)


def api_key_revoke(world: World) -> Expected:
    client = world.make_client("manager")
    doomed = ApiKeyFactory(user=client.user)
    world.mark()
    response = client.post(f"/api/v1/api-keys/{doomed.pk}/revoke/")
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=doomed.pk).revoked_at is not None
    return Expected(actor_username=client.user.username, target_type="api_key", target_id=str(doomed.pk),
                    organization_id=client.organization.pk)


def organization_create(world: World) -> Expected:
    client = world.make_client("admin")
    world.mark()
    response = client.post("/api/v1/organizations/", {"name": "Coverage Corp"}, content_type="application/json")
    assert response.status_code == 201
    created = Organization.objects.get(slug="coverage-corp")
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="organization",
                    target_id=str(created.pk), organization_id=created.pk)


def rbac_deny(world: World) -> Expected:
    client = world.make_client("user")
    world.mark()
    assert client.get("/api/v1/audit-events/").status_code == 403
    return Expected(outcome="failure", actor_username=client.user.username, actor_role="user",
                    target_type="route", target_id="GET /api/v1/audit-events/",
                    organization_id=client.organization.pk)


# --- Who may do what: through the admin, as a global admin would --------------------------


def _admin_post(client: Client, url: str, data: dict[str, object]) -> None:
    response = client.post(url, data)
    assert response.status_code == 302, (url, response.status_code, response.content[:2000])


def _global_admin(world: World) -> Client:
    return world.make_client("admin")


def _about_user(client: Client, user, organization_id: int | None, **details: object) -> Expected:
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="user",
                    target_id=str(user.pk), organization_id=organization_id,
                    details={"username": user.get_username(), **details})


def user_create(world: World) -> Expected:
    client, organization = _global_admin(world), OrganizationFactory()
    world.mark()
    _admin_post(client, "/admin/auth/user/add/", {"username": "cov-new", "first_name": "Cov", "last_name": "Erage",
                                                  "email": "cov@example.com", "role": "manager",
                                                  "organization": organization.pk})
    user = get_user_model().objects.get(username="cov-new")
    return _about_user(client, user, organization.pk, before=None,
                       after={"first_name": "Cov", "last_name": "Erage", "email": "cov@example.com",
                              "is_active": True})


def _change_form(user, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {"first_name": user.first_name, "last_name": user.last_name, "email": user.email}
    if user.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def user_change(world: World) -> Expected:
    client, user = _global_admin(world), UserFactory(role="user")
    world.mark()
    _admin_post(client, f"/admin/auth/user/{user.pk}/change/", _change_form(user, email="new@example.com"))
    return _about_user(client, user, user.membership.organization_id, before={"email": ""},
                       after={"email": "new@example.com"})


def user_activate(world: World) -> Expected:
    client, user = _global_admin(world), UserFactory(role="user")
    change_user(user, actor=Actor.operator("tests"), is_active=False)
    user.refresh_from_db()
    world.mark()
    _admin_post(client, f"/admin/auth/user/{user.pk}/change/", _change_form(user, is_active="on"))
    return _about_user(client, user, user.membership.organization_id, before={"is_active": False},
                       after={"is_active": True})


def user_deactivate(world: World) -> Expected:
    client, user = _global_admin(world), UserFactory(role="user")
    world.mark()
    _admin_post(client, "/admin/auth/user/", {"action": "deactivate_users", "_selected_action": [user.pk]})
    return _about_user(client, user, user.membership.organization_id, before={"is_active": True},
                       after={"is_active": False})


def user_delete(world: World) -> Expected:
    client, user = _global_admin(world), UserFactory(role="user")
    organization_id = user.membership.organization_id
    world.mark()
    _admin_post(client, f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    return _about_user(client, user, organization_id, after=None)


def _about_membership(client: Client, membership: Membership, organization_id: int | None,
                      **details: object) -> Expected:
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="membership",
                    target_id=str(membership.pk), organization_id=organization_id,
                    details={"user": membership.user.get_username(), **details})


def membership_create(world: World) -> Expected:
    client, organization, user = _global_admin(world), OrganizationFactory(), UserFactory(membership=False)
    world.mark()
    _admin_post(client, "/admin/organizations/membership/add/",
                {"user": user.pk, "role": "manager", "organization": organization.pk})
    return _about_membership(client, Membership.objects.get(user=user), organization.pk, before=None,
                             after={"role": "manager", "organization": organization.slug})


def membership_change(world: World) -> Expected:
    client, organization = _global_admin(world), OrganizationFactory()
    membership = UserFactory(role="user", organization=organization).membership
    world.mark()
    _admin_post(client, f"/admin/organizations/membership/{membership.pk}/change/",
                {"role": "manager", "organization": organization.pk})
    return _about_membership(client, membership, organization.pk,
                             before={"role": "user", "organization": organization.slug},
                             after={"role": "manager", "organization": organization.slug})


def membership_delete(world: World) -> Expected:
    client, organization = _global_admin(world), OrganizationFactory()
    membership = UserFactory(role="user", organization=organization).membership
    world.mark()
    _admin_post(client, f"/admin/organizations/membership/{membership.pk}/delete/", {"post": "yes"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    return _about_membership(client, membership, organization.pk,
                             before={"role": "user", "organization": organization.slug}, after=None)


def organization_rename(world: World) -> Expected:
    client, organization = _global_admin(world), OrganizationFactory()
    old_name = organization.name
    world.mark()
    _admin_post(client, f"/admin/organizations/organization/{organization.pk}/change/", {"name": "Renamed Corp"})
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="organization",
                    target_id=str(organization.pk), organization_id=organization.pk,
                    details={"slug": organization.slug, "before": {"name": old_name},
                             "after": {"name": "Renamed Corp"}})


def organization_delete(world: World) -> Expected:
    client, organization = _global_admin(world), OrganizationFactory()
    world.mark()
    _admin_post(client, f"/admin/organizations/organization/{organization.pk}/delete/", {"post": "yes"})
    assert not Organization.objects.filter(pk=organization.pk).exists()
    return Expected(actor_username=client.user.username, actor_role="admin", target_type="organization",
                    target_id=str(organization.pk), organization_id=organization.pk,
                    details={"slug": organization.slug, "after": None})


def _member_actor(role: Role, organization: Organization) -> Actor:
    user = UserFactory(role=role.value, organization=organization)
    return Actor(principal=Principal(user_id=user.pk, username=user.username, role=role,
                                     organization_id=organization.pk))


def access_deny(world: World) -> Expected:
    client = world.make_client("manager")
    world.mark()
    assert client.get("/api/v1/organizations/999999/").status_code == 404
    return Expected(outcome="failure", actor_username=client.user.username, actor_role="manager",
                    target_type="route", target_id="GET /api/v1/organizations/{id}/",
                    organization_id=client.organization.pk)


def access_deny_suppressed(world: World) -> Expected:
    from django.conf import settings

    world.monkeypatch.setattr(settings, "PKI_AUDIT_DENIALS_PER_WINDOW", 0)  # every refusal is past the budget
    client = world.make_client("user")
    world.mark()
    assert client.get("/api/v1/audit-events/").status_code == 403
    return Expected(outcome="failure", actor_username=client.user.username, actor_role="user",
                    target_type="caller", target_id=f"user:{client.user.pk}", organization_id=client.organization.pk)


def _manager_actor() -> tuple[Actor, Organization]:
    organization = OrganizationFactory()
    return _member_actor(Role.MANAGER, organization), organization


def _admin_actor() -> tuple[Actor, Organization]:
    """Creating a CA is for admins (certificates.services.permissions)."""
    organization = OrganizationFactory()
    return _member_actor(Role.ADMIN, organization), organization


def ca_create(world: World) -> Expected:
    actor, organization = _admin_actor()
    world.mark()
    ca = create_root_ca(organization=organization, common_name="Coverage Root", root_password=ROOT_PASSWORD,
                        key_type="ec-p256", days=365, actor=actor)
    return Expected(actor_username=actor.username, target_type="ca", target_id=str(ca.pk),
                    target_serial=ca.certificate.serial, organization_id=organization.pk)


def ca_unlock_failure(world: World) -> Expected:
    actor, organization = _admin_actor()
    root = create_root_ca(organization=organization, common_name="Coverage Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=365, actor=actor)
    world.mark()
    with pytest.raises(Exception, match=r"(?i)password|unlock|refused"):
        create_intermediate_ca(parent=root, common_name="Never", root_password="wrong " + ROOT_PASSWORD,
                               key_type="ec-p256", days=30, actor=actor)
    assert not AuditEvent.objects.filter(seq__gt=world.baseline, action=AuditAction.CA_CREATE).exists()
    return Expected(outcome="failure", actor_username=actor.username, target_type="ca", target_id=str(root.pk),
                    target_serial=root.certificate.serial, organization_id=organization.pk)


def _issuing_ca(organization: Organization) -> CertificateAuthority:
    actor = _member_actor(Role.ADMIN, organization)  # the organization's admin builds its CAs
    root = create_root_ca(organization=organization, common_name="Coverage Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=actor)
    return create_intermediate_ca(parent=root, common_name="Coverage Issuing CA", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=1825, path_length=0, actor=actor)


def _issued(actor: Actor, organization: Organization) -> Certificate:
    return issue_certificate(_issuing_ca(organization),
                             IssuanceRequest(profile="server", common_name="www.example.com",
                                             sans=["DNS:www.example.com"]), actor=actor)


def _about(certificate: Certificate, actor: Actor, **overrides: object) -> Expected:
    values = {"actor_username": actor.username, "target_type": "certificate", "target_id": str(certificate.pk),
              "target_serial": certificate.serial, "organization_id": certificate.organization_id, **overrides}
    return Expected(**values)


def certificate_issue(world: World) -> Expected:
    actor, organization = _manager_actor()
    ca = _issuing_ca(organization)
    world.mark()
    issued = issue_certificate(ca, IssuanceRequest(profile="client", common_name="alice@example.com",
                                                   sans=["EMAIL:alice@example.com"]), actor=actor)
    return _about(issued, actor)


def certificate_renew(world: World) -> Expected:
    actor, organization = _manager_actor()
    original = _issued(actor, organization)
    world.mark()
    renewed = renew_certificate(original, actor=actor)
    assert not AuditEvent.objects.filter(seq__gt=world.baseline, action=AuditAction.CERTIFICATE_ISSUE).exists()
    return _about(renewed, actor)


def certificate_revoke(world: World) -> Expected:
    actor, organization = _manager_actor()
    certificate = _issued(actor, organization)
    world.mark()
    revoke_certificate(certificate, reason="keyCompromise", actor=actor)
    return _about(certificate, actor)


def crl_generate(world: World) -> Expected:
    actor, organization = _manager_actor()
    ca = _issuing_ca(organization)
    world.mark()
    generate_crl(ca, actor=actor)
    return Expected(actor_username=actor.username, target_type="ca", target_id=str(ca.pk),
                    target_serial=ca.certificate.serial, organization_id=organization.pk)


def certificate_download(world: World) -> Expected:
    actor, organization = _manager_actor()
    certificate = _issued(actor, organization)
    world.mark()
    assert download_certificate(certificate, "pem", actor=actor).content.startswith(b"-----BEGIN CERTIFICATE")
    return _about(certificate, actor)


def pkcs12_password_reveal(world: World) -> Expected:
    actor, organization = _manager_actor()
    certificate = _issued(actor, organization)
    world.mark()
    assert reveal_pkcs12_password(certificate, actor=actor)
    return _about(certificate, actor)


def encryption_key_rotate(world: World) -> Expected:
    actor, organization = _manager_actor()
    _issued(actor, organization)
    world.monkeypatch.setenv("PKI_NEW_ENCRYPTION_KEY", "rotated-encryption-key-abcdefghijklmnopqrstuvwxyz")
    world.monkeypatch.setenv("PKI_NEW_ENCRYPTION_SALT", "rotated-salt-0f1e2d3c4b5a6978")
    world.mark()
    call_command("rotate_encryption_key", "--json", stdout=StringIO(), stderr=StringIO())
    # What the operator does next: the new key becomes the key (and with it the audit keys).
    world.monkeypatch.setattr(settings, "PKI_ENCRYPTION_KEY", "rotated-encryption-key-abcdefghijklmnopqrstuvwxyz")
    world.monkeypatch.setattr(settings, "PKI_ENCRYPTION_SALT", "rotated-salt-0f1e2d3c4b5a6978")
    return Expected(actor_username="", actor_label="cli:rotate_encryption_key", target_type="data_dir",
                    organization_id=None)


def backup_create(world: World) -> Expected:
    _issuing_ca(OrganizationFactory())
    world.mark()
    call_command("backup_database", "--output", str(world.tmp_path / "backup.zip"), stdout=StringIO(),
                 stderr=StringIO())
    return Expected(actor_username="", actor_label="cli:backup_database", target_type="backup")


def backup_restore(world: World) -> Expected:
    """The trail is never rolled back: the live one (backup.create included) stays, plus one restore event."""
    _issuing_ca(OrganizationFactory())
    world.mark()
    archive = world.tmp_path / "backup.zip"
    call_command("backup_database", "--output", str(archive), stdout=StringIO(), stderr=StringIO())
    call_command("restore_database", str(archive), "--yes", stdout=StringIO(), stderr=StringIO())
    assert AuditEvent.objects.filter(action=AuditAction.BACKUP_CREATE).exists(), "the events since the backup stay"
    return Expected(actor_username="", actor_label="cli:restore_database", target_type="backup")


def _profile_values(name: str) -> dict[str, object]:
    return {"name": name, "extended_key_usages": ["serverAuth"], "allowed_san_types": ["dns"],
            "max_validity_hours": 24}


def profile_create(world: World) -> Expected:
    client = world.make_client("manager", OrganizationFactory())
    world.mark()
    response = client.post("/api/v1/profiles/", _profile_values("coverage-create"), content_type="application/json")
    assert response.status_code == 201, response.content
    return Expected(actor_username=client.user.username, target_type="certificate_profile",
                    target_id=str(response.json()["id"]), organization_id=client.organization.pk,
                    details={"name": "coverage-create"})


def profile_change(world: World) -> Expected:
    from certificates.models import CertificateProfile

    world.mark()
    call_command("update_profile", "server", "--max-days", "100", stdout=StringIO(), stderr=StringIO())
    server = CertificateProfile.objects.get(name="server")
    return Expected(actor_username="", actor_label="cli:update_profile", target_type="certificate_profile",
                    target_id=str(server.pk), details={"name": "server", "fields": ["max_validity_hours"]})


def profile_delete(world: World) -> Expected:
    from certificates.services.profiles import create_profile, delete_profile

    actor, organization = _admin_actor()
    profile = create_profile(_profile_values("coverage-delete"), actor=actor)
    world.mark()
    delete_profile(profile, actor=actor)
    return Expected(actor_username=actor.username, target_type="certificate_profile", target_id=str(profile.pk),
                    organization_id=organization.pk, details={"name": "coverage-delete"})
def _webhook_target(organization: Organization):
    from certificates.services.notifications import create_target

    return create_target(organization, "webhook", "https://hooks.example.com/pki", "7",
                         actor=_member_actor(Role.ADMIN, organization)).target


def notification_target_create(world: World) -> Expected:
    actor, organization = _admin_actor()
    world.mark()
    from certificates.services.notifications import create_target

    target = create_target(organization, "email", "ops@example.com", "30,7", actor=actor).target
    return Expected(actor_username=actor.username, target_type="notification_target", target_id=str(target.pk),
                    organization_id=organization.pk, details={"kind": "email", "bands": [30, 7]})


def notification_target_change(world: World) -> Expected:
    actor, organization = _admin_actor()
    target = _webhook_target(organization)
    world.mark()
    from certificates.services.notifications import update_target

    update_target(target, bands="3", enabled=False, actor=actor)
    return Expected(actor_username=actor.username, target_type="notification_target", target_id=str(target.pk),
                    organization_id=organization.pk, details={"bands": [3], "enabled": False,
                                                              "to": "webhook hooks.example.com"})


def notification_target_delete(world: World) -> Expected:
    actor, organization = _admin_actor()
    target = _webhook_target(organization)
    target_id = str(target.pk)
    world.mark()
    from certificates.services.notifications import delete_target

    delete_target(target, actor=actor)
    return Expected(actor_username=actor.username, target_type="notification_target", target_id=target_id,
                    organization_id=organization.pk)


def notification_send(world: World) -> Expected:
    """An unreachable webhook: the attempt's failure is on the record (the delivery tests cover success)."""
    from datetime import timedelta

    from certificates.services.notifications import create_target, notify_expiring

    actor, organization = _admin_actor()
    certificate = issue_certificate(_issuing_ca(organization), IssuanceRequest(
        profile="server", common_name="soon.example.com", sans=["DNS:soon.example.com"], days=3), actor=actor)
    create_target(organization, "webhook", "http://127.0.0.1:9/pki", "7", actor=actor)
    world.mark()
    summary = notify_expiring(now=certificate.not_after - timedelta(days=2))
    assert summary.retrying == 1
    return Expected(outcome="failure", actor_username="", actor_label="cli:notify_expiring",
                    target_type="certificate", target_id=str(certificate.pk), target_serial=certificate.serial,
                    organization_id=organization.pk, details={"band_days": 7, "attempt": 1, "will_retry": True})


COVERAGE = [
    pytest.param(AuditAction.LOGIN, login_success, id="login-success"),
    pytest.param(AuditAction.LOGIN, login_failure, id="login-failure"),
    pytest.param(AuditAction.LOGOUT, logout, id="logout"),
    pytest.param(AuditAction.API_KEY_CREATE, api_key_create, id="api-key-create"),
    pytest.param(AuditAction.API_KEY_REVOKE, api_key_revoke, id="api-key-revoke"),
    pytest.param(AuditAction.ORGANIZATION_CREATE, organization_create, id="organization-create"),
    pytest.param(AuditAction.RBAC_DENY, rbac_deny, id="rbac-deny"),
    pytest.param(AuditAction.CA_CREATE, ca_create, id="ca-create"),
    pytest.param(AuditAction.CA_UNLOCK, ca_unlock_failure, id="ca-unlock-failure"),
    pytest.param(AuditAction.CERTIFICATE_ISSUE, certificate_issue, id="certificate-issue"),
    pytest.param(AuditAction.CERTIFICATE_RENEW, certificate_renew, id="certificate-renew"),
    pytest.param(AuditAction.CERTIFICATE_REVOKE, certificate_revoke, id="certificate-revoke"),
    pytest.param(AuditAction.CRL_GENERATE, crl_generate, id="crl-generate"),
    pytest.param(AuditAction.CERTIFICATE_DOWNLOAD, certificate_download, id="certificate-download"),
    pytest.param(AuditAction.PKCS12_PASSWORD_REVEAL, pkcs12_password_reveal, id="pkcs12-password-reveal"),
    pytest.param(AuditAction.ENCRYPTION_KEY_ROTATE, encryption_key_rotate, id="encryption-key-rotate"),
    pytest.param(AuditAction.BACKUP_CREATE, backup_create, id="backup-create"),
    pytest.param(AuditAction.BACKUP_RESTORE, backup_restore, id="backup-restore"),
    pytest.param(AuditAction.USER_CREATE, user_create, id="user-create"),
    pytest.param(AuditAction.USER_CHANGE, user_change, id="user-change"),
    pytest.param(AuditAction.USER_ACTIVATE, user_activate, id="user-activate"),
    pytest.param(AuditAction.USER_DEACTIVATE, user_deactivate, id="user-deactivate"),
    pytest.param(AuditAction.USER_DELETE, user_delete, id="user-delete"),
    pytest.param(AuditAction.MEMBERSHIP_CREATE, membership_create, id="membership-create"),
    pytest.param(AuditAction.MEMBERSHIP_CHANGE, membership_change, id="membership-change"),
    pytest.param(AuditAction.MEMBERSHIP_DELETE, membership_delete, id="membership-delete"),
    pytest.param(AuditAction.ORGANIZATION_RENAME, organization_rename, id="organization-rename"),
    pytest.param(AuditAction.ORGANIZATION_DELETE, organization_delete, id="organization-delete"),
    # Login limits and denials on the record.
    pytest.param(AuditAction.ACCESS_DENY, access_deny, id="access-deny"),
    pytest.param(AuditAction.ACCESS_DENY_SUPPRESSED, access_deny_suppressed, id="access-deny-suppressed"),
    # Certificate profiles as data.
    pytest.param(AuditAction.PROFILE_CREATE, profile_create, id="profile-create"),
    pytest.param(AuditAction.PROFILE_CHANGE, profile_change, id="profile-change"),
    pytest.param(AuditAction.PROFILE_DELETE, profile_delete, id="profile-delete"),
    pytest.param(AuditAction.NOTIFICATION_TARGET_CREATE, notification_target_create, id="notification-target-create"),
    pytest.param(AuditAction.NOTIFICATION_TARGET_CHANGE, notification_target_change, id="notification-target-change"),
    pytest.param(AuditAction.NOTIFICATION_TARGET_DELETE, notification_target_delete, id="notification-target-delete"),
    pytest.param(AuditAction.NOTIFICATION_SEND, notification_send, id="notification-send"),
    # ACME: the account is the actor (tests/acme/audit_rows.py).
    *[pytest.param(AuditAction(f"acme.{name}"), getattr(acme_rows, name), id=f"acme-{name}") for name in (
        "eab_create", "eab_revoke", "account_create", "account_update", "account_deactivate",
        "account_key_change", "order_create", "authorization_deactivate", "challenge_validate", "order_finalize",
        "certificate_revoke")],
    # Enrollment tokens (tests/enrollment/audit_rows.py).
    pytest.param(AuditAction.ENROLLMENT_TOKEN_CREATE, enrollment_rows.token_create, id="enrollment-token-create"),
    pytest.param(AuditAction.ENROLLMENT_TOKEN_REVOKE, enrollment_rows.token_revoke, id="enrollment-token-revoke"),
    pytest.param(AuditAction.ENROLLMENT_TOKEN_USE, enrollment_rows.token_use, id="enrollment-token-use"),
    pytest.param(AuditAction.ENROLLMENT_REFUSE, enrollment_rows.refuse, id="enrollment-refuse"),
    # Client-certificate sign-in: staff bind a certificate to a member (tests/mtls/audit_rows.py).
    pytest.param(AuditAction.CLIENT_CERTIFICATE_BIND, mtls_rows.bind, id="client-certificate-bind"),
    pytest.param(AuditAction.CLIENT_CERTIFICATE_UNBIND, mtls_rows.unbind, id="client-certificate-unbind"),
    # Two-person approval of issuance (tests/approvals/audit_rows.py).
    *[pytest.param(AuditAction(f"approval.{name}"), getattr(approval_rows, name), id=f"approval-{name}")
      for name in ("request", "approve", "reject", "expire")],
    pytest.param(AuditAction.CA_APPROVAL_CHANGE, approval_rows.ca_approval_change, id="ca-approval-change"),
]


@pytest.mark.parametrize(("action", "perform"), COVERAGE)
def test_operation_leaves_exactly_one_event(make_principal_client, monkeypatch, tmp_path: Path,
                                            action: AuditAction, perform: Callable[[World], Expected]) -> None:
    world = World(make_principal_client, monkeypatch, tmp_path)

    expected = perform(world)

    events = [event for event in world.new_events() if event.action == action]
    assert len(events) == 1, [str(event) for event in world.new_events()]
    event = events[0]
    assert event.outcome == expected.outcome
    assert event.target_type == expected.target_type
    for name in ("actor_username", "actor_label", "actor_role", "actor_api_key_id", "organization_id", "target_id",
                 "target_serial"):
        wanted = getattr(expected, name)
        if wanted is not None:
            assert getattr(event, name) == wanted, name
    for key, value in expected.details.items():
        assert event.details[key] == value, key
    if expected.target_type and expected.target_id is None and expected.target_type not in {"data_dir", "backup"}:
        assert event.target_id, "the event names its target"
    assert event.actor_username or event.actor_label, "every event names its actor"
    assert verify_chain().ok


def test_every_action_has_a_coverage_row() -> None:
    covered = {param.values[0] for param in COVERAGE}
    assert covered == set(AuditAction), f"rows missing for {set(AuditAction) - covered}"


# --- Rolled-back operations leave no event -------------------------------------------------------


def _fail_after(operation: Callable[[], object]) -> None:
    with transaction.atomic():
        operation()
        raise RuntimeError("a later step of the same operation failed")


@pytest.mark.parametrize(
    ("action", "operation"),
    [
        pytest.param(AuditAction.ORGANIZATION_CREATE, lambda: create_organization("Never Was"), id="organization"),
        pytest.param(AuditAction.API_KEY_CREATE, lambda: create_api_key(UserFactory(role="manager")), id="api-key"),
    ],
)
def test_rolled_back_operation_leaves_no_event(action: AuditAction, operation: Callable[[], object]) -> None:
    before = AuditEvent.objects.filter(action=action).count()
    head = AuditEvent.objects.newest_first().values_list("seq", flat=True).first()

    with pytest.raises(RuntimeError, match="later step of the same operation"):
        _fail_after(operation)

    assert AuditEvent.objects.filter(action=action).count() == before
    assert AuditEvent.objects.newest_first().values_list("seq", flat=True).first() == head
    assert verify_chain().ok

