"""Name constraints of a technically constrained TLS CA (BR 7.1.2.5.2), judged by pkilint and openssl.

A CA created with permitted names gets its own C and O as a directoryName permitted subtree and the
excluded subtrees for the name forms it does not permit; a TLS-only CA (EKU without emailProtection)
gets no rfc822Name subtree and refuses e-mail constraints. Certificates below it name that
organization in their subject, so relying parties that apply the directoryName subtree accept them.
"""

from __future__ import annotations

import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certificates.crypto.builders import PublicationUrls, build_intermediate_ca_certificate
from certificates.crypto.errors import PolicyError
from certificates.crypto.keys import KeyType, generate_private_key
from certificates.crypto.names import build_subject
from certificates.errors import InvalidInput, PolicyViolation
from certificates.models import Certificate, CertificateAuthority
from certificates.services.authorities import create_intermediate_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.ocsp import current_responder, forget_responders
from certificates.services.records import load_x509
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.judges import openssl_verify, pem, pkilint_findings, write_pems

EVERY_IPV4 = x509.IPAddress(ipaddress.ip_network("0.0.0.0/0"))
EVERY_IPV6 = x509.IPAddress(ipaddress.ip_network("::/0"))


def _constraints(ca: CertificateAuthority) -> x509.NameConstraints:
    extension = load_x509(ca.certificate).extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    return extension.value


def _constrained(root_ca, operator, permitted, excluded=(), **kwargs) -> CertificateAuthority:
    """A TLS CA (purposes serverAuth and clientAuth) unless the test names other purposes."""
    if "extended_key_usages" not in kwargs:
        kwargs.setdefault("purposes", ["serverAuth", "clientAuth"])
    return create_intermediate_ca(parent=root_ca, common_name="Example Constrained CA", root_password=ROOT_PASSWORD,
                                  permitted_names=list(permitted), excluded_names=list(excluded), actor=operator,
                                  **kwargs)


def _organization(name: x509.Name) -> list[tuple[x509.ObjectIdentifier, str]]:
    return [(a.oid, a.value) for a in name if a.oid in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME)]


@pytest.mark.django_db
def test_a_constrained_tls_ca_gets_its_directory_name_and_the_br_exclusions_and_passes_pkilint(root_ca, operator):
    ca = _constrained(root_ca, operator, ["example.com"], ["secret.example.com"])
    constraints = _constraints(ca)
    permitted = constraints.permitted_subtrees
    directory = [subtree.value for subtree in permitted if isinstance(subtree, x509.DirectoryName)]
    assert len(directory) == 1
    assert _organization(directory[0]) == [(NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Example Corp")]
    assert _organization(directory[0]) == _organization(load_x509(ca.certificate).subject)
    assert x509.DNSName("example.com") in permitted
    # TLS-only CA (serverAuth, clientAuth): no rfc822Name subtree anywhere.
    assert not [s for s in [*permitted, *constraints.excluded_subtrees] if isinstance(s, x509.RFC822Name)]
    assert x509.DNSName("secret.example.com") in constraints.excluded_subtrees
    assert EVERY_IPV4 in constraints.excluded_subtrees
    assert EVERY_IPV6 in constraints.excluded_subtrees
    assert x509.DNSName("") not in constraints.excluded_subtrees  # dNSName is permitted
    document = pem(load_x509(ca.certificate))
    assert pkilint_findings("lint_cabf_serverauth_cert", document, "-t", "INTERNAL-CONSTRAINED-TLS-CA") == []
    assert pkilint_findings("lint_pkix_cert", document) == []


@pytest.mark.django_db
def test_permitted_ip_networks_leave_only_the_other_family_excluded(root_ca, operator):
    constraints = _constraints(_constrained(root_ca, operator, ["10.0.0.0/8"]))
    assert x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")) in constraints.permitted_subtrees
    assert EVERY_IPV4 not in constraints.excluded_subtrees
    assert EVERY_IPV6 in constraints.excluded_subtrees
    assert x509.DNSName("") in constraints.excluded_subtrees  # no dNSName permitted: every DNS name excluded


@pytest.mark.django_db
def test_an_e_mail_constraint_on_a_tls_only_ca_is_refused_and_nothing_is_created(root_ca, operator):
    before = CertificateAuthority.objects.count()
    with pytest.raises(InvalidInput) as refused:
        _constrained(root_ca, operator, ["alice@example.com"])
    assert refused.value.code == "name_constraints_invalid"
    assert "emailProtection" in refused.value.message
    assert CertificateAuthority.objects.count() == before


def test_a_ca_that_may_issue_e_mail_certificates_keeps_rfc822_subtrees():
    root_key, inter_key = generate_private_key(KeyType.EC_P256), generate_private_key(KeyType.EC_P256)
    from certificates.crypto.builders import build_root_ca_certificate

    root = build_root_ca_certificate(root_key, build_subject("Root", "Example Corp", country="US"), 3650)
    urls = PublicationUrls(crl_url="http://pki.example/crl/root.crl", ocsp_url="http://pki.example/ocsp/root/",
                           ca_issuers_url="http://pki.example/ca/root.crt")
    for usages, has_rfc822, has_directory in (
        ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION], True, True),
        ([ExtendedKeyUsageOID.EMAIL_PROTECTION], True, False),  # no TLS: BR 7.1.2.5.2 does not apply
        (None, True, True),
    ):
        ca = build_intermediate_ca_certificate(root, root_key, inter_key.public_key(),
                                               build_subject("Sub", "Example Corp", country="US"), 365, 0, urls,
                                               permitted=["example.com"], extended_key_usages=usages)
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
        assert (x509.RFC822Name("example.com") in constraints.permitted_subtrees) is has_rfc822
        assert any(isinstance(s, x509.DirectoryName) for s in constraints.permitted_subtrees) is has_directory


@pytest.mark.django_db
def test_leaves_below_name_the_organization_and_pass_openssl_and_ip_sans_are_held_to_the_exclusions(
        root_ca, operator, tmp_path):
    ca = _constrained(root_ca, operator, ["example.com"])
    leaf = issue_certificate(ca, IssuanceRequest(profile="server", csr=make_csr("www.example.com")), actor=operator)
    leaf_x509 = load_x509(leaf)
    assert _organization(leaf_x509.subject) == _organization(load_x509(ca.certificate).subject)
    assert leaf_x509.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    assert leaf.subject == leaf_x509.subject.rfc4514_string()  # the row says what the certificate says
    result = openssl_verify(tmp_path, load_x509(root_ca.certificate), leaf_x509, [load_x509(ca.certificate)],
                            ["-purpose", "sslserver"])
    assert result.returncode == 0, result.stdout + result.stderr
    # Renewal keeps the subject, still inside.
    from certificates.services.issuance import renew_certificate

    renewed = renew_certificate(leaf, actor=operator)
    assert load_x509(renewed).subject == leaf_x509.subject
    # BR 7.1.2.5.2: no IP network permitted, so every IP address is excluded, here and in openssl.
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(ca, IssuanceRequest(profile="server", csr=make_csr(
            "ip.example.com", ["DNS:ip.example.com", "IP:10.1.2.3"])), actor=operator)
    assert refused.value.code == "name_constraints"
    assert Certificate.objects.filter(issuer=ca, kind="end_entity").count() == 2


@pytest.mark.django_db
def test_the_delegated_ocsp_responder_of_a_constrained_ca_validates(root_ca, operator, tmp_path):
    ca = _constrained(root_ca, operator, ["example.com"])
    forget_responders()
    from django.utils import timezone

    from certificates.services.ocsp import _issuer

    responder, _key = current_responder(_issuer(ca.slug), timezone.now())
    assert _organization(responder.subject) == _organization(load_x509(ca.certificate).subject)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(write_pems(tmp_path / "root.pem", [load_x509(root_ca.certificate)])),
         "-untrusted", str(write_pems(tmp_path / "ca.pem", [load_x509(ca.certificate)])),
         str(write_pems(tmp_path / "responder.pem", [responder]))],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    forget_responders()


@pytest.mark.django_db
def test_a_sub_ca_outside_the_directory_subtree_is_refused(organization, operator):
    from certificates.services.authorities import create_root_ca

    deep_root = create_root_ca(organization=organization, common_name="Deep Root CA", root_password=ROOT_PASSWORD,
                               key_type="ec-p256", days=3650, path_length=None, actor=operator)
    ca = _constrained(deep_root, operator, ["example.com"], path_length=1)
    before = CertificateAuthority.objects.count()
    with pytest.raises(PolicyViolation) as refused:
        create_intermediate_ca(parent=ca, common_name="German Sub CA", country="DE", actor=operator)
    assert refused.value.code == "name_constraints"
    assert CertificateAuthority.objects.count() == before
    sub = create_intermediate_ca(parent=ca, common_name="Sub CA", actor=operator)
    leaf = issue_certificate(sub, IssuanceRequest(profile="server", csr=make_csr("a.example.com")), actor=operator)
    assert _organization(load_x509(leaf).subject) == _organization(load_x509(ca.certificate).subject)


def test_the_builder_refuses_a_subject_outside_the_directory_subtree():
    from certificates.crypto.policy import check_directory_subtrees, subject_within_directory_subtrees

    constraints = x509.NameConstraints(permitted_subtrees=[
        x509.DirectoryName(build_subject(None, "Example Corp", country="US"))], excluded_subtrees=None)
    with pytest.raises(PolicyError):
        check_directory_subtrees(build_subject("www.example.com"), [constraints])
    fixed = subject_within_directory_subtrees(build_subject("www.example.com"), [constraints])
    assert fixed == build_subject("www.example.com", "Example Corp", country="US")
    check_directory_subtrees(fixed, [constraints])
    assert subject_within_directory_subtrees(x509.Name([]), [constraints]) == x509.Name([])
    assert subject_within_directory_subtrees(fixed, [constraints]) == fixed
