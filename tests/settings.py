"""Test settings: the real settings module, with fixed test secrets and a chosen database.

`PKI_TEST_DATABASE_URL` selects the database (the Makefile sets it to PostgreSQL for
the second run); otherwise SQLite. The developer's `.env` never leaks into tests:
the required variables are set here before the real settings load it.
"""

import os
import tempfile

os.environ["PKI_JWT_SECRET"] = "test-jwt-secret-0123456789abcdef0123456789"
os.environ["PKI_ENCRYPTION_KEY"] = "test-encryption-key-0123456789abcdef012345"
os.environ["PKI_ENCRYPTION_SALT"] = "test-salt-9f8e7d6c5b4a3210"
os.environ.setdefault("PKI_DATA_DIR", tempfile.mkdtemp(prefix="pki-test-data-"))
os.environ.setdefault("PKI_UPLOAD_DIR", tempfile.mkdtemp(prefix="pki-test-uploads-"))
os.environ["PKI_COOKIE_SECURE"] = "false"
# A public-looking name: pkilint flags single-label and IP hosts in certificate URLs as internal.
os.environ["PKI_BASE_URL"] = "http://pki.example.com"
os.environ.pop("CACHE_URL", None)
# The real settings prepare the SQLite file of DATABASE_URL (0600): not the project's database/pki.db.
os.environ["DATABASE_URL"] = os.environ.get("PKI_TEST_DATABASE_URL", "sqlite:///:memory:")

from pki_project.settings import *  # noqa: F403
from pki_project.settings import _database_config

TEST_DATABASE_URL = os.environ.get("PKI_TEST_DATABASE_URL", "sqlite:///:memory:")
DATABASES = {"default": _database_config(TEST_DATABASE_URL)}
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = tempfile.mkdtemp(prefix="pki-test-static-")
PKI_ROOT_KDF_LOG2_N = 12  # cheap scrypt in tests; production uses 2**17
