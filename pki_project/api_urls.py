"""Routes under /api/v1/. Each app adds its own lines here; every route needs an rbac.json entry."""

from django.urls import path

from organizations import api as organizations_api

urlpatterns: list = [
    path("organizations/", organizations_api.OrganizationList.as_view(), name="organization-list"),
    path("organizations/<int:id>/", organizations_api.OrganizationDetail.as_view(), name="organization-detail"),
]
