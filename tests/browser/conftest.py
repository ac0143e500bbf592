"""Browser tests: the machine's Debian Chromium driven by Playwright against pytest-django's live server.

* Chromium comes from Debian (`/usr/bin/chromium`), never from a test tool's download;
  `tests.chromium.ensure_chromium` installs it when `PKI_BROWSER_INSTALL=1` allows (the
  Makefile's test target sets it), else the browser tests are skipped saying how to run them.
* A page's `confirm()` question is recorded in `page.watch.dialogs` and accepted.
* Every page opened through `watched_page` is listened to: a CSP violation
  ("Refused to …", "Content Security Policy"), an uncaught JavaScript error, or any
  console error other than the page's own expected status fails the test.
* `shoot(page, name)` saves desktop (1280x800) and phone (390x844) screenshots to
  `test-artifacts/screenshots/` (gitignored).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.chromium import ensure_chromium
from tests.helpers import PROJECT_DIR

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = PROJECT_DIR / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CSP_MARKERS = ("Refused to", "Content Security Policy", "Content-Security-Policy")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return ensure_chromium()


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    """Chromium for one test module; Playwright stops afterwards, so no other test runs beside its event loop."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls beside a
    # running loop; the test code's ORM calls here are synchronous (the live server has its own thread).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class ConsoleWatch:
    """Console errors and page errors of one page, with the statuses the test expects for documents."""

    problems: list[str] = field(default_factory=list)
    expected_status_urls: set[str] = field(default_factory=set)
    dialogs: list[str] = field(default_factory=list)  # the questions `confirm()` asked, each accepted

    def on_console(self, message) -> None:
        text = message.text
        if any(marker in text for marker in CSP_MARKERS):
            self.problems.append(f"CSP: {text}")
        elif message.type == "error":
            url = (message.location or {}).get("url", "")
            if "Failed to load resource" in text and url.split("#")[0] in self.expected_status_urls:
                return  # the page itself answered the 403/404/400 the test asked for
            if url.endswith("/favicon.ico"):
                return  # the browser asks for it on its own on pages without an icon link (login, admin)
            self.problems.append(f"console error: {text} ({url})")

    def on_dialog(self, dialog) -> None:
        """A page's confirmation (pki.js `data-confirm`): recorded, then accepted as a user would."""
        self.dialogs.append(dialog.message)
        dialog.accept()

    def on_page_error(self, error) -> None:
        self.problems.append(f"JavaScript error: {error}")

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture(autouse=True)
def _empty_audit_trail_after(transactional_db) -> Iterator[None]:
    """The live server commits audit events; the append-only triggers refuse pytest-django's flush."""
    yield
    from audit.maintenance import delete_all_events

    delete_all_events()


@pytest.fixture
def watched_page(browser, request):
    """A fresh browser context (its own cookies) and page, watched for CSP violations and JS errors.

    It talks to pytest-django's live server, or to `base_url` (e.g. a real gunicorn installation).
    """
    pages = []

    def make(base_url: str | None = None):
        base_url = base_url or request.getfixturevalue("live_server").url
        context = browser.new_context(viewport=DESKTOP, base_url=base_url, accept_downloads=True)
        page = context.new_page()
        watch = ConsoleWatch()
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        page.on("dialog", watch.on_dialog)
        page.watch = watch
        page.server_url = base_url
        pages.append((context, page))
        return page

    yield make
    try:
        for _context, page in pages:
            page.watch.assert_clean()
    finally:
        for context, _page in pages:
            context.close()


def shoot(page, name: str) -> None:
    """Desktop and phone screenshots of the current page; back to the desktop size afterwards."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def follow(page, element) -> None:
    """Click a link, or a button that submits a form, and return once the page it leads to has loaded.

    A click returns when the navigation has begun, not when it has ended (nor does
    `wait_for_load_state`, which can still see the old page): an assertion right after it
    could read the page the form was on, a race that failed CI once.
    """
    with page.expect_navigation():
        element.click()


def log_in(page, api_key: str, next_url: str = "/") -> None:
    page.goto(f"/auth/login?next={next_url}")
    page.get_by_label("API key").fill(api_key)
    follow(page, page.get_by_role("button", name="Sign in"))


def visit(page, url: str, expect_status: int = 200):
    """Open `url`; a non-200 status is expected only when the test says so (and then not a console error)."""
    if expect_status != 200:
        page.watch.expected_status_urls.add(page.server_url + url if url.startswith("/") else url)
    response = page.goto(url)
    assert response is not None, url
    assert response.status == expect_status, f"{url}: {response.status}"
    return response


# --- A real installation: gunicorn on a free loopback port, a temporary SQLite file and data dir --------

@dataclass
class Installation:
    url: str
    keys: dict[str, str]
    leaf_id: int


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _setup_script() -> str:
    """Create the users one by one so each key is labelled by who holds it."""
    return """
import json
from organizations.services import create_api_key, create_organization, ensure_member
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from pki_project.actor import Actor
actor = Actor.operator("browser-tests")
org = create_organization("Example Corp", "example")
keys = {}
for name, username, role, organization in (("global_admin", "root-admin", "admin", None),
                                           ("admin", "admin-1", "admin", org),
                                           ("manager", "manager-1", "manager", org)):
    user, _ = ensure_member(username, role, organization, actor=actor)
    keys[name] = create_api_key(user).key
password = "browser root password 0123"
root = create_root_ca(organization=org, common_name="Example Root CA", root_password=password,
                      key_type="ec-p256", days=3650, path_length=1, actor=actor)
issuing = create_intermediate_ca(parent=root, common_name="Example Issuing CA", root_password=password,
                                 key_type="ec-p256", days=1825, actor=actor)
leaf = issue_certificate(issuing, IssuanceRequest(profile="server", common_name="www.example.com"), actor=actor)
print("SETUP " + json.dumps({"keys": keys, "leaf": leaf.pk}))
"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> Iterator[Installation]:
    """migrate, collectstatic, a CA hierarchy and keys (one `manage.py shell`), then gunicorn with one worker.

    One per test module: its tests must leave it usable for each other (a restore brings back the same users).
    """
    import json
    import sys
    import time
    import urllib.request

    from tests.helpers import clean_environment, run_manage

    tmp_path = tmp_path_factory.mktemp("installation")
    port = _free_port()
    env = clean_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
        PKI_COOKIE_SECURE="false", PKI_ALLOWED_HOSTS="127.0.0.1,localhost", PKI_ROOT_KDF_LOG2_N="12",
        PKI_BASE_URL=f"http://127.0.0.1:{port}",
    )
    for args in (("migrate", "--noinput"), ("collectstatic", "--noinput", "--verbosity", "0"),
                 ("shell", "-c", _setup_script())):
        result = run_manage(*args, env=env, timeout=240)
        assert result.returncode == 0, f"{args[0]}: {result.stdout}\n{result.stderr}"
    setup = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("SETUP "))[6:])
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [str(gunicorn), "pki_project.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "120"], cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback http
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"gunicorn did not start; see {tmp_path / 'gunicorn.log'}") from None
                time.sleep(0.2)
        yield Installation(url=url, keys=setup["keys"], leaf_id=setup["leaf"])
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
