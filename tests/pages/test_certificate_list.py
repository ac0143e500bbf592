"""The staff certificate list: days left, search by name/SAN/serial, sort, CSV export, renew on expiring rows,
confirmation before renewing, and error pages that keep the navigation."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.utils import timezone

from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest, issue_certificate
from pki_project.actor import Actor

pytestmark = pytest.mark.django_db


def _issue(ca, common_name: str, *, days: int = 100, profile: str = "server", sans=None) -> Certificate:
    sans = (f"DNS:{common_name}",) if sans is None else sans
    return issue_certificate(ca, IssuanceRequest(profile=profile, common_name=common_name, sans=sans, days=days),
                             actor=Actor.operator("tests"))


@pytest.fixture
def certificates(hierarchy) -> dict[str, Certificate]:
    ca = hierarchy.intermediate
    return {
        "soon": _issue(ca, "soon.example.com", days=10),
        "later": _issue(ca, "later.example.com", days=150),
        "ip": _issue(ca, "ip.example.com", sans=("DNS:ip.example.com", "IP:192.0.2.7")),
        "formula": _issue(ca, "=1+2", profile="client", sans=()),
    }


@pytest.fixture
def browsers(make_principal_client, organization, other_organization) -> dict[str, Client]:
    return {role: make_principal_client(role, organization, via="cookie") for role in ("user", "manager", "admin")} | {
        "other_manager": make_principal_client("manager", other_organization, via="cookie"), "anonymous": Client()}


def _rows(response) -> list[int]:
    """The certificate ids in the list, in the order shown."""
    import re

    return [int(pk) for pk in re.findall(r'data-certificate="(\d+)"', response.content.decode())]


def test_the_list_shows_days_left_full_serials_and_iso_utc_dates(browsers, certificates):
    response = browsers["user"].get("/certificates")
    assert response.status_code == 200
    page = response.content.decode()
    soon = certificates["soon"]
    assert f'<code class="wrap serial">{soon.serial}</code>' in page  # the whole serial, never cut
    left = (soon.not_after - timezone.now()).days
    assert left in (9, 10)
    assert f'<span class="days-left days-soon">{left}</span>' in page  # within the 30-day window, not yet 7
    assert (f'<time datetime="{soon.not_after:%Y-%m-%dT%H:%M:%SZ}"><span>{soon.not_after:%Y-%m-%d}</span> '
            f'<span>{soon.not_after:%H:%M} UTC</span></time>') in page
    assert 'href="/certificates" aria-current="page"' in page  # the navigation leads here, not to the admin


def test_another_organization_sees_none_of_them(browsers, certificates):
    response = browsers["other_manager"].get("/certificates?q=example")
    assert _rows(response) == []
    export = browsers["other_manager"].get("/certificates/export.csv").content.decode()
    assert all(certificate.serial not in export for certificate in certificates.values())


def test_the_default_sort_is_soonest_expiry_and_columns_sort_both_ways(browsers, certificates, hierarchy):
    ids = [c.pk for c in sorted(Certificate.objects.filter(organization=hierarchy.root.organization),
                                key=lambda c: (c.not_after, c.pk))]
    assert _rows(browsers["user"].get("/certificates")) == ids
    assert _rows(browsers["user"].get("/certificates?sort=-expires")) == ids[::-1]
    by_name = _rows(browsers["user"].get("/certificates?sort=name&kind=end_entity"))
    names = [Certificate.objects.get(pk=pk).common_name for pk in by_name]
    assert names == sorted(names)


@pytest.mark.parametrize(("query", "expected"), [
    ("soon.example", ["soon"]),
    ("SOON.EXAMPLE.COM", ["soon"]),
    ("192.0.2.7", ["ip"]),  # an IP SAN
    ("DNS:ip.example", ["ip"]),
])
def test_search_by_name_or_san(browsers, certificates, query, expected):
    shown = _rows(browsers["user"].get("/certificates", {"q": query}))
    assert shown == [certificates[name].pk for name in expected]


def test_search_by_serial_as_typed_with_colons_and_capitals(browsers, certificates):
    serial = certificates["later"].serial
    typed = ":".join(serial[i:i + 2] for i in range(0, 16, 2)).upper()
    assert _rows(browsers["user"].get("/certificates", {"q": typed})) == [certificates["later"].pk]
    assert _rows(browsers["user"].get("/certificates", {"q": f"0x{serial[4:20]}"})) == [certificates["later"].pk]


def test_no_match_says_so(browsers, certificates):
    response = browsers["user"].get("/certificates", {"q": "nothing-like-this"})
    assert _rows(response) == []
    assert "No certificate matches." in response.content.decode()


def test_unknown_filters_and_pages_fall_back_to_the_defaults(browsers, certificates):
    response = browsers["user"].get("/certificates", {"sort": "password", "status": "nope", "expiring": "-1",
                                                      "kind": "x", "page": "abc", "q": "x" * 5000})
    assert response.status_code == 200
    assert _rows(browsers["user"].get("/certificates", {"sort": "password", "page": "999"})) == \
        _rows(browsers["user"].get("/certificates"))


def test_renew_is_offered_on_expiring_rows_to_operators_only(browsers, certificates):
    soon, later = certificates["soon"], certificates["later"]
    manager_page = browsers["manager"].get("/certificates").content.decode()
    assert f'href="/certificates/{soon.pk}/renew"' in manager_page
    assert f'href="/certificates/{later.pk}/renew"' not in manager_page
    assert "/renew" not in browsers["user"].get("/certificates").content.decode()
    expiring = _rows(browsers["manager"].get("/certificates?expiring=30"))
    assert soon.pk in expiring
    assert later.pk not in expiring


def test_renewal_asks_first_and_changes_nothing_until_confirmed(browsers, certificates):
    soon = certificates["soon"]
    count = Certificate.objects.count()
    confirm = browsers["manager"].get(f"/certificates/{soon.pk}/renew")
    assert confirm.status_code == 200
    assert "Renew soon.example.com?" in confirm.content.decode()
    assert Certificate.objects.count() == count
    renewed = browsers["manager"].post(f"/certificates/{soon.pk}/renew")
    assert renewed.status_code == 302
    successor = Certificate.objects.get(predecessor=soon)
    assert renewed["Location"] == f"/certificates/{successor.pk}"
    again = browsers["manager"].get(f"/certificates/{soon.pk}/renew").content.decode()
    assert "already renewed" in again
    assert "Renew this certificate" not in again
    listed = browsers["manager"].get("/certificates").content.decode()
    assert f'href="/certificates/{soon.pk}/renew"' not in listed  # renewed once: renew its successor
    assert f'href="/certificates/{successor.pk}/renew"' not in listed  # the successor has 100 days


def test_the_csv_export_holds_the_selection_with_formulas_defused(browsers, certificates):
    response = browsers["user"].get("/certificates/export.csv", {"kind": "end_entity"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="certificates-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_id = {int(row["id"]): row for row in rows}
    assert set(by_id) == {c.pk for c in certificates.values()}
    soon = by_id[certificates["soon"].pk]
    assert soon["serial"] == certificates["soon"].serial
    assert soon["status"] == "valid"
    assert soon["not_after"] == f"{certificates['soon'].not_after:%Y-%m-%d %H:%M} UTC"
    assert int(soon["days_left"]) in (9, 10)
    assert by_id[certificates["ip"].pk]["sans"] == "DNS:ip.example.com IP:192.0.2.7"
    assert by_id[certificates["formula"].pk]["common_name"] == "'=1+2"  # a spreadsheet shows it, never runs it
    searched = list(csv.DictReader(io.StringIO(
        browsers["user"].get("/certificates/export.csv", {"q": "192.0.2.7"}).content.decode())))
    assert [int(row["id"]) for row in searched] == [certificates["ip"].pk]


def test_anonymous_callers_are_sent_to_sign_in(browsers):
    for url in ("/certificates", "/certificates/export.csv"):
        response = browsers["anonymous"].get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/auth/login")


def test_error_pages_keep_the_navigation_and_say_why(browsers, other_leaf):
    not_found = browsers["manager"].get(f"/certificates/{other_leaf.pk}")
    assert not_found.status_code == 404
    page = not_found.content.decode()
    assert 'href="/certificates"' in page
    assert 'href="/api-keys"' in page
    assert "belongs to another organization than yours" in page
    assert other_leaf.serial not in page
    forbidden = browsers["user"].get("/certificates/issue")
    assert forbidden.status_code == 403
    page = forbidden.content.decode()
    assert 'href="/certificates"' in page
    assert "Your role (user) may not open this page" in page
    json_answer = browsers["user"].get("/certificates/issue", HTTP_ACCEPT="application/json")
    assert json_answer.json()["error"]["code"] == "permission_denied"  # API clients keep the same vocabulary
