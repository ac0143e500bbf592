"""The approvals page (included at the root from pki_project.urls); every route is in rbac.json."""

from django.urls import path

from approvals import views

urlpatterns = [
    path("approvals", views.approvals_page, name="pki-approvals"),
    path("approvals/<int:pk>/approve", views.approve_view, name="pki-approval-approve"),
    path("approvals/<int:pk>/reject", views.reject_view, name="pki-approval-reject"),
]
