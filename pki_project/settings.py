"""Settings for the PKI, read from the environment (or `.env`) with django-environ.

Every variable of the contract's configuration table is read here. Required secrets
are validated by `pki_project.config` before anything else happens.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from pki_project.config import (
    BASE_DIR,
    ConfigError,
    acme_validation_config,
    crl_full_interval_hours,
    load_dotenv,
    make_sqlite_database_private,
    mtls_proxy_config,
    notification_config,
    ocsp_response_validity,
    pkcs11_module,
    pkcs11_pin_file,
    validate_required_secrets,
)
from pki_project.serving import max_request_bytes
from pki_project.tempfiles import ensure_private_directory, upload_directory

load_dotenv()
try:
    validate_required_secrets()
except ConfigError as error:  # importers other than manage.py / wsgi.py (e.g. pytest)
    raise ImproperlyConfigured(str(error)) from None

env = environ.Env()


def _project_path(value: str | Path) -> Path:
    """Resolve a path relative to the project directory, so the cwd never matters."""
    path = Path(value)
    return path if path.is_absolute() else (BASE_DIR / path).resolve()


# --- Core -----------------------------------------------------------------------
DEBUG = env.bool("PKI_DEBUG", default=False)
SECRET_KEY = env.str("PKI_JWT_SECRET")  # used by Django for CSRF and signing only
ALLOWED_HOSTS = env.list("PKI_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

PKI_JWT_SECRET = env.str("PKI_JWT_SECRET")
PKI_ENCRYPTION_KEY = env.str("PKI_ENCRYPTION_KEY")
PKI_ENCRYPTION_SALT = env.str("PKI_ENCRYPTION_SALT")
PKI_DATA_DIR = _project_path(env.str("PKI_DATA_DIR", default="data"))
PKI_BASE_URL = env.str("PKI_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
PKI_COOKIE_SECURE = env.bool("PKI_COOKIE_SECURE", default=True)
PKI_RBAC_FILE = _project_path(env.str("PKI_RBAC_FILE", default="pki_project/rbac.json"))
PKI_SESSION_TTL = env.int("PKI_SESSION_TTL", default=28800)
# Private certificate policy OIDs (comma-separated) asserted by profiles that list none.
PKI_POLICY_OID = [oid.strip() for oid in env.str("PKI_POLICY_OID", default="").split(",") if oid.strip()]
PKI_DEFAULT_COUNTRY = env.str("PKI_DEFAULT_COUNTRY", default="US")  # countryName of CA subjects
PKI_ROOT_KDF_LOG2_N = env.int("PKI_ROOT_KDF_LOG2_N", default=17)  # scrypt cost of the root password

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally (no CDN; CSP stays 'self')
    "csp",
    "organizations",
    "certificates",
    "audit",
    "ratelimits",
    "backups",
    "acme_server",
    "enrollment",
    "approvals",
]

# Order matters: headers and CSP wrap everything (static files and error pages too); a
# declared body larger than the route accepts is refused right after them, before anything
# else runs; the denial recorder wraps authentication and everything inside it, so every
# refusal passes through it (audit.denials); authentication runs before RBAC, and RBAC's
# process_view before the CSRF policy's, so an anonymous API call reads 401 rather than a
# CSRF failure; the body is read (or refused: multipart where no file is taken, an upload by
# anyone but a global admin) between RBAC and the CSRF policy, whose check is the first to
# parse request.POST (pki_project/middleware/body.py); the CSRF policy decides before
# Django's own CsrfViewMiddleware (see pki_project/middleware/csrf.py).
MIDDLEWARE = [
    "pki_project.metrics.MetricsMiddleware",  # outermost: it times everything below, refusals included
    "django.middleware.security.SecurityMiddleware",
    "pki_project.middleware.headers.SecurityHeadersMiddleware",
    "csp.middleware.CSPMiddleware",
    "pki_project.middleware.body.RequestSizeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "pki_project.middleware.denials.DenialAuditMiddleware",
    "pki_project.middleware.authentication.PrincipalAuthenticationMiddleware",
    "pki_project.middleware.rbac.RbacMiddleware",
    "pki_project.middleware.body.RequestBodyMiddleware",
    "pki_project.middleware.csrf.CsrfPolicyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pki_project.middleware.idempotency.ApiWriteMiddleware",  # last: Idempotency-Key and Location on API POSTs
]

ROOT_URLCONF = "pki_project.urls"
WSGI_APPLICATION = "pki_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite (WAL) by default, PostgreSQL through DATABASE_URL ----------------
SQLITE_BUSY_TIMEOUT_SECONDS = 20
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"


def _database_config(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        if config["NAME"] != ":memory:":
            config["NAME"] = str(_project_path(config["NAME"]))
            make_sqlite_database_private(Path(config["NAME"]))  # 0600 file, 0700 directory, like .env
            # Keep each worker's connection: opening one runs the PRAGMAs below, about a millisecond
            # per request otherwise (the OCSP responder answers in less than that).
            config.setdefault("CONN_MAX_AGE", 600)
            config["CONN_HEALTH_CHECKS"] = True
        config.setdefault("OPTIONS", {}).update(
            {
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                "init_command": SQLITE_INIT_COMMAND,
                # BEGIN IMMEDIATE: writers queue on the busy timeout instead of
                # failing with "database is locked" when a read lock upgrades.
                "transaction_mode": "IMMEDIATE",
            }
        )
    else:
        config.setdefault("CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database_config(env.str("DATABASE_URL", default="sqlite:///database/pki.db"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: local memory by default; CACHE_URL (Redis) to share across workers ------------
CACHES = {
    "default": env.cache_url("CACHE_URL", default="locmemcache://pki-default"),
}

# --- Passwords, i18n, static ------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security: cookies, headers, CSP, HSTS ----------------------------------------------
SESSION_COOKIE_SECURE = PKI_COOKIE_SECURE
CSRF_COOKIE_SECURE = PKI_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "pki_project.errors.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HSTS is sent over HTTPS only (Django's SecurityMiddleware); with secure cookies the site
# is HTTPS, so plain-http requests are redirected, except the relying parties' endpoints
# (CRLs, CA certificates and OCSP are fetched over plain http by design, RFC 5280 §4.2.1.13)
# and the probes.
SECURE_HSTS_SECONDS = env.int("PKI_HSTS_SECONDS", default=31536000) if PKI_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("PKI_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("PKI_HSTS_PRELOAD", default=True)
SECURE_SSL_REDIRECT = PKI_COOKIE_SECURE
SECURE_REDIRECT_EXEMPT = [r"^pki/", r"^health$", r"^ready$"]

# django-csp 4: scripts and styles only from this origin, no inline code (the admin
# templates that had an inline style are overridden under templates/admin/).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# --- Identity: sessions, login rate limits, the Django admin behind the API-key login ------
LOGIN_URL = "/auth/login"
PKI_LOGIN_RATE_WINDOW = env.int("PKI_LOGIN_RATE_WINDOW", default=60)  # seconds
PKI_LOGIN_RATE_PER_IP = env.int("PKI_LOGIN_RATE_PER_IP", default=10)  # attempts per window per client IP
PKI_LOGIN_RATE_PER_KEY = env.int("PKI_LOGIN_RATE_PER_KEY", default=5)  # attempts per window per key prefix
# Refusals (403, 404, 429, rbac) recorded one by one per caller and kind per window (audit.denials).
PKI_AUDIT_DENIALS_PER_WINDOW = env.int("PKI_AUDIT_DENIALS_PER_WINDOW", default=10)
PKI_AUDIT_DENIALS_WINDOW = env.int("PKI_AUDIT_DENIALS_WINDOW", default=60)  # seconds

# Client-certificate login through a TLS-terminating proxy (organizations.client_certificates): the
# proxy's shared secret (empty: off) and the addresses it connects from, checked at start-up.
try:
    PKI_MTLS = mtls_proxy_config()
except ConfigError as error:
    raise ImproperlyConfigured(str(error)) from None

# --- Revocation publishing: CRLs and OCSP (certificates.services.crls / .ocsp) -------------
# Seconds from thisUpdate to nextUpdate of an intermediate's answers: default 86400, 8 h to 10 days (BR 4.9.10,
# checked with the secrets at start-up).
PKI_OCSP_RESPONSE_VALIDITY = ocsp_response_validity()
# Hours between two full CRLs of an intermediate (revocations in between: delta CRLs at once); 1 to 240.
PKI_CRL_FULL_INTERVAL_HOURS = crl_full_interval_hours()
PKI_PKCS11_MODULE = pkcs11_module()  # the PKCS#11 library of token-held CA keys
PKI_PKCS11_PIN_FILE = pkcs11_pin_file()  # the user PIN of the intermediates' token, read at use
PKI_OCSP_RESPONDER_DAYS = env.int("PKI_OCSP_RESPONDER_DAYS", default=7)  # delegated responder certificates
PKI_OCSP_DELEGATED = env.bool("PKI_OCSP_DELEGATED", default=True)  # false: intermediates sign answers themselves
PKI_PUBLIC_RATE_WINDOW = env.int("PKI_PUBLIC_RATE_WINDOW", default=60)  # seconds
PKI_PUBLIC_RATE_PER_IP = env.int("PKI_PUBLIC_RATE_PER_IP", default=1200)  # /pki/ requests per window per IP; 0: off

# --- Expiry notifications (certificates.services.notifications; manage.py notify_expiring) ----
# E-mail goes through Django's mail backends: PKI_EMAIL_URL is smtp://user:password@host:25,
# submission://…:587 (STARTTLS) or smtps://…:465; the default prints messages to the console.
vars().update(env.email_url("PKI_EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("PKI_NOTIFY_FROM", default="pki@localhost")
try:
    _NOTIFY = notification_config()  # bounds in pki_project.config; manage.py and wsgi stop on a bad one first
except ConfigError as error:
    raise ImproperlyConfigured(str(error)) from None
PKI_NOTIFY_TIMEOUT = _NOTIFY.timeout  # seconds per SMTP or webhook delivery
PKI_NOTIFY_MAX_ATTEMPTS = _NOTIFY.max_attempts
PKI_NOTIFY_RETRY_MINUTES = _NOTIFY.retry_minutes  # before the first retry; doubles after each failure
# --- ACME (RFC 8555; acme_server, README "ACME (RFC 8555)") ---------------------------------------
PKI_ACME_EAB_REQUIRED = env.bool("PKI_ACME_EAB_REQUIRED", default=True)  # newAccount needs an EAB credential
PKI_ACME_TERMS_OF_SERVICE = env.str("PKI_ACME_TERMS_OF_SERVICE", default="")  # URL in the directory's meta
PKI_ACME_PROFILE = env.str("PKI_ACME_PROFILE", default="server")  # the issuance profile of ACME orders
PKI_ACME_CERTIFICATE_DAYS = env.int("PKI_ACME_CERTIFICATE_DAYS", default=90)
# Two-person approval (approvals): how long a request waits for its second person before it expires.
PKI_APPROVAL_TTL_HOURS = env.int("PKI_APPROVAL_TTL_HOURS", default=7 * 24)
PKI_ACME_NONCE_LIFETIME = env.int("PKI_ACME_NONCE_LIFETIME", default=3600)  # seconds
PKI_ACME_ORDER_LIFETIME = env.int("PKI_ACME_ORDER_LIFETIME", default=86400)  # seconds, orders and authorizations
PKI_ACME_VALIDATION_WORKERS = env.int("PKI_ACME_VALIDATION_WORKERS", default=4)  # validation threads per process
PKI_ACME_RATE_WINDOW = env.int("PKI_ACME_RATE_WINDOW", default=3600)  # seconds
PKI_ACME_ORDERS_PER_ACCOUNT = env.int("PKI_ACME_ORDERS_PER_ACCOUNT", default=300)  # newOrder per window; 0: off
PKI_ACME_ORDERS_PER_IP = env.int("PKI_ACME_ORDERS_PER_IP", default=300)  # newOrder per window per IP; 0: off
PKI_ACME_ACCOUNTS_PER_IP = env.int("PKI_ACME_ACCOUNTS_PER_IP", default=50)  # newAccount per window per IP; 0: off

# --- Enrollment tokens and EST (RFC 7030; enrollment, README "Enrollment tokens and EST") ----------
PKI_ENROLL_RATE_PER_IP = env.int("PKI_ENROLL_RATE_PER_IP", default=60)  # enrollment requests per window; 0: off
PKI_ENROLL_RATE_WINDOW = env.int("PKI_ENROLL_RATE_WINDOW", default=300)  # seconds
# Dotted path of `(request) -> Certificate | None`: the client's verified current certificate, as the TLS
# front vouches for it (EST simplereenroll); empty: reenrollment takes an enrollment token.
PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR = env.str("PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR", default="")

# --- Request bodies (pki_project.middleware.body, pki_project.uploads) -----------------------
# Every body but the restore's is read into memory and may not exceed this. The largest
# legitimate ones: the issuance page with a pasted 64 KiB CSR (url-encoded, about 70 KiB) or a
# pasted and an uploaded one (about 130 KiB as multipart), an API issuance with a 64 KiB CSR
# and 100 SANs (about 100 KiB of JSON), the decoder's 64 KiB file.
try:
    PKI_MAX_REQUEST_BYTES = max_request_bytes()  # default 256 KiB, from 1 KiB to 64 MiB
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
DATA_UPLOAD_MAX_MEMORY_SIZE = PKI_MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = PKI_MAX_REQUEST_BYTES
# The restore's archive, the one body that goes to disk: 0700, files 0600, swept of a killed
# worker's files by gunicorn's arbiter (pki_project.tempfiles, pki_project/gunicorn.conf.py).
PKI_UPLOAD_DIR = ensure_private_directory(upload_directory())
FILE_UPLOAD_TEMP_DIR = str(PKI_UPLOAD_DIR)
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# --- Backup and restore (backups.validation): bounds on an uploaded archive ------------------
PKI_BACKUP_MAX_UPLOAD_BYTES = env.int("PKI_BACKUP_MAX_UPLOAD_BYTES", default=5_000_000_000)  # 5 GB
PKI_BACKUP_MAX_UNCOMPRESSED_BYTES = env.int("PKI_BACKUP_MAX_UNCOMPRESSED_BYTES", default=10_000_000_000)  # 10 GB
PKI_BACKUP_MAX_ENTRIES = env.int("PKI_BACKUP_MAX_ENTRIES", default=50_000)
PKI_BACKUP_MAX_COMPRESSION_RATIO = env.int("PKI_BACKUP_MAX_COMPRESSION_RATIO", default=200)

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["pki_project.api.PrincipalAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["pki_project.api.HasPrincipal"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only: any other Content-Type is a 415 in the error format (the login form at /auth/session
    # is a plain Django view, not DRF). One body format keeps every field's validation the same.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "pki_project.api.BoundedPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pki_project.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# OpenAPI 3 at /api/schema/, rendered at /api/docs/ (certificates.api: auth schemes; pki_project.openapi: errors,
# headers, Idempotency-Key, /auth/session and /pki/).
SPECTACULAR_SETTINGS = {
    "TITLE": "Private PKI API",
    "DESCRIPTION": "CAs, certificates, CRLs, audit events and API keys. Errors are "
                   '`{"error": {"code", "message"}}` with a 4xx status.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pki_project.openapi.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CaKindEnum": "certificates.models.CertificateAuthority.Kind",
        "CertificateKindEnum": "certificates.models.CertificateKind",
        "RevocationReasonEnum": "certificates.models.RevocationReason",
        "ApprovalStatusEnum": "approvals.models.ApprovalStatus",
        "CertificateStatusEnum": "certificates.models.CertificateStatus",
    },
}
# Behind a TLS-terminating proxy (PKI_BEHIND_TLS_PROXY=true) trust its X-Forwarded-Proto.
if env.bool("PKI_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging: to stderr; secrets are never passed to a logger ----------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("PKI_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# ACME challenge validation (acme_server.validation)
# The validator's reach and time: tests point it at local responders (pebble-challtestsrv).
# Checked at start-up like the secrets (pki_project.config): a bad value stops with one line.
try:
    _acme_validation = acme_validation_config()
except ConfigError as error:
    raise ImproperlyConfigured(str(error)) from None
PKI_ACME_HTTP_PORT = _acme_validation.http_port  # http-01 (RFC 8555 §8.3), default 80
PKI_ACME_TLS_PORT = _acme_validation.tls_port  # tls-alpn-01 (RFC 8737), default 443
PKI_ACME_DNS_RESOLVER = _acme_validation.dns_resolver  # "address:port"; "" = the system resolver
PKI_ACME_VALIDATION_TIMEOUT = _acme_validation.timeout  # seconds for one whole validation, default 10
