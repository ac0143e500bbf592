#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
    from pki_project.config import exit_on_config_error

    exit_on_config_error()
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import InterfaceError, OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        if "--traceback" in sys.argv:
            raise
        # A setting checked once Django loads (PKI_POLICY_OID, PKI_MAX_REQUEST_BYTES): one line, as for secrets.
        sys.stderr.write(f"Configuration error: {error}\n")
        sys.exit(2)
    except (OperationalError, InterfaceError) as error:
        if "--traceback" in sys.argv:
            raise
        # The database is down or refuses us: one clear line, not a traceback (--traceback shows it).
        detail = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
        sys.stderr.write(f"Database error: the database could not be used ({detail}).\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
