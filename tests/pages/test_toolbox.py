"""The toolbox: decoder (all roles), CRL regeneration (admins and managers), backup/restore controls (admins)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.files.uploadedfile import SimpleUploadedFile

from certificates.models import CertificateRevocationList
from certificates.services.records import load_x509
from tests.certificates.csrs import make_csr
from tests.pages.conftest import ROOT_PASSWORD

pytestmark = pytest.mark.django_db


def test_decoding_a_known_certificate(clients, leaf):
    pem = load_x509(leaf).public_bytes(Encoding.PEM).decode()
    response = clients["user"].post("/toolbox/decode", {"text": pem})
    page = response.content.decode()
    assert response.status_code == 200
    assert "This is an end-entity certificate" in page
    assert "It is valid for these names: DNS:www.example.com." in page
    assert f'href="/certificates/{leaf.pk}"' in page
    assert "This PKI issued it" in page


def test_decoding_another_organizations_certificate_does_not_link_it(clients, other_leaf):
    pem = load_x509(other_leaf).public_bytes(Encoding.PEM).decode()
    page = clients["manager"].post("/toolbox/decode", {"text": pem}).content.decode()
    assert "This PKI has no record of it" in page
    assert f"/certificates/{other_leaf.pk}" not in page


def test_decoding_a_csr_file_in_der(clients):
    der = x509.load_pem_x509_csr(make_csr("shop.example.com", sans=["DNS:shop.example.com", "IP:192.0.2.1"]))
    upload = SimpleUploadedFile("shop.csr", der.public_bytes(Encoding.DER))
    page = clients["user"].post("/toolbox/decode", {"text": "", "file": upload}).content.decode()
    assert "This is a certificate signing request (CSR) for “shop.example.com”" in page
    assert "Its signature is valid: the requester holds the private key." in page
    assert "DNS:shop.example.com, IP:192.0.2.1" in page


@pytest.mark.parametrize(("data", "message"), [
    ({"text": ""}, "Paste a certificate or a CSR, or choose a file."),
    ({"text": "hello world"}, "This is not a certificate or a certificate signing request"),
    ({"text": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "This is not a certificate"),
])
def test_decoder_bad_input_is_explained(clients, data, message):
    response = clients["user"].post("/toolbox/decode", data)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_toolbox_is_role_shaped(clients, hierarchy):
    user_page = clients["user"].get("/toolbox").content.decode()
    assert "Decode a certificate or CSR" in user_page
    assert "Regenerate a CRL" not in user_page
    assert "/admin/backup/database" not in user_page
    manager_page = clients["manager"].get("/toolbox").content.decode()
    assert "Regenerate a CRL" in manager_page
    assert "/admin/backup/database" not in manager_page
    # a backup holds every organization's data: its controls are for global admins only
    assert "/admin/backup/database" not in clients["admin"].get("/toolbox").content.decode()
    admin_page = clients["global_admin"].get("/toolbox").content.decode()
    assert 'href="/admin/backup/database"' in admin_page
    assert 'action="/admin/restore/database" enctype="multipart/form-data"' in admin_page
    assert 'name="backup"' in admin_page
    assert '<label for="id_backup">' in admin_page


def _crl_count(ca) -> int:
    return CertificateRevocationList.objects.filter(ca=ca).count()


def test_regenerate_an_intermediate_crl(clients, hierarchy):
    before = _crl_count(hierarchy.intermediate)
    response = clients["manager"].post("/toolbox/crl", {"ca": hierarchy.intermediate.pk}, follow=True)
    assert f"of {hierarchy.intermediate.name} signed with 0 entries" in response.content.decode()
    assert _crl_count(hierarchy.intermediate) == before + 2  # a full CRL and a delta CRL against it


def test_a_root_crl_needs_the_root_password(clients, hierarchy):
    root = hierarchy.root
    before = _crl_count(root)
    missing = clients["admin"].post("/toolbox/crl", {"ca": root.pk})
    assert missing.status_code == 400
    assert "The root password is required" in missing.content.decode()
    wrong = clients["admin"].post("/toolbox/crl", {"ca": root.pk, "root_password": "not the password 1234"})
    assert wrong.status_code == 403
    assert "The CA key could not be unlocked." in wrong.content.decode()
    assert "not the password 1234" not in wrong.content.decode()
    assert _crl_count(root) == before
    right = clients["admin"].post("/toolbox/crl", {"ca": root.pk, "root_password": ROOT_PASSWORD}, follow=True)
    assert f"of {root.name} signed" in right.content.decode()
    assert _crl_count(root) == before + 1


def test_crl_regeneration_is_refused_to_users_and_other_organizations(clients, hierarchy):
    before = _crl_count(hierarchy.intermediate)
    assert clients["user"].post("/toolbox/crl", {"ca": hierarchy.intermediate.pk}).status_code == 403
    response = clients["other_manager"].post("/toolbox/crl", {"ca": hierarchy.intermediate.pk})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert _crl_count(hierarchy.intermediate) == before


def test_a_manager_signs_no_root_crl_from_the_toolbox(clients, hierarchy):
    root = hierarchy.root
    page = clients["manager"].get("/toolbox").content.decode()
    assert f'value="{hierarchy.intermediate.pk}"' in page
    assert f'value="{root.pk}"' not in page  # not offered
    before = _crl_count(root)
    response = clients["manager"].post("/toolbox/crl", {"ca": root.pk, "root_password": ROOT_PASSWORD})
    assert response.status_code == 403  # and refused when asked by hand, as the API refuses it
    text = response.content.decode()
    assert f"No CRL was signed for {root.name}: Only an admin may sign a root CA&#x27;s CRL." in text
    assert ROOT_PASSWORD not in text
    assert _crl_count(root) == before
    assert f'value="{root.pk}"' in clients["admin"].get("/toolbox").content.decode()
