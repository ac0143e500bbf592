"""The staff interface in a real browser: log in, issue, reveal, revoke, each by the roles allowed and refused.

Every page visited is watched for CSP violations and JavaScript errors (`watched_page`),
and the main pages are saved as desktop and phone screenshots.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certificates.models import Certificate
from tests.browser.conftest import follow, log_in, shoot, visit
from tests.certificates.csrs import make_csr
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory
from tests.pages.conftest import Hierarchy, build_hierarchy, issue_server_certificate

pytestmark = pytest.mark.django_db(transaction=True)
# Playwright's assertions retry until they hold (5 s at most): a page's script may still be at work.
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect


@dataclass
class World:
    hierarchy: Hierarchy
    keys: dict[str, str]
    leaf: Certificate


@pytest.fixture
def world() -> World:
    organization = OrganizationFactory(name="Example Corp", slug="example")
    hierarchy = build_hierarchy(organization)
    keys = {}
    for role in ("user", "manager", "admin"):
        user = UserFactory(username=f"{role}-1", role=role, organization=organization)
        keys[role] = ApiKeyFactory(user=user).plain_key
    keys["global_admin"] = ApiKeyFactory(user=UserFactory(username="root-admin", role="admin")).plain_key
    leaf = issue_server_certificate(hierarchy.intermediate, "www.example.com")
    for index in range(3):
        issue_server_certificate(hierarchy.intermediate, f"app{index}.example.com", server_key=False)
    return World(hierarchy, keys, leaf)


def test_login_with_an_api_key_and_the_main_pages(watched_page, world):
    page = watched_page()
    visit(page, "/auth/login")
    shoot(page, "login")
    page.get_by_label("API key").fill("pki_notakey_nope")
    page.watch.expected_status_urls.add(page.server_url + "/auth/session")  # the refused login answers 401
    follow(page, page.get_by_role("button", name="Sign in"))
    assert page.get_by_role("alert").inner_text() == "Invalid credentials."

    log_in(page, world.keys["global_admin"], "/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    shoot(page, "dashboard")
    for url, heading, name in [
        ("/organizations", "Organizations", "organizations"),
        ("/create-organization", "Create an organization", "create-organization"),
        ("/toolbox", "Toolbox", "toolbox"),
        ("/certificates/issue", "Issue a certificate", "issue"),
        (f"/certificates/{world.leaf.pk}", "www.example.com", "certificate"),
        ("/admin/", "Site administration", "admin-index"),
        ("/admin/certificates/certificate/", "Select certificate to view", "admin-certificates"),
        (f"/admin/certificates/certificate/{world.leaf.pk}/change/", "www.example.com", "admin-certificate"),
        ("/admin/certificates/certificateauthority/", "Select certificate authority to view", "admin-cas"),
        ("/admin/certificates/certificateauthority/create-root/", "Create a root CA", "admin-create-root"),
        ("/admin/certificates/certificaterevocationlist/", "Select CRL to view", "admin-crls"),
        ("/admin/audit/auditevent/", "Select audit event to view", "admin-audit"),
    ]:
        visit(page, url)
        expect(page.get_by_role("heading", name=heading).first, url).to_be_visible()
        shoot(page, name)

    visit(page, "/create-organization")
    page.get_by_label("Name").fill("Browser Org")
    follow(page, page.get_by_role("button", name="Create organization"))
    expect(page.locator(".messages")).to_contain_text("Organization “Browser Org” (browser-org) was created.")


def test_manager_issues_from_a_csr_and_with_a_server_key_then_reveals_the_password(watched_page, world, tmp_path):
    page = watched_page()
    log_in(page, world.keys["manager"], "/certificates/issue")
    page.get_by_label("Issuing CA").select_option(label="Example Issuing CA (intermediate, example-issuing-ca)")
    page.get_by_label("Profile").select_option("server")
    page.get_by_label("CSR (PEM)").fill(make_csr("csr.example.com").decode())
    follow(page, page.get_by_role("button", name="Issue certificate"))
    expect(page.locator(".messages")).to_contain_text("Certificate for “csr.example.com” issued")
    expect(page.get_by_role("heading", name="csr.example.com")).to_be_visible()

    visit(page, "/certificates/issue")
    page.get_by_label("Generate the key on the server").check()
    expect(page.get_by_label("CSR (PEM)")).to_be_hidden()  # the static script shows only the fields that apply
    page.get_by_label("Common name").fill("vpn.example.com")
    page.get_by_label("Subject alternative names").fill("DNS:vpn.example.com\nIP:192.0.2.10")
    follow(page, page.get_by_role("button", name="Issue certificate"))
    expect(page.locator(".messages")).to_contain_text("Certificate for “vpn.example.com” issued")
    shoot(page, "certificate-issued")

    follow(page, page.get_by_role("button", name="Reveal the PKCS#12 password"))
    password = page.locator("#pkcs12-password").inner_text().strip()
    assert len(password) >= 16
    page.get_by_role("button", name="Copy").click()
    shoot(page, "pkcs12-password")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Key and certificate (PKCS#12)").click()
    bundle = tmp_path / "bundle.p12"
    download_info.value.save_as(bundle)
    key, certificate, _ = pkcs12.load_key_and_certificates(bundle.read_bytes(), password.encode())
    assert key is not None
    assert "vpn.example.com" in certificate.subject.rfc4514_string()

    visit(page, "/certificates/issue")
    page.watch.expected_status_urls.add(page.server_url + "/certificates/issue")  # the form answers 400
    follow(page, page.get_by_role("button", name="Issue certificate"))  # nothing pasted
    expect(page.locator(".field-message").first).to_contain_text("Paste a CSR or upload a CSR file")
    shoot(page, "issue-error")


def test_user_is_refused_issuance_and_sees_no_revoke_or_reveal(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["user"], "/")
    assert page.get_by_role("link", name="Issue a certificate").count() == 0
    visit(page, "/certificates/issue", expect_status=403)
    visit(page, f"/certificates/{world.leaf.pk}")
    assert page.get_by_role("button", name="Revoke this certificate").count() == 0
    assert page.get_by_role("button", name="Reveal the PKCS#12 password").count() == 0
    visit(page, "/admin/certificates/certificate/")
    options = page.locator("select[name=action] option").all_inner_texts()
    assert not any("Revoke" in option for option in options)
    shoot(page, "admin-certificates-user")


def test_manager_revokes_through_the_admin_action(watched_page, world, live_server):
    page = watched_page()
    log_in(page, world.keys["manager"], "/admin/certificates/certificate/")
    row = page.locator("#result_list tr", has_text="www.example.com")
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("revoke_selected")
    follow(page, page.get_by_role("button", name="Go"))
    expect(page.get_by_role("heading", name="Revoke certificates")).to_be_visible()
    page.get_by_label("Reason").select_option("keyCompromise")
    shoot(page, "admin-revoke-form")
    follow(page, page.get_by_role("button", name="Revoke 1 certificate"))
    expect(page.locator(".messagelist")).to_contain_text("Revoked 1: www.example.com")
    shoot(page, "admin-revoked")
    world.leaf.refresh_from_db()
    assert world.leaf.revocation_reason == "keyCompromise"
    visit(page, f"/certificates/{world.leaf.pk}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("revoked")


def test_revoke_on_the_certificate_page_and_dashboard_on_a_phone(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["admin"], f"/certificates/{world.leaf.pk}")
    page.get_by_label("Reason").select_option("superseded")
    follow(page, page.get_by_role("button", name="Revoke this certificate"))
    expect(page.locator(".messages")).to_contain_text(f"Certificate {world.leaf.serial} revoked (superseded)")
    page.set_viewport_size({"width": 390, "height": 844})
    visit(page, "/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the dashboard scrolls sideways on a phone ({width}px)"


def test_admin_creates_a_root_and_an_intermediate_ca_without_the_password_echoed(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["admin"], "/admin/certificates/certificateauthority/")
    shoot(page, "admin-ca-tree")
    follow(page, page.get_by_role("link", name="Create a root CA"))
    page.get_by_label("Organization").select_option(label="Example Corp")
    page.get_by_label("Common name").fill("Browser Root CA")
    page.get_by_label("Key type").select_option("ec-p256")
    page.get_by_label("Root password", exact=True).fill("browser root password 0123")
    page.get_by_label("Root password (again)").fill("a different password 0123")
    create_root_url = page.url
    page.watch.expected_status_urls.add(create_root_url)  # the form answers 400 with its errors
    follow(page, page.get_by_role("button", name="Create a root CA"))
    expect(page.get_by_text("The two passwords differ.")).to_be_visible()
    assert page.get_by_label("Root password", exact=True).input_value() == ""  # never echoed
    assert "browser root password 0123" not in page.content()
    page.get_by_label("Root password", exact=True).fill("browser root password 0123")
    page.get_by_label("Root password (again)").fill("browser root password 0123")
    follow(page, page.get_by_role("button", name="Create a root CA"))
    expect(page.locator(".messagelist")).to_contain_text("Root CA “Browser Root CA” (browser-root-ca) created")

    follow(page, page.get_by_role("link", name="Create an intermediate CA"))
    page.get_by_label("Parent CA").select_option(label="Browser Root CA (root, browser-root-ca)")
    page.get_by_label("Common name").fill("Browser Issuing CA")
    page.get_by_label("Root password").fill("not the root password 99")
    page.watch.expected_status_urls.add(page.url)
    follow(page, page.get_by_role("button", name="Create an intermediate CA"))
    expect(page.get_by_text("The CA key could not be unlocked.")).to_be_visible()
    shoot(page, "admin-create-intermediate-error")
    page.get_by_label("Root password").fill("browser root password 0123")
    follow(page, page.get_by_role("button", name="Create an intermediate CA"))
    expect(page.locator(".messagelist")).to_contain_text("Intermediate CA “Browser Issuing CA”")
    tree = page.locator(".pki-tree").first.inner_text()
    assert tree.index("Browser Root CA") < tree.index("Browser Issuing CA")


def test_a_manager_creates_no_ca(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["manager"], "/admin/certificates/certificateauthority/")
    assert page.get_by_role("link", name="Create a root CA").count() == 0
    visit(page, "/admin/certificates/certificateauthority/create-root/", expect_status=403)


def test_toolbox_decoder_and_crl_regeneration(watched_page, world):
    from cryptography.hazmat.primitives.serialization import Encoding

    from certificates.services.records import load_x509

    page = watched_page()
    log_in(page, world.keys["manager"], "/toolbox")
    page.get_by_label("Certificate or CSR (PEM)").fill(load_x509(world.leaf).public_bytes(Encoding.PEM).decode())
    follow(page, page.get_by_role("button", name="Decode"))
    decoded = page.locator("#decoded").inner_text()
    assert "This is an end-entity certificate" in decoded
    assert "This PKI issued it" in decoded
    shoot(page, "toolbox-decoded")
    page.watch.expected_status_urls.add(page.server_url + "/toolbox/decode")
    page.get_by_label("Certificate or CSR (PEM)").fill("hello")
    follow(page, page.get_by_role("button", name="Decode"))
    expect(page.locator(".error")).to_contain_text("This is not a certificate or a certificate signing request")

    visit(page, "/toolbox")
    page.locator("#id_ca").select_option(label="Example Issuing CA (intermediate, example-issuing-ca)")
    follow(page, page.get_by_role("button", name="Sign a new CRL"))
    expect(page.locator(".messages")).to_contain_text("of Example Issuing CA signed with 0 entries")


def test_a_user_cannot_reveal_a_password_even_by_hand(watched_page, world):
    page = watched_page()
    log_in(page, world.keys["user"], f"/certificates/{world.leaf.pk}")
    url = f"/certificates/{world.leaf.pk}/pkcs12-password"
    page.watch.expected_status_urls.add(page.server_url + url)
    status = page.evaluate("""async (url) => {
        const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
        const response = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
        return response.status;
    }""", url)
    assert status == 403
    expect(page.get_by_role("link", name="Toolbox")).to_be_visible()
    visit(page, "/toolbox")
    assert page.get_by_role("button", name="Sign a new CRL").count() == 0
