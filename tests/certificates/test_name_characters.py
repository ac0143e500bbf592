"""CA names, common names and SAN values with bidi controls or invisible characters: refused by the
service, so by every channel (service, API, staff pages, admin, manage.py), with nothing changed."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from certificates.errors import ServiceError
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from tests.api.conftest import post_json, snapshot
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr

pytestmark = pytest.mark.django_db

RLO, LRI, ZWSP, PS = "\u202e", "\u2066", "\u200b", "\u2029"
EVIL_NAMES = [f"Acme {RLO}AC tooR", f"Acme{LRI} Root", f"Ac{ZWSP}me Root", f"Acme Root{PS}", "Acme\x1bRoot"]


@pytest.fixture
def global_admin(make_principal_client):
    return make_principal_client("admin")


@pytest.fixture
def password_env(monkeypatch) -> str:
    monkeypatch.setenv("TEST_ROOT_PASSWORD", ROOT_PASSWORD)
    return "TEST_ROOT_PASSWORD"


def assert_names_the_character(message: str) -> None:
    assert "U+" in message
    assert "must not contain" in message


# --- the service ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_the_service_refuses_such_a_root_or_intermediate_name(organization, root_ca, operator, data_dir: Path,
                                                               name: str):
    before = snapshot(data_dir)
    with pytest.raises(ServiceError) as refused:
        create_root_ca(organization=organization, common_name=name, root_password=ROOT_PASSWORD,
                       key_type="ec-p256", actor=operator)
    assert refused.value.code == "subject_invalid"
    assert_names_the_character(refused.value.message)
    with pytest.raises(ServiceError):
        create_intermediate_ca(parent=root_ca, common_name=name, root_password=ROOT_PASSWORD, actor=operator)
    assert snapshot(data_dir) == before


def test_the_service_refuses_such_name_constraints(root_ca, operator, data_dir: Path):
    before = snapshot(data_dir)
    for names in ([f"{PS}example.com"], [f"exa{RLO}mple.com"]):
        with pytest.raises(ServiceError) as refused:
            create_intermediate_ca(parent=root_ca, common_name="Constrained CA", root_password=ROOT_PASSWORD,
                                   permitted_names=names, actor=operator)
        assert refused.value.code == "name_constraints_invalid"
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("request_of", [
    lambda: IssuanceRequest(profile="server", common_name=f"www.{RLO}moc.elpmaxe", sans=("DNS:www.example.com",)),
    lambda: IssuanceRequest(profile="server", common_name=f"www.example.com{PS}"),
    lambda: IssuanceRequest(profile="server", sans=(f"DNS:pay{ZWSP}pal.example",)),
    lambda: IssuanceRequest(profile="server", sans=(f"DNS:www.example.com{PS}",)),
    lambda: IssuanceRequest(profile="server", csr=make_csr(f"www.{RLO}moc.elpmaxe", sans=["DNS:www.example.com"])),
    lambda: IssuanceRequest(profile="server", csr=make_csr("www.example.com"), common_name=f"www{LRI}.example.com"),
])
def test_the_service_refuses_such_a_common_name_or_san(intermediate_ca, operator, data_dir: Path, request_of):
    before = snapshot(data_dir)
    with pytest.raises(ServiceError) as refused:
        issue_certificate(intermediate_ca, request_of(), actor=operator)
    assert refused.value.code in ("subject_invalid", "san_invalid")
    assert_names_the_character(refused.value.message)
    assert snapshot(data_dir) == before


# --- the API -------------------------------------------------------------------------------------


def test_the_api_refuses_such_ca_names(global_admin, organization, root_ca, data_dir: Path):
    before = snapshot(data_dir)
    root = post_json(global_admin, "/api/v1/cas/", {"kind": "root", "name": EVIL_NAMES[0],
                                                    "organization": organization.slug,
                                                    "root_password": ROOT_PASSWORD, "key_type": "ec-p256"})
    intermediate = post_json(global_admin, "/api/v1/cas/", {"kind": "intermediate", "name": EVIL_NAMES[1],
                                                            "parent": root_ca.slug, "root_password": ROOT_PASSWORD})
    for response in (root, intermediate):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "subject_invalid"
        assert_names_the_character(response.json()["error"]["message"])
    assert snapshot(data_dir) == before


def test_the_api_refuses_such_common_names_and_sans(global_admin, intermediate_ca, data_dir: Path):
    before = snapshot(data_dir)
    for body in ({"common_name": f"www.{RLO}moc.elpmaxe", "key_type": "ec-p256"},
                 {"sans": [f"DNS:pay{ZWSP}pal.example"], "key_type": "ec-p256"},
                 {"csr": make_csr(f"www.{RLO}moc.elpmaxe", sans=["DNS:www.example.com"]).decode()}):
        response = post_json(global_admin, "/api/v1/certificates/",
                             {"ca": intermediate_ca.slug, "profile": "server", **body})
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] in ("subject_invalid", "san_invalid")
    assert snapshot(data_dir) == before


# --- the staff pages and the admin ---------------------------------------------------------------


def test_the_issuance_page_refuses_such_a_name(make_principal_client, organization, intermediate_ca, data_dir: Path):
    manager = make_principal_client("manager", organization)
    before = snapshot(data_dir)
    response = manager.post("/certificates/issue", {
        "ca": intermediate_ca.pk, "profile": "server", "key_source": "server", "csr": "",
        "common_name": f"www.{RLO}moc.elpmaxe", "sans": "", "key_type": "ec-p256", "days": ""})
    assert response.status_code == 400
    assert "RIGHT-TO-LEFT OVERRIDE" in response.content.decode()
    assert snapshot(data_dir) == before


def test_the_admin_refuses_such_a_root_ca_name(global_admin, organization, data_dir: Path):
    before = snapshot(data_dir)
    response = global_admin.post("/admin/certificates/certificateauthority/create-root/", {
        "organization": organization.pk, "common_name": EVIL_NAMES[0], "key_type": "ec-p256", "days": "3650",
        "root_password": ROOT_PASSWORD, "root_password_confirm": ROOT_PASSWORD})
    assert response.status_code == 400
    assert "RIGHT-TO-LEFT OVERRIDE" in response.content.decode()
    assert snapshot(data_dir) == before


# --- manage.py -----------------------------------------------------------------------------------


def test_the_commands_refuse_such_names(organization, root_ca, intermediate_ca, password_env, data_dir: Path):
    before = snapshot(data_dir)
    attempts = [
        ("init_root_ca", "--organization", organization.slug, "--name", EVIL_NAMES[0], "--key-type", "ec-p256",
         "--password-env", password_env),
        ("create_intermediate_ca", "--root", root_ca.slug, "--name", EVIL_NAMES[2], "--password-env", password_env),
        ("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "server", "--common-name",
         f"www.{RLO}moc.elpmaxe"),
        ("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "server", "--san",
         f"DNS:www.example.com{PS}"),
    ]
    for args in attempts:
        with pytest.raises(CommandError) as refused:
            call_command(*args, "--json", stdout=StringIO(), stderr=StringIO())
        message = str(refused.value)
        assert "\n" not in message
        assert_names_the_character(message)
    assert snapshot(data_dir) == before


def test_names_in_other_scripts_still_work(organization, operator):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = "Zürich Ελληνική 中国 سلطة Root"
    ca = create_root_ca(organization=organization, common_name=name, root_password=ROOT_PASSWORD,
                        key_type="ec-p256", actor=operator)
    assert ca.name == name
    certificate = x509.load_der_x509_certificate(bytes(ca.certificate.der))
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
