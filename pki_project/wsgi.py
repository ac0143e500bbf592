"""WSGI entry point (gunicorn `pki_project.wsgi`)."""

import os

from pki_project.config import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
exit_on_config_error()

import sys  # noqa: E402

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

try:
    application = get_wsgi_application()
except ImproperlyConfigured as error:  # a setting Django's start-up refuses: one line, then stop
    print(f"Configuration error: {error}", file=sys.stderr)
    raise SystemExit(2) from None
