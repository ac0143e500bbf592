"""Routes under /api/v1/. Each app adds its own lines here; every route needs an rbac.json entry."""

from django.urls import path

from acme_server import api as acme_api
from approvals import api as approvals_api
from audit import api as audit_api
from certificates import api as certificates_api
from enrollment import api as enrollment_api
from organizations import api as organizations_api
from organizations import client_certificate_api

urlpatterns: list = [
    path("organizations/", organizations_api.OrganizationList.as_view(), name="organization-list"),
    path("organizations/<int:id>/", organizations_api.OrganizationDetail.as_view(), name="organization-detail"),
    path("api-keys/", organizations_api.ApiKeyList.as_view(), name="api-key-list"),
    path("api-keys/<int:id>/", organizations_api.ApiKeyDetail.as_view(), name="api-key-detail"),
    path("api-keys/<int:id>/revoke/", organizations_api.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("acme/eab/", acme_api.EabList.as_view(), name="acme-eab-list"),
    path("acme/eab/<int:id>/", acme_api.EabDetail.as_view(), name="acme-eab-detail"),
    path("acme/eab/<int:id>/revoke/", acme_api.EabRevoke.as_view(), name="acme-eab-revoke"),
    path("enrollment-tokens/", enrollment_api.EnrollmentTokenList.as_view(), name="enrollment-token-list"),
    path("enrollment-tokens/<int:id>/", enrollment_api.EnrollmentTokenDetail.as_view(),
         name="enrollment-token-detail"),
    path("enrollment-tokens/<int:id>/revoke/", enrollment_api.EnrollmentTokenRevoke.as_view(),
         name="enrollment-token-revoke"),
    path("client-certificate-bindings/", client_certificate_api.ClientCertificateBindingList.as_view(),
         name="client-certificate-binding-list"),
    path("client-certificate-bindings/<int:id>/", client_certificate_api.ClientCertificateBindingDetail.as_view(),
         name="client-certificate-binding-detail"),
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
    path("approvals/", approvals_api.ApprovalList.as_view(), name="approval-list"),
    path("approvals/<int:id>/", approvals_api.ApprovalDetail.as_view(), name="approval-detail"),
    path("approvals/<int:id>/approve/", approvals_api.ApprovalApprove.as_view(), name="approval-approve"),
    path("approvals/<int:id>/reject/", approvals_api.ApprovalReject.as_view(), name="approval-reject"),
]
