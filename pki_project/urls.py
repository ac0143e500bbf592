"""Root URLconf. Every route served here must have an entry in rbac.json."""

from django.contrib import admin
from django.urls import include, path

from pki_project import health

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("pki_project.api_urls")),
]
