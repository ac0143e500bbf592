"""The Django admin signs in through the API-key login, not its own password form.

`admin.site.login` redirects to `/auth/login?next=…` and `admin.site.logout` ends the
JWT session. Who may open the admin at all is rbac.json's `* /admin/{path*}` entry;
what they may do inside follows Django permissions synced from their role
(`organizations.services.sync_user_access`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme

LOGIN_URL = "/auth/login"


def login_redirect(request, extra_context=None):
    """The admin's login URL: signed-in staff go on to the admin, anyone else to /auth/login."""
    target = request.GET.get("next", "")
    if not (target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})):
        target = "/admin/"
    if getattr(request, "principal", None) is not None and admin.site.has_permission(request):
        return HttpResponseRedirect(target if target != request.path else "/admin/")
    return HttpResponseRedirect(f"{LOGIN_URL}?{urlencode({'next': target})}")


def logout_view(request, extra_context=None):
    from pki_project.auth_views import logout

    if request.method != "POST":
        return HttpResponseRedirect("/admin/")
    return logout(request)


def use_pki_login() -> None:
    admin.site.login = login_redirect
    admin.site.logout = logout_view
    admin.site.site_header = "Private PKI"
    admin.site.site_title = "Private PKI"
