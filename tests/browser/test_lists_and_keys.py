"""The certificate list, the API key pages, the confirmations and the error pages in Debian's Chromium.

Each page is walked at 1366x900 (a common laptop, where the admin's list clipped the expiry and
serial columns) and at 390x844 (a phone), watched for console errors and CSP violations
(`watched_page`), and measured: the serial, expiry and days-left cells must lie wholly inside
their cell, the table and the viewport, with nothing scrolled sideways.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest, issue_certificate
from organizations.models import ApiKey
from pki_project.actor import Actor
from tests.browser.conftest import follow, log_in, shoot, visit
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory
from tests.pages.conftest import build_hierarchy

pytestmark = pytest.mark.django_db(transaction=True)
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"laptop": LAPTOP, "phone": PHONE}


@dataclass
class World:
    keys: dict[str, str]
    soon: Certificate
    other_leaf: Certificate
    intermediate_slug: str


@pytest.fixture
def world() -> World:
    organization = OrganizationFactory(name="Example Corp", slug="example")
    hierarchy = build_hierarchy(organization)
    operator = Actor.operator("tests")
    soon = None
    for index, (name, days) in enumerate([("soon.example.com", 5), ("a-rather-long-host-name.eu-west.example.com", 20),
                                          ("later.example.com", 120)]):
        sans = (f"DNS:{name}", f"DNS:alt{index}.{name}", f"IP:192.0.2.{index + 10}")
        certificate = issue_certificate(hierarchy.intermediate,
                                        IssuanceRequest(profile="server", common_name=name, sans=sans, days=days),
                                        actor=operator)
        soon = soon or certificate
    other = build_hierarchy(OrganizationFactory(name="Other Corp", slug="other"), prefix="Other")
    other_leaf = issue_certificate(other.intermediate, IssuanceRequest(profile="server", common_name="x.other.example"),
                                   actor=operator)
    keys = {role: ApiKeyFactory(user=UserFactory(username=f"{role}-1", role=role, organization=organization),
                                label=f"{role} laptop").plain_key for role in ("user", "manager", "admin")}
    return World(keys, soon, other_leaf, hierarchy.intermediate.slug)


def _inside(inner: dict, outer: dict, where: str) -> None:
    assert inner["x"] >= outer["x"] - 0.5, where
    assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5, where


def _assert_cells_fit(page, viewport: dict, name: str) -> None:
    """Every serial, expiry and days-left cell is whole: inside its cell, the table and the viewport."""
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= viewport["width"], f"{name}: the page scrolls sideways ({overflow}px)"
    wrap = page.locator("#certificate-table-wrap")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), f"{name}: the table scrolls sideways"
    table_box = wrap.bounding_box()
    screen = {"x": 0, "width": viewport["width"]}
    rows = page.locator("#certificate-table tbody tr")
    assert rows.count() >= 3
    for index in range(rows.count()):
        row = rows.nth(index)
        for selector in ("code.serial", "td.col-expires time", "td.col-days .days-left"):
            element = row.locator(selector)
            expect(element).to_be_visible()
            box = element.bounding_box()
            cell = element.locator("xpath=ancestor::td[1]").bounding_box()
            where = f"{name} row {index} {selector}: {box} in {cell}"
            _inside(box, cell, where)
            _inside(box, table_box, where)
            _inside(box, screen, where)
            assert element.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"{where}: clipped inside"
    if viewport is LAPTOP:  # the columns stand side by side, with their headings
        for heading in ("Serial", "Expires", "Days left"):
            expect(page.locator("#certificate-table thead").get_by_role("columnheader", name=heading)).to_be_visible()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_certificate_list_shows_whole_serials_expiry_and_days(watched_page, world, size):
    viewport = VIEWPORTS[size]
    page = watched_page()
    log_in(page, world.keys["manager"], "/certificates")
    page.set_viewport_size(viewport)
    visit(page, "/certificates")
    expect(page.get_by_role("heading", name="Certificates", exact=True)).to_be_visible()
    _assert_cells_fit(page, viewport, f"/certificates at {size}")
    soon_row = page.locator(f'tr[data-certificate="{world.soon.pk}"]')
    assert int(soon_row.locator(".days-left").inner_text()) in (4, 5)  # 5 days of validity, just begun
    expect(soon_row.get_by_role("link", name="Renew")).to_be_visible()
    shoot(page, f"certificate-list-{size}")
    page.set_viewport_size(viewport)

    page.get_by_label("Search name, SAN or serial").fill("192.0.2.11")
    follow(page, page.get_by_role("button", name="Show"))
    expect(page.locator("#certificate-table tbody tr")).to_have_count(1)
    expect(page.locator("#certificate-table tbody")).to_contain_text("a-rather-long-host-name.eu-west.example.com")

    visit(page, "/certificates?kind=end_entity&sort=-expires")
    first = page.locator("#certificate-table tbody tr").first
    expect(first).to_contain_text("later.example.com")
    _assert_cells_fit(page, viewport, f"/certificates?kind=end_entity&sort=-expires at {size}")


def test_csv_export_and_renew_after_confirmation(watched_page, world, tmp_path):
    page = watched_page()
    log_in(page, world.keys["manager"], "/certificates")
    page.set_viewport_size(LAPTOP)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    export = tmp_path / "certificates.csv"
    download_info.value.save_as(export)
    text = export.read_text()
    assert text.startswith("id,common_name,serial,sans,")
    assert world.soon.serial in text
    assert world.other_leaf.serial not in text  # another organization's

    row = page.locator(f'tr[data-certificate="{world.soon.pk}"]')
    follow(page, row.get_by_role("link", name="Renew"))
    expect(page.get_by_role("heading", name="Renew soon.example.com?")).to_be_visible()
    shoot(page, "renew-confirm")
    assert not Certificate.objects.filter(predecessor=world.soon).exists()  # asking changed nothing
    follow(page, page.get_by_role("button", name="Renew this certificate"))
    expect(page.locator(".messages")).to_contain_text("Renewed: the new certificate has serial")
    assert Certificate.objects.filter(predecessor=world.soon).exists()


def test_revoke_asks_for_confirmation_in_the_page(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["manager"], f"/certificates/{world.soon.pk}")
    page.get_by_label("Reason").select_option("superseded")
    follow(page, page.get_by_role("button", name="Revoke this certificate"))
    assert page.watch.dialogs == ["Revoke soon.example.com? Revocation is final: relying parties will refuse "
                                  "this certificate."]
    expect(page.locator(".messages")).to_contain_text(f"Certificate {world.soon.serial} revoked (superseded)")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_api_keys_created_with_a_scope_revealed_once_copied_and_revoked(watched_page, world, size):
    viewport = VIEWPORTS[size]
    page = watched_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, world.keys["admin"], "/api-keys")
    page.set_viewport_size(viewport)
    visit(page, "/api-keys")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.get_by_label("Label").fill(f"pipeline {size}")
    page.get_by_label("For").select_option("manager-1")
    page.get_by_label(f"Example Issuing CA (example, {world.intermediate_slug})").check()
    page.get_by_label("server", exact=True).check()
    page.get_by_label("Longest validity (days)").fill("30")
    shoot(page, f"api-keys-{size}")
    page.set_viewport_size(viewport)
    follow(page, page.get_by_role("button", name="Create key"))

    expect(page.get_by_role("heading", name="API key created")).to_be_visible()
    key = page.locator("#new-api-key").inner_text().strip()
    assert key.startswith("pki_")
    secret_box = page.locator("#new-api-key").bounding_box()
    assert secret_box["x"] + secret_box["width"] <= viewport["width"], "the key runs off the screen"
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shoot(page, f"api-key-created-{size}")
    page.set_viewport_size(viewport)
    api_key = ApiKey.objects.get(prefix=key.split("_")[1])
    assert api_key.user.username == "manager-1"
    assert [ca.slug for ca in api_key.allowed_cas.all()] == [world.intermediate_slug]
    assert api_key.max_validity_days == 30

    visit(page, "/api-keys")
    assert key not in page.content()  # shown once only
    row = page.locator(f'tr[data-key="{api_key.prefix}"]')
    expect(row).to_contain_text(world.intermediate_slug)
    expect(row).to_contain_text("30 days")
    follow(page, row.get_by_role("link", name="Revoke…"))
    expect(page.get_by_role("heading", name=f"Revoke API key {api_key.prefix}?")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shoot(page, f"api-key-revoke-{size}")
    page.set_viewport_size(viewport)
    follow(page, page.get_by_role("button", name="Revoke this key"))
    expect(page.locator(".messages")).to_contain_text(f"API key {api_key.prefix} (pipeline {size}) revoked")
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_bad_input_on_the_key_form_is_marked_by_field(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["user"], "/api-keys")
    page.get_by_label("Longest validity (days)").fill("0")
    page.watch.expected_status_urls.add(page.server_url + "/api-keys")  # the form answers 400
    follow(page, page.get_by_role("button", name="Create key"))
    expect(page.locator("#field-max_validity_days .field-message")).to_have_text(
        "Enter a number of days between 1 and 3650.")
    assert ApiKey.objects.count() == 3


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_error_pages_keep_the_navigation_and_say_why(watched_page, world, size):
    viewport = VIEWPORTS[size]
    page = watched_page()
    log_in(page, world.keys["user"], "/")
    page.set_viewport_size(viewport)
    visit(page, f"/certificates/{world.other_leaf.pk}", expect_status=404)
    expect(page.locator("#error-reason")).to_have_text(
        "There is no such page or object, or it belongs to another organization than yours.")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Certificates")).to_be_attached()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shoot(page, f"error-404-{size}")
    page.set_viewport_size(viewport)
    visit(page, "/certificates/issue", expect_status=403)
    expect(page.locator("#error-reason")).to_contain_text("Your role (user) may not open this page")
    follow(page, page.get_by_role("link", name="Back to the dashboard"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
