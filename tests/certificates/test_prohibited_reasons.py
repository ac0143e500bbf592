"""BR 7.2.2: cACompromise and aACompromise are never the reason of a subscriber certificate's revocation.

Every channel (service, API, page, admin action, `revoke_certificate` command) refuses them for an
end-entity certificate with a 4xx or a readable message and changes nothing; a CA certificate may
still be revoked with cACompromise (with the root password), and its subscribers go with a reason
BR 7.2.2 allows.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from certificates.errors import InvalidInput
from certificates.models import Certificate, CertificateRevocationList
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.revocation import revoke_certificate
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr

PROHIBITED = ("cACompromise", "aACompromise")


@pytest.fixture
def leaf(intermediate_ca, operator) -> Certificate:
    return issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("leaf.example.com")),
                             actor=operator)


def _state() -> tuple[int, int, int]:
    """What a refused revocation must leave as it was: revoked rows, CRLs, successful audit events."""
    return (Certificate.objects.filter(revoked_at__isnull=False).count(), CertificateRevocationList.objects.count(),
            AuditEvent.objects.filter(outcome="success").count())


@pytest.mark.django_db
@pytest.mark.parametrize("reason", PROHIBITED)
def test_the_service_refuses_ca_only_reasons_for_a_subscriber(leaf, operator, reason):
    before = _state()
    with pytest.raises(InvalidInput) as refused:
        revoke_certificate(leaf, reason=reason, actor=operator)
    assert refused.value.code == "reason_not_allowed"
    assert refused.value.status == 400
    assert "BR 7.2.2" in refused.value.message
    assert "keyCompromise" in refused.value.message
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    assert _state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("reason", PROHIBITED)
def test_the_api_answers_400_and_revokes_nothing(make_principal_client, organization, leaf, reason):
    client = make_principal_client("manager", organization)
    before = _state()
    response = client.post(f"/api/v1/certificates/{leaf.pk}/revoke/", json.dumps({"reason": reason}),
                           content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "reason_not_allowed"
    assert "only for CA certificates" in response.json()["error"]["message"]
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    assert _state() == before


@pytest.mark.django_db
def test_the_page_answers_400_with_the_rule_and_revokes_nothing(make_principal_client, organization, leaf):
    client = make_principal_client("manager", organization)
    before = _state()
    response = client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "cACompromise"})
    assert response.status_code == 400
    assert "only for CA certificates" in response.content.decode()
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    assert _state() == before


@pytest.mark.django_db
def test_the_admin_action_revokes_none_of_a_selection_with_a_subscriber(make_principal_client, organization,
                                                                       intermediate_ca, leaf, operator):
    other = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("b.example.com")),
                              actor=operator)
    client = make_principal_client("admin", organization)
    before = _state()
    response = client.post("/admin/certificates/certificate/", {
        "action": "revoke_selected", "_selected_action": [str(other.pk), str(leaf.pk)], "apply": "1",
        "reason": "aACompromise",
    })
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was revoked" in page
    assert "only for CA certificates" in page
    assert not Certificate.objects.filter(pk__in=[leaf.pk, other.pk], revoked_at__isnull=False).exists()
    assert _state() == before


@pytest.mark.django_db
def test_the_command_refuses_with_one_line_and_revokes_nothing(leaf):
    before = _state()
    with pytest.raises(CommandError, match="only for CA certificates"):
        call_command("revoke_certificate", str(leaf.pk), "--reason", "cACompromise", stdout=StringIO(),
                     stderr=StringIO())
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    assert _state() == before


@pytest.mark.django_db
def test_a_ca_is_still_revoked_with_ca_compromise_and_its_subscribers_get_an_allowed_reason(
        intermediate_ca, leaf, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        revoked = revoke_certificate(intermediate_ca.certificate, reason="cACompromise", actor=operator,
                                     root_password=ROOT_PASSWORD, revoke_children=True)
    assert {c.pk for c in revoked} == {intermediate_ca.certificate_id, leaf.pk}
    intermediate_ca.certificate.refresh_from_db()
    leaf.refresh_from_db()
    assert intermediate_ca.certificate.revocation_reason == "cACompromise"
    assert leaf.revocation_reason == "cessationOfOperation"
    # The root's CRL (signed with the root key the revocation unlocked) says cACompromise for the CA.
    root_crl = x509.load_der_x509_crl(bytes(CertificateRevocationList.objects.filter(
        ca=intermediate_ca.parent).order_by("-number").first().der))
    entry = root_crl.get_revoked_certificate_by_serial_number(int(intermediate_ca.certificate.serial, 16))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.ca_compromise
