"""System check: rbac.json must be well-formed and cover exactly the served routes.

Registered by `organizations.apps.OrganizationsConfig.ready`, so `manage.py check`,
`migrate`, `runserver` and every other checked command stop with one error per
offending entry or route. The RBAC middleware runs the same validation when the
WSGI application loads, so gunicorn refuses to start too.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from pki_project.middleware.rbac import current_policy, load_policy, served_routes, validate_policy

RBAC_TAG = "rbac"


@register(RBAC_TAG)
def check_rbac(app_configs=None, **kwargs) -> list[Error]:
    load_policy.cache_clear()  # the check always reads the file as it is now
    problems = validate_policy(current_policy(), served_routes())
    return [
        Error(problem, hint=f"Edit {settings.PKI_RBAC_FILE} (PKI_RBAC_FILE) and restart.", id="pki.E001")
        for problem in problems
    ]
