"""`POST /api/v1/audit-events/verify/`: `verify_audit_log` for global admins, over a real chain.

The chain is the whole installation's, so only global admins may walk it; like the command, verifying
records nothing.
"""

# ruff: noqa: S608  (the SQL is the attacker's, built from constants)

from __future__ import annotations

import pytest
from django.test import Client

from audit.anchor import anchor_path
from audit.keys import audit_keys
from audit.models import AuditEvent
from tests.audit.helpers import build_chain, rewrite_from, tamper

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/verify/"
TABLE = "audit_auditevent"


def verify(client, body=None):
    return client.post(URL, {} if body is None else body, content_type="application/json")


@pytest.fixture
def global_admin(make_principal_client):
    return make_principal_client("admin")


def test_an_intact_chain(global_admin):
    build_chain()
    head = AuditEvent.objects.order_by("-seq").first()
    count = AuditEvent.objects.count()
    response = verify(global_admin)
    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["ok"], report["count"], report["head_seq"], report["head_hash"]) == (
        True, count, head.seq, head.hash)
    assert report["broken"] is None
    assert report["checkpoint"] is None
    assert report["triggers_installed"] is True
    new = report["new_checkpoint"]
    assert (new["head_seq"], new["head_hash"], new["count"]) == (head.seq, head.hash, count)
    assert AuditEvent.objects.count() == count  # verifying records nothing (as the command)


def test_the_first_broken_link_is_named(global_admin):
    build_chain()
    edited = AuditEvent.objects.get(seq=3)
    tamper((f"UPDATE {TABLE} SET target_id = %s WHERE seq = 3", ["999"]))
    report = verify(global_admin).json()
    assert report["ok"] is False
    assert report["count"] == 2
    assert report["broken"]["seq"] == 3
    assert report["broken"]["event_id"] == edited.pk
    assert report["broken"]["kind"] == "edited"
    assert "edited" in report["broken"]["message"]
    assert report["new_checkpoint"] is None


def test_a_checkpoint_proves_the_history_up_to_it(global_admin):
    build_chain()
    checkpoint = verify(global_admin).json()["new_checkpoint"]
    assert checkpoint["format"] == "pki-audit-checkpoint/2"
    assert checkpoint["public_key"] == audit_keys().public_key
    assert checkpoint["signature"]
    build_chain(2)  # the chain grows after the checkpoint
    report = verify(global_admin, {"checkpoint": checkpoint}).json()
    assert report["ok"] is True
    assert report["checkpoint"] == checkpoint


def test_a_rewrite_without_the_key_is_forged_at_its_first_event(global_admin):
    build_chain()
    rewrite_from(2, {"outcome": "failure"}, with_key=False)
    report = verify(global_admin).json()
    assert (report["ok"], report["broken"]["kind"], report["broken"]["seq"]) == (False, "forged", 2)


def test_a_rewrite_with_the_key_is_caught_by_the_anchor_and_a_checkpoint(global_admin):
    """Someone with the database AND the environment's secrets: what is outside the database notices."""
    build_chain()
    checkpoint = verify(global_admin).json()["new_checkpoint"]  # also the installation's anchor
    rewrite_from(2, {"outcome": "failure"}, with_key=True)
    report = verify(global_admin).json()
    assert (report["ok"], report["broken"]["kind"]) == (False, "checkpoint_mismatch")  # the anchor
    anchor_path().unlink()  # ... and with disk access too: only the off-site checkpoint is left
    assert verify(global_admin).json()["ok"] is True
    report = verify(global_admin, {"checkpoint": checkpoint}).json()
    assert report["ok"] is False
    assert report["broken"]["kind"] == "checkpoint_mismatch"
    assert report["broken"]["seq"] == checkpoint["head_seq"]


def test_an_edited_checkpoint_fails_its_signature(global_admin):
    build_chain()
    checkpoint = verify(global_admin).json()["new_checkpoint"]
    forged = checkpoint | {"head_seq": checkpoint["head_seq"] - 1, "count": checkpoint["count"] - 1,
                           "head_hash": AuditEvent.objects.get(seq=checkpoint["head_seq"] - 1).hash}
    report = verify(global_admin, {"checkpoint": forged}).json()
    assert (report["ok"], report["broken"]["kind"]) == (False, "checkpoint_signature")


def test_a_deleted_tail_is_caught_by_a_checkpoint(global_admin):
    build_chain()
    checkpoint = verify(global_admin).json()["new_checkpoint"]
    tamper((f"DELETE FROM {TABLE} WHERE seq >= %s", [checkpoint["head_seq"] - 1]))
    anchor_path().unlink()  # the anchor would catch it too: see test_verify_audit_log
    report = verify(global_admin, {"checkpoint": checkpoint}).json()
    assert report["broken"]["kind"] == "truncated"


@pytest.mark.parametrize("body", [
    {"checkpoint": "not an object"},
    {"checkpoint": {}},
    {"checkpoint": {"head_seq": -1, "head_hash": "0" * 64, "count": 0, "created_at": "x"}},
    {"checkpoint": {"head_seq": 2**63, "head_hash": "0" * 64, "count": 0, "created_at": "x"}},
    {"checkpoint": {"head_seq": 1, "head_hash": "0" * 63, "count": 0, "created_at": "x"}},
    {"checkpoint": {"head_seq": 1, "head_hash": "G" * 64, "count": 0, "created_at": "x"}},
    {"checkpoint": {"head_seq": 1, "head_hash": "0" * 64, "count": 0, "created_at": "x", "format": "other/9"}},
    {"checkpoint": {"head_seq": "1e999", "head_hash": "0" * 64, "count": 0, "created_at": "x"}},
    [],
])
def test_a_bad_checkpoint_is_a_400(global_admin, body):
    build_chain()
    count = AuditEvent.objects.count()
    response = verify(global_admin, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert AuditEvent.objects.count() == count


@pytest.mark.parametrize("role", ["admin", "manager", "user"])
def test_only_global_admins_may_verify(make_principal_client, organization, role):
    """An organization's admin passes rbac.json (role admin) but not the view's global-admin rule."""
    response = verify(make_principal_client(role, organization))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "count" not in response.json()
    assert verify(Client()).status_code == 401
