"""CRLs: HTTP serving, openssl verdicts (full, full + delta), pkilint, expiry of entries, numbering."""

from __future__ import annotations

import email.utils
import hashlib
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.utils import timezone

from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.crls import (
    crls_due,
    ensure_fresh_crl,
    generate_delta_crl,
    latest_crl,
    latest_delta_crl,
)
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.judges import pem, pkilint_findings


def crl_pem(*crls: CertificateRevocationList) -> bytes:
    return b"".join(x509.load_der_x509_crl(bytes(c.der)).public_bytes(Encoding.PEM) for c in crls)


def verify(tmp_path: Path, root, inter, leaf, crls: bytes, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "inter.pem").write_bytes(pem(inter))
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    (tmp_path / "crls.pem").write_bytes(crls)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "inter.pem"),
         *options, "-CRLfile", str(tmp_path / "crls.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )


# --- HTTP serving ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_crl_is_served_der_and_pem_with_caching_headers_and_304(client, intermediate_ca):
    response = client.get(f"/pki/crl/{intermediate_ca.slug}.crl")  # none yet: signed once, then stored
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    stored = latest_crl(intermediate_ca)
    assert bytes(stored.der) == response.content
    assert response["ETag"] == '"' + hashlib.sha256(response.content).hexdigest() + '"'
    assert email.utils.parsedate_to_datetime(response["Last-Modified"]) == stored.this_update
    assert email.utils.parsedate_to_datetime(response["Expires"]) == stored.next_update
    assert response["Cache-Control"] == "public, max-age=3600"
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == stored.number

    again = client.get(f"/pki/crl/{intermediate_ca.slug}.crl")
    assert again.content == response.content  # served from storage, not signed again
    assert CertificateRevocationList.objects.filter(ca=intermediate_ca, delta_base_number=None).count() == 1
    not_modified = client.get(f"/pki/crl/{intermediate_ca.slug}.crl", HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert not_modified.content == b""

    as_pem = client.get(f"/pki/crl/{intermediate_ca.pk}.pem")  # a CA is named by slug or id
    assert as_pem.status_code == 200
    assert as_pem["Content-Type"] == "application/x-pem-file"
    assert x509.load_pem_x509_crl(as_pem.content).public_bytes(Encoding.DER) == response.content
    assert client.head(f"/pki/crl/{intermediate_ca.slug}.crl").status_code == 200


@pytest.mark.django_db
def test_delta_crl_is_served_and_points_at_the_latest_base(client, intermediate_ca):
    response = client.get(f"/pki/crl/{intermediate_ca.slug}.delta.crl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    delta = x509.load_der_x509_crl(response.content)
    base = latest_crl(intermediate_ca)
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == base.number
    assert delta.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > base.number
    full = x509.load_der_x509_crl(bytes(base.der))
    (point,) = full.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert point.full_name[0].value == f"http://pki.example.com/pki/crl/{intermediate_ca.slug}.delta.crl"
    assert client.get(f"/pki/crl/{intermediate_ca.slug}.delta.pem").status_code == 200


@pytest.mark.django_db
def test_issued_certificates_carry_freshest_crl_and_intermediates_do_not(leaf, intermediate_ca):
    issued = load_x509(leaf)
    (point,) = issued.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert point.full_name[0].value.endswith(f"/pki/crl/{intermediate_ca.slug}.delta.crl")
    with pytest.raises(x509.ExtensionNotFound):  # the root publishes no deltas
        load_x509(intermediate_ca.certificate).extensions.get_extension_for_class(x509.FreshestCRL)


@pytest.mark.django_db
def test_root_without_crl_is_404_with_a_clear_message_and_ca_certificates_are_served(client, root_ca):
    assert client.get(f"/pki/crl/{root_ca.slug}.crl").status_code == 200  # signed when the root was created
    CertificateRevocationList.objects.filter(ca=root_ca).delete()
    response = client.get(f"/pki/crl/{root_ca.slug}.crl")
    assert response.status_code == 404
    assert b"generate_crl --ca" in response.content
    assert client.get("/pki/crl/no-such-ca.crl").status_code == 404
    der = client.get(f"/pki/ca/{root_ca.slug}.crt")
    assert der.status_code == 200
    assert der["Content-Type"] == "application/pkix-cert"
    assert der.content == bytes(root_ca.certificate.der)
    as_pem = client.get(f"/pki/ca/{root_ca.slug}.pem")
    assert x509.load_pem_x509_certificate(as_pem.content) == load_x509(root_ca.certificate)
    assert client.get("/pki/ca/no-such-ca.crt").status_code == 404
    assert client.post(f"/pki/crl/{root_ca.slug}.crl").status_code != 200  # GET only (RBAC refuses the rest)


@pytest.mark.django_db
def test_an_expired_intermediate_crl_is_replaced_on_the_next_fetch(client, intermediate_ca, operator):
    old = generate_crl(intermediate_ca, actor=operator, now=timezone.now() - timedelta(days=30))
    assert old.next_update < timezone.now()
    served = x509.load_der_x509_crl(client.get(f"/pki/crl/{intermediate_ca.slug}.crl").content)
    assert served.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > old.number
    assert served.next_update_utc > timezone.now()


# --- Verdicts of openssl and pkilint ---------------------------------------------------------------


@pytest.mark.django_db
def test_openssl_crl_check_full_and_delta_before_and_after_revocation(root_ca, intermediate_ca, leaf, operator,
                                                                     tmp_path, django_capture_on_commit_callbacks):
    root, inter, leaf_x509 = load_x509(root_ca.certificate), load_x509(intermediate_ca.certificate), load_x509(leaf)
    root_crl = generate_crl(root_ca, actor=operator, root_password=ROOT_PASSWORD)
    base = generate_crl(intermediate_ca, actor=operator)
    empty_delta = generate_delta_crl(intermediate_ca, actor=operator)
    for options in (["-crl_check"], ["-crl_check_all"]):
        result = verify(tmp_path, root, inter, leaf_x509, crl_pem(base, root_crl), *options)
        assert result.returncode == 0, result.stdout + result.stderr
    result = verify(tmp_path, root, inter, leaf_x509, crl_pem(base, empty_delta, root_crl), "-crl_check_all",
                    "-use_deltas")
    assert result.returncode == 0, result.stdout + result.stderr

    revoke_certificate(leaf, reason="keyCompromise", actor=operator)  # on-commit re-signing not run here
    delta = generate_delta_crl(intermediate_ca, actor=operator)
    assert delta.delta_base_number == base.number
    assert delta.entry_count == 1
    # The old base alone still says good; base + delta says revoked (RFC 5280 5.2.4).
    assert verify(tmp_path, root, inter, leaf_x509, crl_pem(base, root_crl), "-crl_check_all").returncode == 0
    result = verify(tmp_path, root, inter, leaf_x509, crl_pem(base, delta, root_crl), "-crl_check_all",
                    "-use_deltas")
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr

    with django_capture_on_commit_callbacks(execute=True):
        other = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("b.example.com")),
                                  actor=operator)
        revoke_certificate(other, reason="superseded", actor=operator)  # signs a delta on commit, not a base
    new_base, new_delta = latest_crl(intermediate_ca), latest_delta_crl(intermediate_ca)
    assert new_base == base  # the base keeps its schedule (PKI_CRL_FULL_INTERVAL_HOURS)
    assert new_delta.number > delta.number
    assert new_delta.delta_base_number == base.number
    assert new_delta.entry_count == 2  # everything revoked since the base, not only the last one
    other_x509 = load_x509(other)
    for certificate in (leaf_x509, other_x509):
        result = verify(tmp_path, root, inter, certificate, crl_pem(base, new_delta, root_crl), "-crl_check",
                        "-use_deltas")
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr
    # The next full CRL (on its schedule) lists both; clients that read no deltas see them then.
    next_base = generate_crl(intermediate_ca, actor=operator)
    for options in (["-crl_check"], ["-crl_check_all"]):
        result = verify(tmp_path, root, inter, other_x509, crl_pem(next_base, root_crl), *options)
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr


@pytest.mark.django_db
def test_crls_pass_pkilint(root_ca, intermediate_ca, leaf, operator, django_capture_on_commit_callbacks):
    base = generate_crl(intermediate_ca, actor=operator)
    with django_capture_on_commit_callbacks(execute=False):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator,
                           invalidity_date=timezone.now() - timedelta(hours=2))
    delta = generate_delta_crl(intermediate_ca, actor=operator)
    full = generate_crl(intermediate_ca, actor=operator)
    assert delta.delta_base_number == base.number
    for crl in (base, delta, full):
        for profile in ("PKIX", "BR"):
            findings = pkilint_findings("lint_crl", bytes(crl.der), "-t", "CRL", "-p", profile)
            assert findings == [], "\n".join(findings)
    root_crl = latest_crl(root_ca)
    assert root_crl.next_update - root_crl.this_update == timedelta(days=90)
    for profile in ("PKIX", "BR"):
        findings = pkilint_findings("lint_crl", bytes(root_crl.der), "-t", "ARL", "-p", profile)
        assert findings == [], "\n".join(findings)


@pytest.mark.django_db
def test_entries_carry_reason_and_invalidity_date_and_leave_after_not_after(intermediate_ca, leaf, operator):
    invalid_since = timezone.now().replace(microsecond=0) - timedelta(days=3)
    revoke_certificate(leaf, reason="keyCompromise", actor=operator, invalidity_date=invalid_since)
    plain = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("p.example.com")),
                              actor=operator)
    revoke_certificate(plain, reason="unspecified", actor=operator)
    crl = x509.load_der_x509_crl(bytes(generate_crl(intermediate_ca, actor=operator).der))
    entry = crl.get_revoked_certificate_by_serial_number(load_x509(leaf).serial_number)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == invalid_since
    unspecified = crl.get_revoked_certificate_by_serial_number(load_x509(plain).serial_number)
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 5.3.1: omitted rather than unspecified
        unspecified.extensions.get_extension_for_class(x509.CRLReason)
    assert len(crl) == 2

    # Past its notAfter an entry leaves the CRL (RFC 5280 5.3; the row keeps its revocation).
    past = timezone.now() - timedelta(days=1)
    Certificate.objects.filter(pk=plain.pk).update(not_before=past - timedelta(days=30), not_after=past)
    crl = x509.load_der_x509_crl(bytes(generate_crl(intermediate_ca, actor=operator).der))
    assert len(crl) == 1
    assert crl.get_revoked_certificate_by_serial_number(load_x509(plain).serial_number) is None


# --- Numbers and the schedule ---------------------------------------------------------------------


@pytest.mark.django_db
def test_full_and_delta_crls_share_one_growing_number_sequence(intermediate_ca, operator):
    numbers = []
    for _ in range(3):
        numbers.append(generate_crl(intermediate_ca, actor=operator).number)
        numbers.append(generate_delta_crl(intermediate_ca, actor=operator).number)
    assert numbers == sorted(set(numbers))
    intermediate_ca.refresh_from_db()
    assert intermediate_ca.crl_number == numbers[-1]


@pytest.mark.django_db
def test_crls_due_and_ensure_fresh_crl(root_ca, intermediate_ca, operator):
    now = timezone.now()
    assert crls_due(now) == []  # both CAs signed their first CRLs when they were created
    CertificateRevocationList.objects.filter(ca=intermediate_ca).delete()
    due = {entry.ca.slug: entry for entry in crls_due(now)}
    assert set(due) == {intermediate_ca.slug}  # the root's CRL has 90 days left
    assert due[intermediate_ca.slug].reason == "no CRL yet"
    crl = ensure_fresh_crl(intermediate_ca, now=now)
    assert crl is not None
    assert ensure_fresh_crl(intermediate_ca, now=now) == crl
    [due] = crls_due(now)
    assert due.delta_only  # the full CRL is current; its delta is missing
    assert ensure_fresh_crl(intermediate_ca, delta=True, now=now).delta_base_number == crl.number
    assert crls_due(now) == []
    later = now + timedelta(hours=24)  # PKI_CRL_FULL_INTERVAL_HOURS: the next full CRL
    [due] = crls_due(later)
    assert (due.ca, due.delta_only, due.past_interval) == (intermediate_ca, False, True)
    assert crls_due(now + timedelta(hours=11)) == []
    [due] = crls_due(now + timedelta(hours=13))  # the delta (24 h) is past half its life; the base is not
    assert due.delta_only
    later = now + timedelta(days=4)  # less than half of the 7 days left
    assert {entry.ca.slug for entry in crls_due(later)} == {intermediate_ca.slug}
    assert {entry.ca.slug for entry in crls_due(now + timedelta(days=46))} == {root_ca.slug, intermediate_ca.slug}
    CertificateAuthority.objects.filter(pk=root_ca.pk).update(crl_validity_hours=48)
    root_ca.refresh_from_db()
    assert generate_crl(root_ca, actor=operator, root_password=ROOT_PASSWORD).next_update - now < timedelta(hours=49)
