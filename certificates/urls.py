"""The staff pages (included at the root from pki_project.urls); every route is in rbac.json."""

from django.urls import path

from certificates import views

urlpatterns = [
    path("", views.dashboard, name="pki-dashboard"),
    path("organizations", views.organizations, name="pki-organizations"),
    path("create-organization", views.create_organization_page, name="pki-create-organization"),
    path("certificates", views.certificate_list, name="pki-certificates"),
    path("certificates/export.csv", views.certificate_export, name="pki-certificates-export"),
    path("certificates/issue", views.issue, name="pki-issue"),
    path("certificates/<int:pk>", views.certificate_detail, name="pki-certificate"),
    path("certificates/<int:pk>/download", views.certificate_download, name="pki-certificate-download"),
    path("certificates/<int:pk>/pkcs12-password", views.certificate_reveal_password, name="pki-certificate-reveal"),
    path("certificates/<int:pk>/revoke", views.certificate_revoke, name="pki-certificate-revoke"),
    path("certificates/<int:pk>/renew", views.certificate_renew, name="pki-certificate-renew"),
    path("toolbox", views.toolbox, name="pki-toolbox"),
    path("toolbox/decode", views.toolbox_decode, name="pki-toolbox-decode"),
    path("toolbox/crl", views.toolbox_crl, name="pki-toolbox-crl"),
]
