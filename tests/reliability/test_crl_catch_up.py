"""A revocation whose CRL re-sign was lost (the process died after the commit) is caught up by the next cron run."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography import x509
from django.core.management import call_command

from certificates.services.crls import crls_due, latest_crl, latest_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import publish_crls
from certificates.services.revocation import revoke_certificate
from tests.certificates.csrs import make_csr


@pytest.mark.django_db
def test_a_crl_missing_a_revocation_is_due_at_once(intermediate_ca, operator) -> None:
    publish_crls(intermediate_ca, actor=operator)
    base = latest_crl(intermediate_ca)
    assert crls_due() == []  # fresh: nothing to do
    certificate = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()),
                                    actor=operator)
    revoke_certificate(certificate, reason="keyCompromise", actor=operator)  # its re-sign never runs here

    [due] = crls_due()
    assert due.ca == intermediate_ca
    assert due.delta_only  # the base keeps its schedule: the revocation goes out in a delta
    assert due.reason.endswith("misses revocations made since its base")
    call_command("generate_crl", "--all", stdout=StringIO(), stderr=StringIO())
    assert latest_crl(intermediate_ca) == base
    delta = latest_delta_crl(intermediate_ca)
    assert delta.delta_base_number == base.number
    assert x509.load_der_x509_crl(bytes(delta.der)).get_revoked_certificate_by_serial_number(
        int(certificate.serial, 16)) is not None
    assert crls_due() == []
