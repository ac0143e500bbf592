"""Approvals at the same instant from separate connections issue one certificate: PostgreSQL (threads, one
connection each) and SQLite (separate `manage.py approve_request` processes on one database file)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from approvals.models import ApprovalStatus, IssuanceApproval
from certificates.models import Certificate
from tests.api.conftest import make_csr, post_json
from tests.conftest import running_on_postgres
from tests.helpers import PROJECT_DIR, clean_environment, run_manage


@pytest.mark.skipif(not running_on_postgres(), reason="needs concurrent connections (runs in the PostgreSQL pass)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_issue_one_certificate_postgres(committed_audit_events_removed, make_principal_client,
                                                              organization, intermediate_ca, guarded):
    from django.db import connection

    requester = make_principal_client("manager", organization)
    answer = post_json(requester, "/api/v1/certificates/", {"ca": str(intermediate_ca.pk), "profile": "server",
                                                            "csr": make_csr("race.example.com").decode()})
    assert answer.status_code == 202
    approval_id = answer.json()["id"]
    approvers = [make_principal_client(role, organization) for role in ("admin", "manager", "admin", "manager")]
    barrier, results = threading.Barrier(len(approvers)), []

    def approve(client) -> None:
        try:
            barrier.wait(timeout=30)
            response = post_json(client, f"/api/v1/approvals/{approval_id}/approve/")
            results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(client,)) for client in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(status for status, _ in results) == [200, 409, 409, 409]
    assert {body["error"]["code"] for status, body in results if status == 409} == {"already_decided"}
    assert Certificate.objects.filter(common_name="race.example.com").count() == 1
    row = IssuanceApproval.objects.get(pk=approval_id)
    assert row.status == ApprovalStatus.APPROVED
    assert row.certificate.common_name == "race.example.com"


SETUP = """
from approvals.services import submit_issuance
from certificates.models import CertificateProfile
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest
from certificates.services.profiles import update_profile
from organizations.principal import Principal
from pki_project.actor import Actor
from tests.certificates.csrs import make_csr
from tests.factories import OrganizationFactory, UserFactory

operator = Actor.operator("tests")
organization = OrganizationFactory()
root = create_root_ca(organization=organization, common_name="Race Root", root_password="correct horse battery",
                      key_type="ec-p256", days=3650, path_length=1, actor=operator)
inter = create_intermediate_ca(parent=root, common_name="Race Issuing", root_password="correct horse battery",
                               key_type="ec-p256", days=1825, path_length=0, actor=operator)
update_profile(CertificateProfile.objects.get(name="server"), {"requires_approval": True}, actor=operator)
user = UserFactory(role="manager", organization=organization)
member = Principal(user_id=user.pk, username=user.username, role=user.membership.role,
                   organization_id=organization.pk)
approval = submit_issuance(inter, IssuanceRequest(profile="server", csr=make_csr("race.example.com")),
                           actor=Actor(principal=member))
print(approval.pk)
"""
COUNT = ("from certificates.models import Certificate; from approvals.models import IssuanceApproval; "
         "print(Certificate.objects.filter(common_name='race.example.com').count(), "
         "IssuanceApproval.objects.get().status)")


@pytest.mark.skipif(running_on_postgres(), reason="the SQLite file variant (PostgreSQL runs the threaded one)")
def test_concurrent_approvals_issue_one_certificate_sqlite(tmp_path):
    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'race.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"), PKI_ROOT_KDF_LOG2_N="12")
    assert run_manage("migrate", "--verbosity", "0", env=env, timeout=300).returncode == 0
    setup = run_manage("shell", "-c", SETUP, env=env, timeout=300)
    assert setup.returncode == 0, setup.stderr
    approval_id = setup.stdout.strip().splitlines()[-1]
    processes = [subprocess.Popen([sys.executable, str(PROJECT_DIR / "manage.py"), "approve_request", approval_id,
                                   "--json"], env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [(process.wait(timeout=300), *process.communicate()) for process in processes]
    codes = sorted(code for code, _out, _err in outcomes)
    assert codes == [0, 1, 1], outcomes
    winner = next(out for code, out, _err in outcomes if code == 0)
    assert json.loads(winner)["status"] == "approved"
    for code, _out, err in outcomes:
        if code:
            assert "already approved" in err or "decided by someone else" in err, err
    counted = run_manage("shell", "-c", COUNT, env=env)
    assert counted.stdout.strip().splitlines()[-1].split() == ["1", "approved"], counted.stderr
