"""Security headers on every response, a CSP without inline code that the admin lives with, check --deploy."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from tests.helpers import clean_environment, run_manage

EXPECTED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def csp_directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_security_headers(response) -> None:
    for name, value in EXPECTED.items():
        assert response[name] == value, name
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/auth/login"), ("GET", "/health"), ("GET", "/api/v1/organizations/"), ("GET", "/admin/"),
    ("GET", "/no-such-page"), ("POST", "/auth/session"), ("GET", "/static/css/pki.css"),
])
def test_every_response_carries_the_headers(method, path, settings):
    settings.WHITENOISE_USE_FINDERS = True  # serve static/ without collectstatic
    response = Client().generic(method, path)
    assert_security_headers(response)


@pytest.mark.django_db
def test_static_css_is_served_for_the_login_page(settings):
    settings.WHITENOISE_USE_FINDERS = True  # serve static/ without collectstatic
    page = Client().get("/auth/login")
    assert b'href="/static/css/pki.css"' in page.content
    css = Client().get("/static/css/pki.css")
    assert css.status_code == 200
    assert_security_headers(css)


@pytest.mark.django_db
def test_hsts_over_https_only(settings, make_principal_client):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_SSL_REDIRECT = False
    secure = Client().get("/health", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in Client().get("/health")


@pytest.mark.django_db
def test_authenticated_answers_are_not_cached(make_principal_client):
    response = make_principal_client("user").get("/api/v1/organizations/")
    assert response["Cache-Control"] == "no-store"


class InlineCodeFinder(HTMLParser):
    """Collects what a `script-src 'self'; style-src 'self'` policy would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type", "") != "application/json":
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        if "style" in attributes:
            self.problems.append(f"style= attribute on <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{name}= handler on <{tag}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.problems


@pytest.mark.django_db
def test_admin_pages_need_no_inline_code(make_principal_client, organization):
    """The admin works under the CSP: its pages carry no inline script, style or handler."""
    from tests.factories import ApiKeyFactory, UserFactory

    ApiKeyFactory(user=UserFactory(role="manager", organization=organization))
    client = make_principal_client("admin")
    pages = [
        "/admin/", "/admin/organizations/", "/admin/organizations/organization/",
        f"/admin/organizations/organization/{organization.pk}/change/", "/admin/organizations/organization/add/",
        "/admin/organizations/apikey/", "/admin/organizations/membership/", "/admin/auth/user/",
        "/admin/auth/user/add/", "/admin/auth/group/", "/auth/login",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert_security_headers(response)
        assert inline_code(response.content.decode()) == [], page
        for source in re.findall(r'<script[^>]+src="([^"]+)"', response.content.decode()):
            assert source.startswith("/"), (page, source)  # same origin only


def test_the_no_actions_change_list_rule_comes_from_a_file():
    from django.template.loader import get_template

    source = get_template("admin/change_list.html").template.source
    assert "<style" not in source
    assert "admin-changelist-no-actions.css" in source


@pytest.mark.slow
def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    env = clean_environment(
        PKI_COOKIE_SECURE="true",
        PKI_DEBUG="false",
        PKI_ALLOWED_HOSTS="pki.example.com",
        PKI_JWT_SECRET="production-like-jwt-secret-" + "q7Zr9kLm2Xv8Bn4Tc6Wd1Hy5Jf3Gs0Pa",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PKI_DATA_DIR=str(tmp_path / "data"),
    )
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
