"""Routes under /api/v1/. Each app adds its own lines here; every route needs an rbac.json entry."""

from django.urls import path

from audit import api as audit_api
from organizations import api as organizations_api

urlpatterns: list = [
    path("organizations/", organizations_api.OrganizationList.as_view(), name="organization-list"),
    path("organizations/<int:id>/", organizations_api.OrganizationDetail.as_view(), name="organization-detail"),
    path("api-keys/", organizations_api.ApiKeyList.as_view(), name="api-key-list"),
    path("api-keys/<int:id>/revoke/", organizations_api.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("audit-events/", audit_api.AuditEventViewSet.as_view({"get": "list"}), name="audit-event-list"),
    path("audit-events/<int:id>/", audit_api.AuditEventViewSet.as_view({"get": "retrieve"}), name="audit-event-detail"),
]
