"""`manage.py generate_crl`: cron-friendly re-signing; roots only with their password; CRL numbers under
concurrency (several processes on PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.maintenance import delete_all_events
from certificates.models import CertificateAuthority, CertificateRevocationList
from tests.certificates.conftest import ROOT_PASSWORD
from tests.conftest import running_on_postgres
from tests.helpers import PROJECT_DIR


def run(*args: str) -> str:
    out = StringIO()
    call_command("generate_crl", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_all_signs_what_is_due_and_skips_the_root_without_its_password(root_ca, intermediate_ca):
    output = run("--all", "--force")
    assert f"Skipped root CA '{root_ca.slug}'" in output
    assert f"of '{intermediate_ca.slug}'" in output
    assert "delta CRL" in output
    full = CertificateRevocationList.objects.filter(ca=intermediate_ca, delta_base_number=None)
    assert full.count() == 2  # the first, signed when the CA was created, and the forced one
    newest = full.order_by("-number").first()
    assert CertificateRevocationList.objects.filter(ca=intermediate_ca, delta_base_number=newest.number).exists()
    assert "No CRL is due" in run("--all")  # fresh now: cron runs are cheap


@pytest.mark.django_db
def test_root_is_signed_with_its_password_and_json_is_one_object(root_ca, intermediate_ca, monkeypatch):
    monkeypatch.setenv("TEST_ROOT_PASSWORD", ROOT_PASSWORD)
    before = root_ca.crls.count()
    output = run("--ca", root_ca.slug, "--force", "--password-env", "TEST_ROOT_PASSWORD", "--json")
    payload = json.loads(output)
    assert payload["skipped"] == []
    assert [crl["ca"] for crl in payload["crls"]] == [root_ca.slug]  # a root: full CRL only, no delta
    assert root_ca.crls.count() == before + 1
    monkeypatch.setenv("TEST_ROOT_PASSWORD", ROOT_PASSWORD + "x")
    with pytest.raises(CommandError):
        run("--ca", root_ca.slug, "--force", "--password-env", "TEST_ROOT_PASSWORD")
    signed = root_ca.crls.count()
    with pytest.raises(CommandError, match="needs its password"):  # named alone without a password: a failure
        run("--ca", root_ca.slug, "--force", "--json")
    assert root_ca.crls.count() == signed
    with pytest.raises(CommandError):
        run("--ca", "no-such-ca")


WORKER = """
import sys, django
django.setup()
from audit.maintenance import delete_all_events
from certificates.models import CertificateAuthority
from certificates.services.crls import generate_delta_crl
from certificates.services.publication import generate_crl
from pki_project.actor import Actor
ca = CertificateAuthority.objects.select_related("certificate").get(pk=int(sys.argv[1]))
numbers = []
for _ in range(int(sys.argv[2])):
    numbers.append(generate_crl(ca, actor=Actor.operator("test")).number)
    numbers.append(generate_delta_crl(ca, actor=Actor.operator("test")).number)
print(" ".join(map(str, numbers)))
"""


@pytest.fixture
def committed_rows(transactional_db):
    """Rows the worker processes commit outlive the test: empty the append-only audit table afterwards."""
    yield
    delete_all_events()


@pytest.mark.postgres
def test_crl_numbers_are_unique_and_growing_across_processes(committed_rows, intermediate_ca, data_dir):
    if not running_on_postgres():
        pytest.skip("Concurrent CRL numbering across processes is tested on PostgreSQL (the make test second "
                    "pass); the in-memory SQLite test database is private to this process.")
    database = connection.settings_dict
    url = (f"postgres://{quote(database['USER'] or '', safe='')}@{database['HOST'] or '127.0.0.1'}:"
           f"{database['PORT'] or 5432}/{database['NAME']}")
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PKI_TEST_DATABASE_URL": url,
                   "PKI_DATA_DIR": str(data_dir)}
    # The CRLs the intermediate signed when it was created are not the workers'.
    first = set(CertificateRevocationList.objects.filter(ca=intermediate_ca).values_list("number", flat=True))
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(intermediate_ca.pk), "5"], cwd=PROJECT_DIR,
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    per_process = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        per_process.append([int(n) for n in out.split()])
    everything = [n for numbers in per_process for n in numbers]
    assert len(everything) == len(set(everything)) == 40
    for numbers in per_process:
        assert numbers == sorted(numbers)
    assert CertificateAuthority.objects.get(pk=intermediate_ca.pk).crl_number == max(everything)
    stored = list(CertificateRevocationList.objects.filter(ca=intermediate_ca).values_list("number", flat=True))
    assert sorted(set(stored) - first) == sorted(everything)
    assert max(first) < min(everything)
