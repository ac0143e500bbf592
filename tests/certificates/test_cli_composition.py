"""Commands that compose in a pipeline: `-` for stdin/stdout, one JSON object (result or error) under `--json`,
one date format, and a `list_certificates` that sorts, filters and pages as its help says."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.helpers import PROJECT_DIR, run_manage
from tests.reliability.installations import ROOT_PASSWORD as INSTALLATION_ROOT_PASSWORD
from tests.reliability.installations import Installation, sqlite_installation

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def run(*args: str) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def text(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- in process ------------------------------------------------------------------------------------


@pytest.fixture
def inventory(intermediate_ca, other_organization, operator):
    """Five certificates: three server names (one renewed), one client, one in another organization's CA."""
    from certificates.services.authorities import create_intermediate_ca, create_root_ca

    issue = lambda ca, profile, name, days: issue_certificate(  # noqa: E731
        ca, IssuanceRequest(profile=profile, csr=make_csr(name), days=days), actor=operator)
    made = {"alpha": issue(intermediate_ca, "server", "alpha.example.com", 30),
            "beta": issue(intermediate_ca, "server", "beta.example.com", 10),
            "gamma": issue(intermediate_ca, "client", "gamma.example.com", 20)}
    made["alpha2"] = renew_certificate(made["alpha"], actor=operator, days=40)
    root = create_root_ca(organization=other_organization, common_name="Other Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=operator)
    other = create_intermediate_ca(parent=root, common_name="Other Issuing", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", days=1825, path_length=0, actor=operator)
    made["other"] = issue(other, "server", "other.example.net", 15)
    return made


def _serials(listing: dict) -> list[str]:
    return [row["serial"] for row in listing["certificates"]]


@pytest.mark.django_db
def test_the_default_order_is_newest_first_and_the_total_is_true(inventory):
    listing, _ = run("list_certificates", "--json", "--limit", "2")
    assert listing["total"] == 9  # five end-entity certificates and four CA certificates
    assert listing["count"] == 2
    assert listing["next_offset"] == 2
    assert listing["certificates"][0]["serial"] == inventory["other"].serial
    assert listing["certificates"][1]["common_name"] == "Other Issuing"
    everything, _ = run("list_certificates", "--json", "--limit", "100")
    ids = [row["id"] for row in everything["certificates"]]
    assert ids == sorted(ids, reverse=True)
    assert everything["next_offset"] is None
    page_two, _ = run("list_certificates", "--json", "--limit", "2", "--offset", "2")
    assert [row["id"] for row in page_two["certificates"]] == ids[2:4]


@pytest.mark.django_db
def test_a_cut_page_is_reported_not_silent(inventory):
    out, err = text("list_certificates", "--limit", "3")
    assert "1-3 of 9 certificate(s)." in out
    assert "--offset 3" in err
    out, err = text("list_certificates", "--format", "jsonl", "--limit", "3")
    assert len(out.splitlines()) == 3
    assert "Showing 3 of 9" in err


@pytest.mark.django_db
def test_sort_by_expiry_soonest_first(inventory):
    listing, _ = run("list_certificates", "--json", "--sort", "expiry", "--profile", "server")
    assert _serials(listing) == [inventory[name].serial for name in ("beta", "other", "alpha", "alpha2")]


@pytest.mark.django_db
def test_filters_by_organization_profile_search_and_latest_renewal(inventory, organization, other_organization):
    only_other, _ = run("list_certificates", "--json", "--organization", other_organization.slug, "--limit", "100")
    assert inventory["other"].serial in _serials(only_other)
    assert {row["organization"] for row in only_other["certificates"]} == {other_organization.slug}
    clients, _ = run("list_certificates", "--json", "--profile", "client")
    assert _serials(clients) == [inventory["gamma"].serial]
    searched, _ = run("list_certificates", "--json", "--search", "alpha.example")
    assert set(_serials(searched)) == {inventory["alpha"].serial, inventory["alpha2"].serial}
    latest, _ = run("list_certificates", "--json", "--search", "alpha.example", "--latest-only")
    assert _serials(latest) == [inventory["alpha2"].serial]
    assert latest["certificates"][0]["predecessor"] == inventory["alpha"].serial
    assert searched["total"] == 2
    assert latest["total"] == 1


@pytest.mark.django_db
def test_csv_and_jsonl_carry_the_same_rows(inventory):
    out, _ = text("list_certificates", "--format", "csv", "--profile", "server", "--sort", "name")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["common_name"] for row in rows] == ["alpha.example.com", "alpha.example.com", "beta.example.com",
                                                    "other.example.net"]
    assert rows[0]["sans"] == "DNS:alpha.example.com"
    for row in rows:
        datetime.strptime(row["not_after"], ISO_UTC)
    lines, _ = text("list_certificates", "--format", "jsonl", "--profile", "server", "--sort", "name")
    assert [json.loads(line)["serial"] for line in lines.splitlines()] == [row["serial"] for row in rows]


@pytest.mark.django_db
def test_bad_list_arguments_are_refused(inventory):
    with pytest.raises(CommandError, match="No CA 'nope'"):
        text("list_certificates", "--ca", "nope")
    with pytest.raises(CommandError, match="--offset"):
        text("list_certificates", "--offset", "-1")
    with pytest.raises(CommandError, match="--format json"):
        text("list_certificates", "--json", "--format", "csv")


@pytest.mark.django_db
def test_issue_and_renew_json_carry_pem_and_chain_and_renew_writes_files(intermediate_ca, tmp_path):
    csr = tmp_path / "req.pem"
    csr.write_bytes(make_csr("pipe.example.com"))
    issued, _ = run("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "server", "--csr", str(csr),
                    "--json")
    assert issued["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert issued["chain_pem"].count("BEGIN CERTIFICATE") == 2
    for field in ("not_before", "not_after"):
        datetime.strptime(issued[field], ISO_UTC)
    renewed, _ = run("renew_certificate", str(issued["id"]), "--out", str(tmp_path / "renewed"), "--hours", "48",
                     "--json")
    assert renewed["predecessor"] == issued["serial"]
    assert Path(renewed["certificate"]).read_text() == renewed["certificate_pem"]
    assert Path(renewed["chain"]).read_text() == renewed["chain_pem"]
    lifetime = datetime.strptime(renewed["not_after"], ISO_UTC) - datetime.strptime(renewed["not_before"], ISO_UTC)
    assert lifetime.total_seconds() <= 48 * 3600 + 3600  # backdating allowance at most an hour
    out, _ = text("renew_certificate", str(renewed["id"]))
    assert "Z." in out.splitlines()[0]


@pytest.mark.django_db
def test_a_root_crl_without_its_password_fails(root_ca, monkeypatch):
    from certificates.models import CertificateRevocationList

    before = CertificateRevocationList.objects.filter(ca=root_ca).count()
    with pytest.raises(CommandError, match="needs its password"):
        text("generate_crl", "--ca", root_ca.slug, "--force")
    assert CertificateRevocationList.objects.filter(ca=root_ca).count() == before
    monkeypatch.setenv("THE_ROOT_PASSWORD", ROOT_PASSWORD)
    signed, _ = run("generate_crl", "--ca", root_ca.slug, "--force", "--password-env", "THE_ROOT_PASSWORD", "--json")
    assert signed["crls"][0]["ca"] == root_ca.slug
    datetime.strptime(signed["crls"][0]["next_update"], ISO_UTC)


# --- real processes: stdin, stdout and exit statuses -----------------------------------------------


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> Installation:
    instance = sqlite_installation(tmp_path_factory.mktemp("cli-pipes"))
    instance.ok("create_organization", "--name", "Pipes", "--slug", "pipes")
    created = run_manage("init_root_ca", "--organization", "pipes", "--name", "Pipes Root", "--slug", "pipes-root",
                         "--key-type", "ec-p256", "--password-file", "-", env=instance.env,
                         input_text=INSTALLATION_ROOT_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    instance.ok("create_intermediate_ca", "--root", "pipes-root", "--name", "Pipes Issuing", "--slug", "pipes-issuing",
                "--password-env", "ROOT_PASSWORD")
    return instance


def _one_json_object(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_a_csr_from_stdin_and_the_certificate_in_the_json(installation, tmp_path):
    result = run_manage("issue_certificate", "--ca", "pipes-issuing", "--profile", "server", "--csr", "-", "--json",
                        env=installation.env, input_text=make_csr("stdin.example.com").decode())
    assert result.returncode == 0, result.stderr
    issued = _one_json_object(result.stdout)
    (tmp_path / "leaf.pem").write_text(issued["certificate_pem"])
    (tmp_path / "chain.pem").write_text(issued["chain_pem"])
    root = run_manage("list_certificates", "--format", "jsonl", "--search", "Pipes Root", env=installation.env)
    assert root.returncode == 0, root.stderr
    verified = subprocess.run(["openssl", "verify", "-partial_chain", "-CAfile", str(tmp_path / "chain.pem"),
                               str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize(("args", "code", "status"), [
    (("issue_certificate", "--ca", "no-such-ca", "--profile", "server", "--common-name", "x.example.com"),
     "not_found", 1),
    (("list_certificates", "--sort", "sideways"), "usage", 2),
    (("generate_crl", "--ca", "pipes-root"), "root_password_required", 1),
    (("renew_certificate", "999999"), "not_found", 1),
])
def test_json_failures_are_one_error_object_and_a_non_zero_exit(installation, args, code, status):
    result = run_manage(*args, "--json", env=installation.env, input_text="")
    assert result.returncode == status, (result.stdout, result.stderr)
    error = _one_json_object(result.stdout)["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert "Traceback" not in result.stderr


def test_generate_crl_for_a_root_reads_the_password_from_stdin(installation):
    refused = run_manage("generate_crl", "--ca", "pipes-root", "--force", env=installation.env, input_text="")
    assert refused.returncode != 0
    assert "needs its password" in refused.stderr
    signed = run_manage("generate_crl", "--ca", "pipes-root", "--force", "--password-file", "-", "--json",
                        env=installation.env, input_text=INSTALLATION_ROOT_PASSWORD + "\n")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert _one_json_object(signed.stdout)["crls"][0]["ca"] == "pipes-root"


def test_backup_to_stdout_and_audit_export_through_a_pipe(installation, tmp_path):
    backup = subprocess.run([sys.executable, str(PROJECT_DIR / "manage.py"), "backup_database", "--output", "-"],
                            env=installation.env, cwd=PROJECT_DIR, capture_output=True, timeout=240, check=False)
    assert backup.returncode == 0, backup.stderr
    with zipfile.ZipFile(io.BytesIO(backup.stdout)) as archive:
        assert "manifest.json" in archive.namelist()
    assert b"Backup written to standard output" in backup.stderr
    exported = run_manage("export_audit_log", "--output", "-", env=installation.env)
    assert exported.returncode == 0, exported.stderr
    verified = run_manage("verify_audit_log", "--export", "-", "--json", env=installation.env,
                          input_text=exported.stdout)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert _one_json_object(verified.stdout)["ok"] is True
