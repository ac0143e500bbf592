"""The service layer's rules (certificates.services.permissions): who may do what to which kind of object.

Each service is called as the channels call it, with an `Actor` holding a member's principal; a refusal
is `PermissionRefused` (or `NotFound` for another organization) and leaves the database, the data
directory and the audit trail as they were. Operators (`Actor.operator`) keep every right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.models import AuditEvent
from certificates.errors import NotFound, PermissionRefused
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.artifacts import download_certificate, reveal_pkcs12_password
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.crls import generate_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.ocsp import issue_responder_certificate
from certificates.services.permissions import RULES, Action, kind_of, may_ever, permits, refusal
from certificates.services.publication import generate_crl, publish_crls, publish_crls_for
from certificates.services.revocation import revoke_certificate
from organizations.principal import Principal
from organizations.roles import Role
from pki_project.actor import Actor
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr

pytestmark = pytest.mark.django_db


def _member(role: Role, organization=None) -> Actor:
    """An actor as `Actor.from_request` builds it for a signed-in member (no organization: a global admin)."""
    return Actor(principal=Principal(user_id=1, username=f"{role}-member", role=role,
                                     organization_id=organization.pk if organization else None))


@pytest.fixture
def actors(organization, other_organization) -> dict[str, Actor]:
    return {"user": _member(Role.USER, organization), "manager": _member(Role.MANAGER, organization),
            "admin": _member(Role.ADMIN, organization), "global_admin": _member(Role.ADMIN),
            "other_admin": _member(Role.ADMIN, other_organization), "operator": Actor.operator("tests")}


@pytest.fixture
def leaf(intermediate_ca, operator) -> Certificate:
    request = IssuanceRequest(profile="client", common_name="device.example.com", sans=("DNS:device.example.com",))
    return issue_certificate(intermediate_ca, request, actor=operator)


@pytest.fixture
def responder(intermediate_ca) -> Certificate:
    return issue_responder_certificate(intermediate_ca)


def _state(data_dir: Path) -> dict[str, object]:
    return {
        "certificates": sorted(Certificate.objects.values_list("pk", "revoked_at")),
        "cas": CertificateAuthority.objects.count(),
        "crls": CertificateRevocationList.objects.count(),
        "events": AuditEvent.objects.count(),
        "files": sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*") if path.is_file()),
    }


# --- The table ------------------------------------------------------------------------------


# (action, the object, role) -> allowed; every role of the organization, for every rule of the issue.
EXPECTED = {
    (Action.ISSUE, "intermediate"): {"user": False, "manager": True, "admin": True},
    (Action.RENEW, "leaf"): {"user": False, "manager": True, "admin": True},
    (Action.REVOKE, "leaf"): {"user": False, "manager": True, "admin": True},
    (Action.REVOKE, "intermediate_certificate"): {"user": False, "manager": False, "admin": True},
    (Action.REVOKE, "root_certificate"): {"user": False, "manager": False, "admin": True},
    (Action.REVOKE, "responder"): {"user": False, "manager": False, "admin": True},
    (Action.DOWNLOAD, "leaf"): {"user": True, "manager": True, "admin": True},
    (Action.DOWNLOAD_PKCS12, "leaf"): {"user": False, "manager": True, "admin": True},
    (Action.REVEAL_PKCS12_PASSWORD, "leaf"): {"user": False, "manager": True, "admin": True},
    (Action.SIGN_CRL, "intermediate"): {"user": False, "manager": True, "admin": True},
    (Action.SIGN_CRL, "root"): {"user": False, "manager": False, "admin": True},
    (Action.CREATE_CA, "organization"): {"user": False, "manager": False, "admin": True},
    (Action.CREATE_CA, "root"): {"user": False, "manager": False, "admin": True},
    (Action.MANAGE_NOTIFICATIONS, "organization"): {"user": False, "manager": False, "admin": True},
    (Action.APPROVE_ISSUANCE, "intermediate"): {"user": False, "manager": True, "admin": True},
}


@pytest.fixture
def targets(organization, root_ca, intermediate_ca, leaf, responder) -> dict[str, object]:
    return {"organization": organization, "root": root_ca, "intermediate": intermediate_ca,
            "root_certificate": root_ca.certificate, "intermediate_certificate": intermediate_ca.certificate,
            "leaf": leaf, "responder": responder}


@pytest.mark.parametrize(("action", "target"), list(EXPECTED))
def test_each_role_of_the_organization(actors, targets, action, target):
    obj = targets[target]
    for role, allowed in EXPECTED[(action, target)].items():
        assert permits(actors[role], action, obj) is allowed, (action, target, role)
        error = refusal(actors[role], action, obj)
        assert (error is None) is allowed
        if not allowed:
            assert isinstance(error, PermissionRefused)
            assert error.status == 403
            assert error.code == "permission_denied"
    assert permits(actors["global_admin"], action, obj), "a global admin may everything an admin may, anywhere"
    assert permits(actors["operator"], action, obj), "an operator at the console keeps every right"
    assert isinstance(refusal(actors["other_admin"], action, obj), NotFound), "another organization: 404"


def test_every_rule_is_exercised_and_nothing_else_is_allowed(actors, targets):
    kinds = {(action, kind_of(targets[target])) for action, target in EXPECTED}
    covered_actions = {action for action, _kind in kinds}
    assert covered_actions == set(Action)
    # a pair the table does not name is refused to every member (deny by default)
    assert (Action.ISSUE, "end_entity") not in RULES
    assert not permits(actors["admin"], Action.ISSUE, targets["leaf"])


def test_a_request_without_a_principal_may_do_nothing(targets):
    anonymous = Actor(request=None, principal=None, label="")
    for action, target in EXPECTED:
        assert isinstance(refusal(anonymous, action, targets[target]), PermissionRefused), (action, target)


def test_may_ever_offers_an_action_to_the_roles_some_rule_names():
    assert may_ever(Principal(1, "m", Role.MANAGER, 1), Action.REVOKE)  # end entities
    assert not may_ever(Principal(1, "u", Role.USER, 1), Action.REVOKE)
    assert may_ever(Principal(1, "u", Role.USER, 1), Action.DOWNLOAD)
    assert not may_ever(Principal(1, "m", Role.MANAGER, 1), Action.CREATE_CA)
    assert not may_ever(None, Action.DOWNLOAD)
    assert may_ever(Actor.operator("tests"), Action.CREATE_CA)


# --- The services meet it: refused, and nothing changed ----------------------------------------------


def test_a_user_downloads_the_public_formats_but_not_the_pkcs12(actors, leaf, data_dir):
    assert download_certificate(leaf, "pem", actor=actors["user"]).content.startswith(b"-----BEGIN CERTIFICATE")
    before = _state(data_dir)
    with pytest.raises(PermissionRefused, match="Only a manager or an admin may download the PKCS#12"):
        download_certificate(leaf, "p12", actor=actors["user"])
    with pytest.raises(PermissionRefused, match="reveal the PKCS#12 password"):
        reveal_pkcs12_password(leaf, actor=actors["user"])
    assert _state(data_dir) == before
    assert download_certificate(leaf, "p12", actor=actors["manager"]).content_type == "application/x-pkcs12"


def test_an_unknown_format_is_still_invalid_input_for_everyone(actors, leaf):
    from certificates.errors import InvalidInput

    with pytest.raises(InvalidInput):
        download_certificate(leaf, "P12", actor=actors["user"])


@pytest.mark.parametrize("which", ["intermediate_certificate", "root_certificate", "responder"])
def test_a_manager_revokes_no_ca_and_no_responder_even_with_the_root_password(actors, targets, which, data_dir):
    certificate = targets[which]
    before = _state(data_dir)
    with pytest.raises(PermissionRefused, match="Only an admin may revoke"):
        revoke_certificate(certificate, reason="keyCompromise", actor=actors["manager"], root_password=ROOT_PASSWORD,
                           revoke_children=True)
    assert _state(data_dir) == before  # not even a ca.unlock event: the password was never tried


def test_an_admin_revokes_the_responder(actors, responder, intermediate_ca):
    revoked = revoke_certificate(responder, reason="superseded", actor=actors["admin"])
    assert [row.pk for row in revoked] == [responder.pk]


def test_a_manager_signs_no_root_crl(actors, root_ca, intermediate_ca, data_dir):
    before = _state(data_dir)
    for sign in (lambda: generate_crl(root_ca, actor=actors["manager"], root_password=ROOT_PASSWORD),
                 lambda: publish_crls(root_ca, actor=actors["manager"], root_password=ROOT_PASSWORD)):
        with pytest.raises(PermissionRefused, match=r"Only an admin may sign a root CA's CRL\."):
            sign()
    with pytest.raises(PermissionRefused):
        generate_delta_crl(intermediate_ca, actor=actors["user"])
    assert _state(data_dir) == before
    assert generate_crl(intermediate_ca, actor=actors["manager"]).ca == intermediate_ca


def test_the_crl_batch_skips_what_the_actor_may_not_sign_and_leaves_out_other_organizations(
        actors, root_ca, intermediate_ca, other_organization, operator):
    other_root = create_root_ca(organization=other_organization, common_name="Other Root", root_password=ROOT_PASSWORD,
                                key_type="ec-p256", days=365, actor=operator)
    rows = publish_crls_for([root_ca, intermediate_ca, other_root], actor=actors["manager"], only_due=False,
                            root_password=ROOT_PASSWORD)
    assert {row.ca.slug: (row.outcome, row.reason) for row in rows} == {
        root_ca.slug: ("skipped", "Only an admin may sign a root CA's CRL."),
        intermediate_ca.slug: ("signed", "forced"),
    }


def test_only_admins_create_cas(actors, organization, root_ca, data_dir):
    before = _state(data_dir)
    for role in ("user", "manager"):
        with pytest.raises(PermissionRefused, match=r"Only an admin may create a CA\."):
            create_root_ca(organization=organization, common_name="Nope Root", root_password=ROOT_PASSWORD,
                           key_type="ec-p256", days=365, actor=actors[role])
        with pytest.raises(PermissionRefused, match=r"Only an admin may create a CA\."):
            create_intermediate_ca(parent=root_ca, common_name="Nope Issuing", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", days=365, actor=actors[role])
    with pytest.raises(NotFound):
        create_root_ca(organization=organization, common_name="Nope Root", root_password=ROOT_PASSWORD,
                       key_type="ec-p256", days=365, actor=actors["other_admin"])
    assert _state(data_dir) == before
    assert create_intermediate_ca(parent=root_ca, common_name="Admin Issuing", root_password=ROOT_PASSWORD,
                                  key_type="ec-p256", days=365, actor=actors["admin"]).parent == root_ca


def test_a_user_issues_and_renews_nothing(actors, intermediate_ca, leaf, data_dir):
    before = _state(data_dir)
    with pytest.raises(PermissionRefused):
        issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("u.example.com")),
                          actor=actors["user"])
    with pytest.raises(PermissionRefused):
        renew_certificate(leaf, actor=actors["user"])
    with pytest.raises(NotFound):
        renew_certificate(leaf, actor=actors["other_admin"])
    assert _state(data_dir) == before
    assert renew_certificate(leaf, actor=actors["manager"]).predecessor == leaf
