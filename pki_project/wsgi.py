"""WSGI entry point (gunicorn `pki_project.wsgi`): Django, with plain OCSP GETs answered in front of it
(`certificates.ocsp_wsgi`)."""

import os

from pki_project.config import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
exit_on_config_error()

import sys  # noqa: E402

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

try:
    django_application = get_wsgi_application()
except ImproperlyConfigured as error:  # a setting Django's start-up refuses: one line, then stop
    print(f"Configuration error: {error}", file=sys.stderr)
    raise SystemExit(2) from None

from certificates.ocsp_wsgi import with_ocsp_fast_path  # noqa: E402 (needs Django set up)

application = with_ocsp_fast_path(django_application)
