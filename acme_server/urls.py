"""ACME routes (included under `acme/<slug:ca>/`); every one is public in rbac.json."""

from django.urls import path

from acme_server import views

urlpatterns = [
    path("directory", views.directory, name="acme-directory"),
    path("new-nonce", views.new_nonce, name="acme-new-nonce"),
    path("new-account", views.new_account, name="acme-new-account"),
    path("account/<str:name>", views.account, name="acme-account"),
    path("account/<str:name>/orders", views.account_orders, name="acme-account-orders"),
    path("key-change", views.key_change, name="acme-key-change"),
    path("new-order", views.new_order, name="acme-new-order"),
    path("order/<str:name>", views.order, name="acme-order"),
    path("order/<str:name>/finalize", views.finalize, name="acme-finalize"),
    path("authz/<str:name>", views.authorization, name="acme-authz"),
    path("challenge/<str:name>", views.challenge, name="acme-challenge"),
    path("cert/<str:name>", views.certificate, name="acme-certificate"),
    path("revoke-cert", views.revoke_cert, name="acme-revoke-cert"),
    path("renewal-info/<str:cert_id>", views.renewal_info, name="acme-renewal-info"),
]
