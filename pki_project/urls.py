"""Root URLconf. Every route served here must have an entry in rbac.json."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from backups import views as backup_views
from certificates.api import ApiDocsView
from enrollment import views as enrollment_views
from pki_project import auth_views, health
from pki_project.metrics import metrics_view

urlpatterns = [
    # First: the relying parties' hot path (OCSP, CRLs) resolves before the admin's and API's patterns.
    path("pki/", include("certificates.public_urls")),
    path("acme/<slug:ca>/", include("acme_server.urls")),  # ACME (RFC 8555), public
    path(".well-known/est/<slug:ca>/", include("enrollment.est_urls")),  # EST (RFC 7030), public
    path("enroll/", enrollment_views.enroll, name="enroll"),  # a CSR with a one-time enrollment token, public
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("auth/login", auth_views.login_page, name="login"),
    path("auth/session", auth_views.session, name="session"),
    path("auth/mtls", auth_views.mtls_login, name="mtls-login"),
    path("auth/logout", auth_views.logout, name="logout"),
    # Before "admin/": the admin's catch-all would swallow them.
    path("admin/backup/database", backup_views.backup_database, name="backup-database"),
    path("admin/restore/database", backup_views.restore_database, name="restore-database"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("pki_project.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", ApiDocsView.as_view(), name="api-docs"),
    path("", include("organizations.urls")),  # staff pages: API keys
    path("", include("approvals.urls")),  # the approvals page
    path("", include("certificates.urls")),  # staff pages: dashboard, organizations, issuance, toolbox
]

# Generic pages or JSON errors; no internal detail reaches a client (pki_project.errors).
handler400 = "pki_project.errors.bad_request"
handler403 = "pki_project.errors.permission_denied"
handler404 = "pki_project.errors.page_not_found"
handler500 = "pki_project.errors.server_error"
