"""Admin for organizations, memberships and API keys, scoped to the staff member's organization.

`OrganizationScopedAdminMixin` is reusable by other apps: set `organization_field` to the
lookup from the model to its organization and the changelist, change pages and actions
show a non-global member only their own organization's objects (others answer 404).
API keys are listed, never shown: no key, no hash; they are created by the command or
the API (which show the key once) and revoked with the "Revoke" action.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from organizations.models import ApiKey, Membership, Organization
from organizations.principal import Principal
from organizations.services import OrganizationError, clean_organization_name, revoke_api_key
from pki_project.api import scope_to_principal


def _principal(request) -> Principal | None:
    return getattr(request, "principal", None)


class OrganizationScopedAdminMixin:
    organization_field = "organization"

    def get_queryset(self, request):
        return scope_to_principal(super().get_queryset(request), _principal(request), self.organization_field)


class GlobalAdminWritesMixin:
    """Only a global admin (a superuser) adds, changes or deletes; others may at most view."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


class OrganizationAdminForm(forms.ModelForm):
    """The admin's add and change form keeps the service's rule for names (no bidi or invisible characters)."""

    class Meta:
        model = Organization
        fields = ["name", "slug"]

    def clean_name(self) -> str:
        try:
            return clean_organization_name(self.cleaned_data.get("name") or "")
        except OrganizationError as error:
            raise forms.ValidationError(str(error), code=error.code) from None


@admin.register(Organization)
class OrganizationAdmin(GlobalAdminWritesMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    form = OrganizationAdminForm
    organization_field = "pk"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]


@admin.register(Membership)
class MembershipAdmin(GlobalAdminWritesMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["user", "role", "organization"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username"]
    autocomplete_fields = []

    def save_model(self, request, obj, form, change) -> None:
        from organizations.services import set_membership

        set_membership(obj.user, obj.role, obj.organization)  # syncs is_staff/superuser/groups


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "user__membership__organization"
    list_display = ["prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "label", "user__username"]
    fields = ["prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]  # never key_hash
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are created by create_api_key or the API, which show the key once

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the record stays for the audit trail

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        revoked = sum(
            revoke_api_key(api_key, request=request, principal=_principal(request)) for api_key in queryset
        )
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
