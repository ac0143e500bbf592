"""Backup download and restore upload from the toolbox, by the global admin; refused to everyone else.

Runs against a real installation (gunicorn, a SQLite file, a data directory: the
`installation` fixture), since a backup reads the database file and a restore swaps
the data directory. The routes belong to the backups app; the toolbox links to them.
"""

from __future__ import annotations

import zipfile

import pytest
from django.urls import Resolver404, resolve

from tests.browser.conftest import follow, log_in, shoot, visit

pytestmark = pytest.mark.django_db(transaction=True)
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect


@pytest.fixture(autouse=True)
def _routes_served() -> None:
    try:
        resolve("/admin/backup/database")
        resolve("/admin/restore/database")
    except Resolver404:
        pytest.skip("The backup routes (/admin/backup/database, /admin/restore/database) are not served yet.")


def _status(page) -> str:
    return page.locator("h1 .badge").inner_text()


def test_global_admin_downloads_a_backup_and_restores_it(watched_page, installation, tmp_path):
    page = watched_page(installation.url)
    log_in(page, installation.keys["global_admin"], "/toolbox")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download a backup").click()
    download = download_info.value
    assert download.suggested_filename.startswith("pki-backup-")
    assert download.suggested_filename.endswith(".zip")
    archive = tmp_path / download.suggested_filename
    download.save_as(archive)
    assert zipfile.is_zipfile(archive)

    certificate_page = f"/certificates/{installation.leaf_id}"  # a change after the backup: revoke
    visit(page, certificate_page)
    page.get_by_label("Reason").select_option("keyCompromise")
    follow(page, page.get_by_role("button", name="Revoke this certificate"))
    assert _status(page) == "revoked"

    not_a_backup = tmp_path / "notes.zip"
    not_a_backup.write_bytes(b"this is not a zip archive")
    visit(page, "/toolbox")
    page.get_by_label("Backup file to restore (.zip)").set_input_files(str(not_a_backup))
    follow(page, page.get_by_role("button", name="Restore this backup"))
    expect(page.locator(".messages")).to_contain_text("Nothing was changed.")
    visit(page, certificate_page)
    assert _status(page) == "revoked"

    visit(page, "/toolbox")
    page.get_by_label("Backup file to restore (.zip)").set_input_files(str(archive))
    follow(page, page.get_by_role("button", name="Restore this backup"))
    # First what would change, then a typed confirmation: the revocation since the backup is carried forward.
    expect(page.locator("#restore-preview")).to_contain_text("1 revocations will be carried forward")
    shoot(page, "restore-preview")
    phrase = page.locator("label[for=id_confirmation] code").inner_text()
    page.locator("#id_confirmation").fill("restore")
    page.watch.expected_status_urls.add(f"{installation.url}/admin/restore/database")  # the 400 that follows
    follow(page, page.get_by_role("button", name="Restore", exact=True))
    expect(page.locator("#restore-error")).to_contain_text("Type exactly")
    page.locator("#id_confirmation").fill(phrase)
    follow(page, page.get_by_role("button", name="Restore", exact=True))
    expect(page.locator(".messages")).to_contain_text("Backup restored")
    shoot(page, "toolbox-restored")
    visit(page, certificate_page)
    assert _status(page) == "revoked"  # a restore never un-revokes


def test_backup_and_restore_are_refused_to_others(watched_page, installation):
    for role in ("admin", "manager"):  # an organization's admin, a manager
        page = watched_page(installation.url)
        log_in(page, installation.keys[role], "/toolbox")
        assert page.get_by_role("link", name="Download a backup").count() == 0, role
        assert page.get_by_role("button", name="Restore this backup").count() == 0, role
        visit(page, "/admin/backup/database", expect_status=403)
        page.watch.expected_status_urls.add(f"{installation.url}/admin/restore/database")
        status = page.evaluate("""async () => {
            const token = document.querySelector("input[name=csrfmiddlewaretoken]");
            const form = new FormData();
            form.append("backup", new Blob(["x"]), "b.zip");
            if (token) { form.append("csrfmiddlewaretoken", token.value); }
            const response = await fetch("/admin/restore/database", {method: "POST", body: form});
            return response.status;
        }""")
        assert status == 403, role
