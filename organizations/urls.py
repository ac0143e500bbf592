"""The staff pages for API keys (included at the root from pki_project.urls); every route is in rbac.json."""

from django.urls import path

from organizations import views

urlpatterns = [
    path("api-keys", views.api_keys, name="pki-api-keys"),
    path("api-keys/<int:pk>/revoke", views.api_key_revoke, name="pki-api-key-revoke"),
]
