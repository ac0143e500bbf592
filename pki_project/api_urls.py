"""Routes under /api/v1/. Each app adds its own lines here; every route needs an rbac.json entry."""

from django.urls import path

from acme_server import api as acme_api
from audit import api as audit_api
from certificates import api as certificates_api
from organizations import api as organizations_api

urlpatterns: list = [
    path("organizations/", organizations_api.OrganizationList.as_view(), name="organization-list"),
    path("organizations/<int:id>/", organizations_api.OrganizationDetail.as_view(), name="organization-detail"),
    path("api-keys/", organizations_api.ApiKeyList.as_view(), name="api-key-list"),
    path("api-keys/<int:id>/", organizations_api.ApiKeyDetail.as_view(), name="api-key-detail"),
    path("api-keys/<int:id>/revoke/", organizations_api.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("acme/eab/", acme_api.EabCreate.as_view(), name="acme-eab-create"),
    path("audit-events/", audit_api.AuditEventViewSet.as_view({"get": "list"}), name="audit-event-list"),
    path("audit-events/verify/", audit_api.AuditChainVerify.as_view(), name="audit-event-verify"),
    path("audit-events/<int:id>/", audit_api.AuditEventViewSet.as_view({"get": "retrieve"}), name="audit-event-detail"),
    path("cas/", certificates_api.CertificateAuthorityList.as_view(), name="ca-list"),
    path("cas/<int:id>/", certificates_api.CertificateAuthorityDetail.as_view(), name="ca-detail"),
    path("cas/<int:id>/crl/", certificates_api.CrlRegenerate.as_view(), name="ca-crl"),
    path("crls/", certificates_api.CrlPublishAll.as_view(), name="crl-publish-all"),
    path("profiles/", certificates_api.CertificateProfileList.as_view(), name="profile-list"),
    path("profiles/<int:id>/", certificates_api.CertificateProfileDetail.as_view(), name="profile-detail"),
    path("certificates/", certificates_api.CertificateList.as_view(), name="certificate-list"),
    path("certificates/<int:id>/", certificates_api.CertificateDetail.as_view(), name="certificate-detail"),
    path("certificates/<int:id>/renew/", certificates_api.CertificateRenew.as_view(), name="certificate-renew"),
    path("certificates/<int:id>/revoke/", certificates_api.CertificateRevoke.as_view(), name="certificate-revoke"),
    path("certificates/<int:id>/download/", certificates_api.CertificateDownload.as_view(),
         name="certificate-download"),
    path("certificates/<int:id>/pkcs12-password/", certificates_api.Pkcs12PasswordReveal.as_view(),
         name="certificate-pkcs12-password"),
]
