"""Creating the CA hierarchy through the service layer: keys, chains, custody, audit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core import serializers

from audit.actions import AuditAction
from audit.models import AuditEvent
from certificates.crypto.keys import KeyType
from certificates.errors import InvalidInput, PolicyViolation, UnlockRefused
from certificates.keystore import artifact_store
from certificates.models import Certificate, CertificateAuthority
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.records import load_x509
from certificates.vault.custody import load_intermediate_key
from tests.certificates.conftest import ROOT_PASSWORD
from tests.helpers import unlock_root
from tests.judges import openssl_verify, pkilint_findings


def public_bytes(key) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.django_db
@pytest.mark.parametrize("key_type", [k.value for k in KeyType])
def test_every_key_type_round_trips_root_and_intermediate(key_type, organization, operator, tmp_path: Path):
    root = create_root_ca(organization=organization, common_name=f"Root {key_type}", root_password=ROOT_PASSWORD,
                          key_type=key_type, days=3650, path_length=1, actor=operator)
    inter = create_intermediate_ca(parent=root, common_name=f"Issuing {key_type}", root_password=ROOT_PASSWORD,
                                   key_type=key_type, days=1000, actor=operator)

    root_cert, inter_cert = load_x509(root.certificate), load_x509(inter.certificate)
    assert public_bytes(unlock_root(root, ROOT_PASSWORD, operator)) == root_cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert public_bytes(load_intermediate_key(artifact_store(), inter.key_directory)) == (
        inter_cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    assert root.certificate.key_type == key_type
    result = openssl_verify(tmp_path, root_cert, inter_cert)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_second_intermediate_where_path_length_allows(organization, operator, tmp_path: Path):
    root = create_root_ca(organization=organization, common_name="Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", path_length=None, actor=operator)
    first = create_intermediate_ca(parent=root, common_name="Policy CA", root_password=ROOT_PASSWORD,
                                   path_length=1, actor=operator)
    second = create_intermediate_ca(parent=first, common_name="Issuing CA", path_length=0, actor=operator)
    result = openssl_verify(tmp_path, load_x509(root.certificate), load_x509(second.certificate),
                            intermediates=[load_x509(first.certificate)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert second.parent == first
    assert second.organization == organization

    with pytest.raises(PolicyViolation):
        create_intermediate_ca(parent=second, common_name="Too Deep", actor=operator)
    assert not CertificateAuthority.objects.filter(name="Too Deep").exists()


@pytest.mark.django_db
def test_ca_certificates_pass_pkilint(root_ca, intermediate_ca, operator):
    """The default intermediate (every purpose) is RFC 5280-clean; a TLS-only one is also a BR TLS CA.

    BR 7.1.2.10.6 prohibits emailProtection in a TLS subordinate CA, so pkilint's CA/B lint is for
    the intermediate created with `purposes=serverAuth,clientAuth` (see README "CA purposes")."""
    tls_ca = create_intermediate_ca(parent=root_ca, common_name="TLS Issuing CA", root_password=ROOT_PASSWORD,
                                    purposes=["serverAuth", "clientAuth"], actor=operator)
    root_pem = load_x509(root_ca.certificate).public_bytes(Encoding.PEM)
    inter_pem = load_x509(intermediate_ca.certificate).public_bytes(Encoding.PEM)
    tls_pem = load_x509(tls_ca.certificate).public_bytes(Encoding.PEM)
    assert pkilint_findings("lint_pkix_cert", root_pem) == []
    assert pkilint_findings("lint_pkix_cert", inter_pem) == []
    assert pkilint_findings("lint_pkix_cert", tls_pem) == []
    assert pkilint_findings("lint_cabf_serverauth_cert", root_pem, "-t", "ROOT-CA") == []
    assert pkilint_findings("lint_cabf_serverauth_cert", tls_pem, "-t", "INTERNAL-UNCONSTRAINED-TLS-CA") == []


@pytest.mark.django_db
def test_intermediate_carries_publication_urls_of_its_issuer(root_ca, intermediate_ca, settings):
    certificate = load_x509(intermediate_ca.certificate)
    crl = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert crl[0].full_name[0].value == f"{settings.PKI_BASE_URL}/pki/crl/{root_ca.slug}.crl"
    locations = {d.access_method: d.access_location.value for d in aia}
    assert locations[x509.AuthorityInformationAccessOID.OCSP] == f"{settings.PKI_BASE_URL}/pki/ocsp/{root_ca.slug}/"
    assert locations[x509.AuthorityInformationAccessOID.CA_ISSUERS] == (
        f"{settings.PKI_BASE_URL}/pki/ca/{root_ca.slug}.crt")


@pytest.mark.django_db
def test_wrong_root_password_is_refused_generically_and_audited(root_ca, operator):
    cas_before = CertificateAuthority.objects.count()
    with pytest.raises(UnlockRefused) as refused:
        create_intermediate_ca(parent=root_ca, common_name="Nope", root_password="wrong password entirely",
                               actor=operator)
    assert str(refused.value) == "The CA key could not be unlocked."
    assert CertificateAuthority.objects.count() == cas_before
    failure = AuditEvent.objects.get(action=AuditAction.CA_UNLOCK)
    assert failure.outcome == "failure"
    assert failure.target_id == str(root_ca.pk)


@pytest.mark.django_db
def test_root_key_needs_both_the_disk_password_and_the_operator_password(root_ca, operator):
    store = artifact_store()
    system_password_file = f"{root_ca.key_directory}/.pwd.enc"
    saved = store.read(system_password_file)
    store.delete(system_password_file)
    with pytest.raises(UnlockRefused):
        unlock_root(root_ca, ROOT_PASSWORD, operator)  # the operator password alone is not enough
    store.write(system_password_file, saved)
    with pytest.raises(InvalidInput):
        unlock_root(root_ca, "", operator)  # the disk artifacts and environment alone are not enough
    assert unlock_root(root_ca, ROOT_PASSWORD, operator) is not None


@pytest.mark.django_db
def test_weak_root_password_creates_nothing(organization, operator, data_dir: Path):
    with pytest.raises(InvalidInput, match="at least 12"):
        create_root_ca(organization=organization, common_name="Weak", root_password="short", actor=operator)
    assert not CertificateAuthority.objects.exists()
    assert not Certificate.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.CA_CREATE).exists()
    assert not any(data_dir.rglob("*.enc"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("key_type", "rsa-1024", "weak_key"), ("days", 0, "invalid_days"), ("days", 10**6, "invalid_days"),
     ("path_length", -1, "invalid_path_length"), ("slug", "Not A Slug", "invalid_slug")],
)
def test_bad_ca_parameters_are_refused_and_change_nothing(organization, operator, field, value, code, data_dir):
    arguments = {"organization": organization, "common_name": "Bad", "root_password": ROOT_PASSWORD,
                 "actor": operator, field: value}
    with pytest.raises(InvalidInput) as refused:
        create_root_ca(**arguments)
    assert refused.value.code == code or code == "weak_key"
    assert not CertificateAuthority.objects.exists()
    assert not any(data_dir.rglob("*.enc"))


@pytest.mark.django_db
def test_ca_creation_writes_exactly_one_audit_event(root_ca, intermediate_ca):
    events = AuditEvent.objects.filter(action=AuditAction.CA_CREATE).order_by("seq")
    assert [(e.target_id, e.target_serial, e.outcome) for e in events] == [
        (str(root_ca.pk), root_ca.certificate.serial, "success"),
        (str(intermediate_ca.pk), intermediate_ca.certificate.serial, "success"),
    ]
    assert all(e.actor_label == "cli:tests" for e in events)


@pytest.mark.django_db
def test_a_failed_database_write_leaves_no_orphan_key(organization, operator, data_dir: Path):
    """A duplicate fingerprint cannot happen naturally; a duplicate slug raced in is the realistic case."""
    create_root_ca(organization=organization, common_name="Race", root_password=ROOT_PASSWORD, slug="race",
                   actor=operator)
    files_before = sorted(data_dir.rglob("*.enc"))
    with pytest.raises(Exception):  # noqa: B017,PT011  (the explicit-slug check refuses first)
        create_root_ca(organization=organization, common_name="Race", root_password=ROOT_PASSWORD, slug="race",
                       actor=operator)
    assert sorted(data_dir.rglob("*.enc")) == files_before


@pytest.mark.django_db
def test_no_password_in_logs_database_or_errors(organization, operator, caplog):
    caplog.set_level(logging.DEBUG)
    root = create_root_ca(organization=organization, common_name="Secret Root", root_password=ROOT_PASSWORD,
                          actor=operator)
    with pytest.raises(UnlockRefused) as refused:
        unlock_root(root, ROOT_PASSWORD + "x", operator)
    dump = serializers.serialize("json", [*CertificateAuthority.objects.all(), *Certificate.objects.all(),
                                          *AuditEvent.objects.all()])
    for haystack in (caplog.text, dump, str(refused.value), repr(refused.value)):
        assert ROOT_PASSWORD not in haystack
        assert ROOT_PASSWORD.encode().hex() not in haystack


@pytest.mark.django_db
def test_crl_lifetime_is_set_per_ca_within_the_br_bounds(organization, operator):
    from datetime import timedelta

    from certificates.services.crls import latest_crl

    root = create_root_ca(organization=organization, common_name="Quarterly Root", root_password=ROOT_PASSWORD,
                          crl_validity_hours=24 * 30, actor=operator)
    inter = create_intermediate_ca(parent=root, common_name="Daily Issuing", root_password=ROOT_PASSWORD,
                                   crl_validity_hours=24, actor=operator)
    crl = latest_crl(root)
    assert crl.next_update - crl.this_update == timedelta(days=30)
    assert inter.crl_validity_hours == 24
    with pytest.raises(InvalidInput) as refused:  # BR 4.9.7: at most 10 days below a root
        create_intermediate_ca(parent=root, common_name="Too Long", root_password=ROOT_PASSWORD,
                               crl_validity_hours=24 * 11, actor=operator)
    assert refused.value.code == "invalid_crl_validity"
    assert not CertificateAuthority.objects.filter(name="Too Long").exists()
