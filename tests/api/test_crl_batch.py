"""`POST /api/v1/crls/`: `generate_crl --all` for the CAs the caller manages, one result per CA.

Real CAs and real signatures: the root's first CRL is signed when it is created (so it is current), the
intermediate has none yet (so it is due).
"""

from __future__ import annotations

import pytest
from cryptography import x509

from audit.models import AuditEvent
from certificates.models import CertificateRevocationList
from certificates.services.revocation import revoke_certificate
from tests.api.conftest import ROOT_PASSWORD, post_json, snapshot

pytestmark = pytest.mark.django_db
URL = "/api/v1/crls/"


def by_slug(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    return {row["ca_slug"]: row for row in response.json()["cas"]}


def test_manager_signs_what_is_due_and_leaves_the_root_alone(clients, hierarchy, other_hierarchy):
    root, inter = hierarchy
    root_crls = root.crls.count()
    inter.crls.all().delete()  # as before its first CRLs (signed when it was created)
    earlier_events = list(AuditEvent.objects.values_list("pk", flat=True))
    response = post_json(clients["manager"], URL, {})
    rows = by_slug(response)
    assert set(rows) == {root.slug, inter.slug}  # never another organization's CAs
    assert rows[root.slug]["outcome"] == "current"
    assert rows[root.slug]["crls"][0]["number"] == root.crls.order_by("-number").first().number
    signed = rows[inter.slug]
    assert (signed["outcome"], signed["ca"], signed["kind"], signed["error"]) == ("signed", inter.pk,
                                                                                  "intermediate", None)
    assert signed["reason"] == "no CRL yet"
    full, delta = signed["crls"]
    assert full["delta_base"] is None
    assert delta["delta_base"] == full["number"]
    assert full["this_update"] < full["next_update"]
    assert full["entry_count"] == 0
    assert CertificateRevocationList.objects.filter(ca=inter, number=full["number"]).exists()
    assert root.crls.count() == root_crls
    body = response.json()
    assert (body["signed"], body["current"], body["skipped"], body["failed"]) == (1, 1, 0, 0)
    # the CRL_GENERATE events name the caller, as the command's name the operator
    events = AuditEvent.objects.filter(action="crl.generate", target_id=str(inter.pk)).exclude(pk__in=earlier_events)
    assert {event.actor_username for event in events} == {clients["manager"].user.username}
    # a second call: nothing is due any more
    again = by_slug(post_json(clients["manager"], URL, {}))
    assert {row["outcome"] for row in again.values()} == {"current"}


def test_manager_forcing_skips_roots(clients, hierarchy):
    root, inter = hierarchy
    rows = by_slug(post_json(clients["manager"], URL, {"force": True, "root_password": ROOT_PASSWORD}))
    assert rows[root.slug]["outcome"] == "skipped"
    assert rows[root.slug]["reason"] == "Only an admin may sign a root CA's CRL."
    assert rows[inter.slug]["outcome"] == "signed"


def test_admin_signs_roots_with_the_password(clients, hierarchy, issued, operator):
    root, inter = hierarchy
    revoke_certificate(issued, reason="keyCompromise", actor=operator)
    before = {ca.slug: ca.crls.count() for ca in hierarchy}
    rows = by_slug(post_json(clients["admin"], URL, {"force": True, "root_password": ROOT_PASSWORD}))
    assert rows[root.slug]["outcome"] == rows[inter.slug]["outcome"] == "signed"
    assert len(rows[root.slug]["crls"]) == 1  # roots publish no delta CRLs
    assert root.crls.count() == before[root.slug] + 1
    assert inter.crls.count() == before[inter.slug] + 2
    newest = inter.crls.filter(delta_base_number__isnull=True).order_by("-number").first()
    crl = x509.load_der_x509_crl(bytes(newest.der))
    assert crl.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is not None


def test_admin_without_the_password_skips_roots(clients, hierarchy):
    root, inter = hierarchy
    rows = by_slug(post_json(clients["admin"], URL, {"force": True}))
    assert rows[root.slug]["outcome"] == "skipped"
    assert "root password" in rows[root.slug]["reason"]
    assert rows[inter.slug]["outcome"] == "signed"


def test_a_wrong_root_password_fails_that_root_only(clients, hierarchy):
    root, inter = hierarchy
    root_crls = root.crls.count()
    response = post_json(clients["admin"], URL, {"force": True, "root_password": ROOT_PASSWORD + "x"})
    rows = by_slug(response)
    assert rows[root.slug]["outcome"] == "failed"
    assert rows[root.slug]["error"]["code"] == "unlock_failed"
    assert rows[root.slug]["crls"] == []
    assert root.crls.count() == root_crls
    assert rows[inter.slug]["outcome"] == "signed"  # the others go on
    assert response.json()["failed"] == 1
    assert AuditEvent.objects.filter(action="ca.unlock", outcome="failure", target_id=str(root.pk)).exists()
    assert ROOT_PASSWORD not in response.content.decode()


def test_global_admin_covers_every_organization(clients, hierarchy, other_hierarchy):
    rows = by_slug(post_json(clients["global_admin"], URL, {}))
    assert {ca.slug for ca in (*hierarchy, *other_hierarchy)} <= set(rows)


def test_other_organization_admin_touches_nothing_of_ours(clients, hierarchy, other_hierarchy):
    inter = hierarchy[1]
    before = list(inter.crls.values_list("number", flat=True))
    rows = by_slug(post_json(clients["other_admin"], URL, {"force": True}))
    assert set(rows) == {ca.slug for ca in other_hierarchy}
    assert list(inter.crls.values_list("number", flat=True)) == before


def test_revoked_cas_are_left_out(clients, hierarchy, operator):
    inter = hierarchy[1]
    revoke_certificate(inter.certificate, reason="cessationOfOperation", actor=operator, root_password=ROOT_PASSWORD)
    rows = by_slug(post_json(clients["admin"], URL, {"force": True}))
    assert inter.slug not in rows


@pytest.mark.parametrize("body", [
    {"force": "maybe"}, {"force": [True]}, {"force": None}, {"root_password": "x" * 1025}, [], "[]", "{oops",
])
def test_bad_input_is_a_400_and_signs_nothing(clients, hierarchy, data_dir, body):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], URL, body)
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]) >= {"code", "message"}
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(("caller", "status"), [("anonymous", 401), ("user", 403)])
def test_who_may_not(clients, hierarchy, data_dir, caller, status):
    before = snapshot(data_dir)
    response = post_json(clients[caller], URL, {"force": True})
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message"}
    assert snapshot(data_dir) == before
