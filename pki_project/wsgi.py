"""WSGI entry point (gunicorn `pki_project.wsgi`): Django, with plain OCSP GETs answered in front of it
(`certificates.ocsp_wsgi`)."""

import os

from pki_project.config import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
exit_on_config_error()

from django.core.wsgi import get_wsgi_application  # noqa: E402

django_application = get_wsgi_application()

from certificates.ocsp_wsgi import with_ocsp_fast_path  # noqa: E402 (needs Django set up)

application = with_ocsp_fast_path(django_application)
