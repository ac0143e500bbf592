"""Routes under /api/v1/. Each app adds its own lines here; every route needs an rbac.json entry."""

from django.urls import path  # noqa: F401  (used as apps add their routes)

urlpatterns: list = []
