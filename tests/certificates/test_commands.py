"""The operator's commands: one JSON object with --json, clear one-line errors, nothing changed on refusal."""

from __future__ import annotations

import json
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from certificates.models import Certificate, CertificateAuthority
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr


def run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


@pytest.fixture
def root_password_env(monkeypatch) -> str:
    monkeypatch.setenv("TEST_ROOT_PASSWORD", ROOT_PASSWORD)
    return "TEST_ROOT_PASSWORD"


@pytest.mark.django_db
def test_operator_builds_a_hierarchy_and_issues_from_the_command_line(organization, root_password_env,
                                                                     tmp_path: Path):
    root = run("init_root_ca", "--organization", organization.slug, "--name", "Ops Root", "--key-type", "ec-p256",
               "--password-env", root_password_env)
    assert set(root) == {"id", "slug", "serial"}
    inter = run("create_intermediate_ca", "--root", root["slug"], "--name", "Ops Issuing",
                "--password-env", root_password_env)
    assert CertificateAuthority.objects.get(pk=inter["id"]).parent_id == root["id"]

    csr_file = tmp_path / "req.pem"
    csr_file.write_bytes(make_csr("api.example.com"))
    issued = run("issue_certificate", "--ca", inter["slug"], "--profile", "server", "--csr", str(csr_file),
                 "--out", str(tmp_path / "out"))
    assert Path(issued["certificate"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert Path(issued["chain"]).read_bytes().count(b"BEGIN CERTIFICATE") == 2

    generated = run("issue_certificate", "--ca", inter["slug"], "--profile", "client", "--common-name", "bot",
                    "--san", "DNS:bot.example.com", "--key-type", "ec-p384", "--out", str(tmp_path / "bot"))
    opened = subprocess.run(["openssl", "pkcs12", "-in", generated["pkcs12"], "-nokeys",
                             "-passin", f"pass:{generated['pkcs12_password']}"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert opened.returncode == 0, opened.stderr

    renewed = run("renew_certificate", issued["serial"], "--revoke-old")
    assert renewed["predecessor"] == issued["serial"]
    revoked = run("revoke_certificate", renewed["serial"], "--reason", "keyCompromise",
                  "--invalidity-date", "2026-01-01T00:00:00Z")
    assert revoked["revoked"] == [renewed["serial"]]

    listing = run("list_certificates", "--status", "revoked", "--ca", inter["slug"])
    assert {row["serial"] for row in listing["certificates"]} == {issued["serial"], renewed["serial"]}
    valid = run("list_certificates", "--status", "valid", "--expiring-within", "400")
    assert generated["serial"] in {row["serial"] for row in valid["certificates"]}


@pytest.mark.django_db
def test_revoking_an_intermediate_needs_the_root_password(intermediate_ca, root_password_env, monkeypatch):
    monkeypatch.setenv("WRONG_PASSWORD", "not the root password at all")
    with pytest.raises(CommandError, match="could not be unlocked"):
        run("revoke_certificate", intermediate_ca.certificate.serial, "--reason", "cessationOfOperation",
            "--password-env", "WRONG_PASSWORD")
    intermediate_ca.certificate.refresh_from_db()
    assert not intermediate_ca.certificate.is_revoked
    run("revoke_certificate", intermediate_ca.certificate.serial, "--reason", "cessationOfOperation",
        "--password-env", root_password_env)
    intermediate_ca.certificate.refresh_from_db()
    assert intermediate_ca.certificate.is_revoked


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["issue_certificate", "--ca", "no-such-ca", "--profile", "server", "--common-name", "a.example.com"],
         "No CA 'no-such-ca'"),
        (["issue_certificate", "--ca", "{ca}", "--profile", "server", "--csr", "{garbage}"],
         "not a valid PEM or DER certificate signing request"),
        (["issue_certificate", "--ca", "{ca}", "--profile", "server", "--common-name", "a.example.com",
          "--days", "5000"], "allows between 1 and"),
        (["revoke_certificate", "ffff", "--reason", "keyCompromise"], "No certificate 'ffff'"),
        (["revoke_certificate", "1", "--reason", "keyCompromise", "--invalidity-date", "yesterday"],
         "Cannot read the invalidity date"),
        (["create_intermediate_ca", "--root", "{root}", "--name", "X"], "No root password given"),
    ],
)
def test_bad_command_input_gives_a_clear_error_and_changes_nothing(arguments, message, intermediate_ca, tmp_path):
    garbage = tmp_path / "garbage.csr"
    garbage.write_bytes(b"\x00 not a certificate request")
    arguments = [a.format(ca=intermediate_ca.slug, root=intermediate_ca.parent.slug, garbage=garbage)
                 for a in arguments]
    before = (Certificate.objects.count(), CertificateAuthority.objects.count())
    with pytest.raises(CommandError, match=message):
        call_command(*arguments, stdout=StringIO(), stderr=StringIO())
    assert (Certificate.objects.count(), CertificateAuthority.objects.count()) == before


def test_commands_refuse_a_password_on_the_command_line() -> None:
    """There is no --password option at all: a secret in argv lands in shell history and `ps`."""
    with pytest.raises(CommandError):
        call_command("init_root_ca", "--organization", "x", "--name", "y", "--password", "secret")


@pytest.mark.django_db
@pytest.mark.parametrize("reference", ["³", "²²", "9" * 30, "-1", " "])
def test_odd_references_are_not_found_never_a_crash(reference, intermediate_ca):
    from certificates.errors import NotFound
    from certificates.selectors import get_ca, get_certificate

    with pytest.raises(NotFound):
        get_ca(reference)
    with pytest.raises(NotFound):
        get_certificate(reference)


@pytest.mark.django_db
def test_a_number_that_is_one_cas_id_and_anothers_slug_names_the_lower_id(root_ca, intermediate_ca, operator):
    from certificates.selectors import get_ca
    from certificates.services.authorities import create_intermediate_ca
    from tests.certificates.conftest import ROOT_PASSWORD

    numbered = create_intermediate_ca(parent=root_ca, common_name="Numbered CA", root_password=ROOT_PASSWORD,
                                      slug=str(intermediate_ca.pk), actor=operator)
    assert numbered.slug == str(intermediate_ca.pk)
    assert numbered.pk > intermediate_ca.pk
    found = get_ca(numbered.slug)  # matches the older CA by id and the newer one by slug
    assert found == intermediate_ca
    assert found.certificate.der == intermediate_ca.certificate.der  # loaded with what issuance uses
    assert get_ca(numbered.pk) == numbered
