"""WSGI entry point (gunicorn `pki_project.wsgi`)."""

import os

from pki_project.config import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
exit_on_config_error()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
