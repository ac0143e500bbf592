"""A revocation whose CRL re-sign was lost (the process died after the commit) is caught up by the next cron run."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography import x509
from django.core.management import call_command

from certificates.services.crls import crls_due, generate_crl, latest_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.revocation import revoke_certificate
from tests.certificates.csrs import make_csr


@pytest.mark.django_db
def test_a_crl_missing_a_revocation_is_due_at_once(intermediate_ca, operator) -> None:
    generate_crl(intermediate_ca, actor=operator)
    assert crls_due() == []  # fresh: nothing to do
    certificate = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()),
                                    actor=operator)
    revoke_certificate(certificate, reason="keyCompromise", actor=operator)  # its re-sign never runs here

    [due] = crls_due()
    assert due.ca == intermediate_ca
    assert due.reason.endswith("misses revocations made after it")
    call_command("generate_crl", "--all", stdout=StringIO(), stderr=StringIO())
    crl = latest_crl(intermediate_ca)
    assert x509.load_der_x509_crl(bytes(crl.der)).get_revoked_certificate_by_serial_number(
        int(certificate.serial, 16)) is not None
    assert crls_due() == []
