"""GET /metrics: the PKI's state and traffic in Prometheus' text format, for the roles rbac.json names.

Read back with prometheus-client's own parser; the live test scrapes a gunicorn with two workers,
whose traffic counters must add up across them (multiprocess mode).
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.revocation import revoke_certificate
from pki_project.actor import Actor
from tests.certificates.conftest import ROOT_PASSWORD

OPERATOR = Actor.operator("tests")


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a scrape."""
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _pki(organization, slug: str):
    root = create_root_ca(organization=organization, common_name=f"{slug} Root", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=1, actor=OPERATOR, slug=f"{slug}-root")
    issuing = create_intermediate_ca(parent=root, common_name=f"{slug} Issuing", root_password=ROOT_PASSWORD,
                                     key_type="ec-p256", days=1825, path_length=0, actor=OPERATOR,
                                     slug=f"{slug}-issuing")
    return root, issuing


def _issue(ca, name: str, days: int):
    return issue_certificate(ca, IssuanceRequest(profile="server", common_name=name, sans=[f"DNS:{name}"],
                                                 key_type="ec-p256", days=days), actor=OPERATOR)


@pytest.fixture
def state(organization, other_organization):
    _, issuing = _pki(organization, "ours")
    _, theirs = _pki(other_organization, "theirs")
    soon, _later = _issue(issuing, "soon.example.com", 5), _issue(issuing, "later.example.com", 60)
    revoke_certificate(_issue(issuing, "gone.example.com", 60), reason="superseded", actor=OPERATOR)
    _issue(theirs, "their.example.com", 20)
    generate_crl(issuing, actor=OPERATOR)
    return {"issuing": issuing, "theirs": theirs, "soon": soon}


def test_a_global_admin_scrapes_every_organization_and_the_traffic(make_principal_client, state, organization,
                                                                     other_organization):
    client = make_principal_client("admin")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content)
    ours = (("ca", "ours-issuing"), ("organization", organization.slug))

    def certificates(status: str, labels=ours) -> float:
        return found[("pki_certificates", tuple(sorted((*labels, ("status", status)))))]

    assert (certificates("valid"), certificates("revoked"), certificates("expired")) == (2, 1, 0)
    theirs = (("ca", "theirs-issuing"), ("organization", other_organization.slug))
    assert certificates("valid", theirs) == 1
    expiring = {days: found[("pki_certificates_expiring", tuple(sorted((*ours, ("within_days", days)))))]
                for days in ("7", "30", "90")}
    assert expiring == {"7": 1, "30": 1, "90": 2}
    age = found[("pki_crl_age_seconds", ours)]
    left = found[("pki_crl_next_update_seconds", ours)]
    assert 0 <= age < 600
    assert 0 < left <= state["issuing"].crl_validity_hours * 3600
    assert found[("pki_audit_chain_length", ())] > 0
    # the scrape itself went through the middleware before this one: traffic is counted
    second = samples(client.get("/metrics").content)
    assert second[("pki_http_requests_total", (("method", "GET"), ("route", "metrics"), ("status", "2xx")))] >= 1


def test_an_organization_admin_sees_only_its_organization(make_principal_client, state, organization,
                                                           other_organization):
    found = samples(make_principal_client("admin", organization).get("/metrics").content)
    organizations = {dict(labels).get("organization") for _name, labels in found}
    assert organizations == {organization.slug}
    assert not [name for name, _labels in found if name.startswith(("pki_http", "pki_audit"))]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["manager", "user"])
def test_other_roles_and_anonymous_callers_are_refused(make_principal_client, client, organization, role):
    assert make_principal_client(role, organization).get("/metrics").status_code == 403
    assert client.get("/metrics")["Location"] == "/auth/login?next=%2Fmetrics"  # a browser
    refused = client.get("/metrics", headers={"Authorization": "Bearer not-a-key"})  # a scraper with a bad key
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"


def test_an_ocsp_answer_is_counted_by_route(make_principal_client, state):
    issuing, leaf = state["issuing"], state["soon"]
    certificate = x509.load_der_x509_certificate(bytes(leaf.der))
    issuer = x509.load_der_x509_certificate(bytes(issuing.certificate.der))
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()  # noqa: S303
    encoded = base64.b64encode(request.public_bytes(serialization.Encoding.DER)).decode()
    client = make_principal_client("admin")
    before = samples(client.get("/metrics").content)
    key = ("pki_http_requests_total", (("method", "GET"), ("route", "pki-ocsp-get"), ("status", "2xx")))
    for _ in range(3):
        assert client.get(f"/pki/ocsp/{issuing.slug}/{encoded}").status_code == 200
    after = samples(client.get("/metrics").content)
    assert after[key] - before.get(key, 0) == 3
    count = ("pki_http_request_duration_seconds_count", (("route", "pki-ocsp-get"),))
    assert after[count] - before.get(count, 0) == 3


def test_the_stale_crl_shows_negative_time_left(make_principal_client, state, organization):
    from certificates.models import CertificateRevocationList

    crl = CertificateRevocationList.objects.filter(ca=state["issuing"]).order_by("-number").first()
    past = timezone.now() - timedelta(days=3)
    CertificateRevocationList.objects.filter(pk=crl.pk).update(this_update=past, next_update=past + timedelta(hours=1))
    found = samples(make_principal_client("admin").get("/metrics").content)
    assert found[("pki_crl_next_update_seconds", (("ca", "ours-issuing"), ("organization", organization.slug)))] < 0


# --- A live gunicorn: two workers, one sum -------------------------------------------------------------


@pytest.mark.slow
def test_traffic_adds_up_across_gunicorn_workers(tmp_path):
    from tests.helpers import PROJECT_DIR
    from tests.trust.live import live_pki

    with live_pki("sqlite", tmp_path) as live:
        for _ in range(40):  # new connections: the two workers share them
            assert live.request("GET", "/health").status == 200
        scrape = live.request("GET", "/metrics", key="global-admin")
        assert scrape.status == 200
        found = samples(scrape.body)
        assert found[("pki_http_requests_total", (("method", "GET"), ("route", "health"), ("status", "2xx")))] >= 40
        pids = {line.split()[-1] for line in (live.directory / f"gunicorn-{live.port}.log").read_text().splitlines()
                if "Booting worker with pid" in line}
        assert len(pids) == 2
        arbiter = str(live.server.pid)
        shared = PROJECT_DIR / "tmp" / "prometheus" / arbiter  # the server's own multiprocess directory
        written = {path.stem.rsplit("_", 1)[-1] for path in shared.glob("counter_*.db")}
        assert written <= pids
        assert written, "the workers count in the shared directory"
        organization_scrape = samples(live.request("GET", "/metrics", key="admin").body)
        assert {dict(labels).get("organization") for _name, labels in organization_scrape} == {"acme"}
        assert live.request("GET", "/metrics", key="manager").status == 403
    assert not shared.exists(), "the stopped server's metrics directory is removed"
