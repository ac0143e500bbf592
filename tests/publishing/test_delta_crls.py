"""Delta CRLs that carry the revocations (RFC 5280 5.2.4): bases on their schedule, a delta at every revocation.

Judged by `openssl verify -crl_check -use_deltas` with the base and the delta fetched from the public
endpoints right after the revocation, and by pkilint `lint_crl` on both.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import call_command
from django.utils import timezone

from certificates.models import CertificateRevocationList
from certificates.services.crls import crls_due, latest_crl, latest_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from pki_project.config import ConfigError, crl_full_interval_hours
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.judges import pkilint_findings, write_pems


def _fetch(client, url: str) -> x509.CertificateRevocationList:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(response.content)


def _verify(tmp_path: Path, root, inter, leaf, crls, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "crls.pem").write_bytes(b"".join(crl.public_bytes(Encoding.PEM) for crl in crls))
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(write_pems(tmp_path / "root.pem", [root])),
         "-untrusted", str(write_pems(tmp_path / "inter.pem", [inter])), *options,
         "-CRLfile", str(tmp_path / "crls.pem"), str(write_pems(tmp_path / "leaf.pem", [leaf]))],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


@pytest.mark.django_db
def test_a_new_intermediate_publishes_a_base_and_a_delta_at_once(intermediate_ca):
    base, delta = latest_crl(intermediate_ca), latest_delta_crl(intermediate_ca)
    assert base is not None
    assert delta.delta_base_number == base.number
    assert delta.number > base.number
    assert crls_due() == []


@pytest.mark.django_db
def test_a_revocation_signs_only_a_delta_and_openssl_sees_it_revoked_with_use_deltas(
        client, root_ca, intermediate_ca, leaf, operator, tmp_path, django_capture_on_commit_callbacks):
    root, inter, leaf_x509 = load_x509(root_ca.certificate), load_x509(intermediate_ca.certificate), load_x509(leaf)
    base_before = latest_crl(intermediate_ca)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator)
    assert latest_crl(intermediate_ca) == base_before  # no full CRL was signed
    root_crl = _fetch(client, f"/pki/crl/{root_ca.slug}.crl")
    base = _fetch(client, f"/pki/crl/{intermediate_ca.slug}.crl")
    delta = _fetch(client, f"/pki/crl/{intermediate_ca.slug}.delta.crl")
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == _number(base)
    assert _number(delta) > _number(base)  # one number sequence for both
    assert delta.get_revoked_certificate_by_serial_number(leaf_x509.serial_number) is not None
    assert base.get_revoked_certificate_by_serial_number(leaf_x509.serial_number) is None
    # RFC 5280 5.2.6 / 4.2.1.15: the base and the leaf say where the deltas are.
    delta_url = f"/pki/crl/{intermediate_ca.slug}.delta.crl"
    freshest = base.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value.endswith(delta_url)
    assert leaf_x509.extensions.get_extension_for_class(x509.FreshestCRL).value[0].full_name[0].value.endswith(
        delta_url)

    result = _verify(tmp_path, root, inter, leaf_x509, [base, delta, root_crl], "-crl_check", "-use_deltas")
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr
    result = _verify(tmp_path, root, inter, leaf_x509, [base, delta, root_crl], "-crl_check_all", "-use_deltas")
    assert "certificate revoked" in result.stdout + result.stderr
    # A client that reads no delta sees the revocation with the next base (README: the freshness).
    result = _verify(tmp_path, root, inter, leaf_x509, [base, root_crl], "-crl_check")
    assert result.returncode == 0, result.stdout + result.stderr
    for crl in (base, delta):
        for profile in ("PKIX", "BR"):
            findings = pkilint_findings("lint_crl", crl.public_bytes(Encoding.DER), "-t", "CRL", "-p", profile)
            assert findings == [], "\n".join(findings)


@pytest.mark.django_db
def test_every_later_delta_carries_all_revocations_since_its_base_and_a_new_base_starts_afresh(
        intermediate_ca, operator, django_capture_on_commit_callbacks):
    revoked = []
    for name in ("a", "b", "c"):
        certificate = issue_certificate(intermediate_ca, IssuanceRequest(profile="server",
                                                                         csr=make_csr(f"{name}.example.com")),
                                        actor=operator)
        with django_capture_on_commit_callbacks(execute=True):
            revoke_certificate(certificate, reason="superseded", actor=operator)
        revoked.append(certificate)
        delta = latest_delta_crl(intermediate_ca)
        assert delta.entry_count == len(revoked)
    base = latest_crl(intermediate_ca)
    assert base.entry_count == 0
    # The base's schedule: after PKI_CRL_FULL_INTERVAL_HOURS the cron run signs a base with all three.
    later = timezone.now() + timedelta(hours=24, minutes=1)
    out = StringIO()
    call_command("generate_crl", "--all", "--json", stdout=out, stderr=StringIO())
    assert json.loads(out.getvalue())["crls"] == []  # nothing due yet
    [due] = crls_due(later)
    assert not due.delta_only
    from certificates.services.publication import publish_crls_for

    [publication] = [p for p in publish_crls_for([intermediate_ca], actor=operator, now=later) if p.crls]
    new_base, new_delta = publication.crls
    assert new_base.entry_count == 3
    assert new_delta.delta_base_number == new_base.number
    assert new_delta.entry_count == 0  # a fresh delta carries what changed since the new base: nothing yet


@pytest.mark.django_db
def test_the_root_publishes_no_delta_and_re_signs_its_full_crl_when_it_revokes_a_ca(
        client, root_ca, intermediate_ca, operator, django_capture_on_commit_callbacks):
    before = latest_crl(root_ca)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(intermediate_ca.certificate, reason="cACompromise", actor=operator,
                           root_password=ROOT_PASSWORD, revoke_children=True)
    after = latest_crl(root_ca)
    assert after.number > before.number
    listed = x509.load_der_x509_crl(bytes(after.der))
    assert listed.get_revoked_certificate_by_serial_number(int(intermediate_ca.certificate.serial, 16)) is not None
    assert not CertificateRevocationList.objects.filter(ca=root_ca, delta_base_number__isnull=False).exists()
    assert client.get(f"/pki/crl/{root_ca.slug}.delta.crl").status_code == 404


@pytest.mark.django_db
def test_generate_crl_delta_and_full_flags(root_ca, intermediate_ca, operator):
    def run(*args: str) -> dict:
        out = StringIO()
        call_command("generate_crl", *args, "--json", stdout=out, stderr=StringIO())
        return json.loads(out.getvalue())

    base = latest_crl(intermediate_ca)
    payload = run("--all", "--force", "--delta")
    assert [(c["ca"], c["delta_base"]) for c in payload["crls"]] == [(intermediate_ca.slug, base.number)]
    assert root_ca.slug in payload["skipped"]  # roots publish no deltas
    assert latest_crl(intermediate_ca) == base
    payload = run("--ca", intermediate_ca.slug, "--force", "--full")
    full, delta = payload["crls"]
    assert full["delta_base"] is None
    assert delta["delta_base"] == full["number"]
    out = StringIO()
    call_command("generate_crl", "--all", "--force", "--delta", stdout=out, stderr=StringIO())
    assert "publish no delta CRLs" in out.getvalue()


def test_the_full_crl_interval_is_checked_at_start_up():
    assert crl_full_interval_hours({}) == 24
    assert crl_full_interval_hours({"PKI_CRL_FULL_INTERVAL_HOURS": "6"}) == 6
    for value in ("0", "241", "a day"):
        with pytest.raises(ConfigError, match="PKI_CRL_FULL_INTERVAL_HOURS must be a number of hours from 1 to 240"):
            crl_full_interval_hours({"PKI_CRL_FULL_INTERVAL_HOURS": value})
