"""The ACME objects in the admin, scoped to the staff member's organization (a global admin sees all).

External account keys are created here (the HMAC key is shown once, on the page that answers the
creation, never stored in a message or cookie) and revoked with an action; accounts, orders and
their authorizations are read-only views of what the protocol did.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse

from acme_server.models import Account, Authorization, ExternalAccountKey, Order
from acme_server.services.eab import create_eab_key, revoke_eab_key
from certificates.errors import ServiceError
from certificates.models import CertificateAuthority
from organizations.admin import OrganizationScopedAdminMixin, RevokeOnlyAdminMixin
from organizations.models import Organization
from pki_project.actor import Actor


class EabCreateForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), required=False,
                                help_text="Optional: the only intermediate CA whose directory accepts this key.")
    label = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        organizations = Organization.objects.all()
        cas = CertificateAuthority.objects.filter(parent__isnull=False)
        if principal is None or not principal.is_global_admin:
            organization_id = principal.organization_id if principal else None
            organizations = organizations.filter(pk=organization_id)
            cas = cas.filter(organization_id=organization_id)
        self.fields["organization"].queryset = organizations
        self.fields["ca"].queryset = cas


class ReadOnly:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExternalAccountKey)
class ExternalAccountKeyAdmin(RevokeOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["key_id", "organization", "ca", "label", "state", "bound_account", "created_at"]
    list_select_related = ["organization", "ca", "account"]
    search_fields = ["key_id", "label"]
    actions = ["revoke_selected"]
    readonly_fields = ["key_id", "organization", "ca", "label", "created_by", "created_at", "used_at", "revoked_at",
                       "bound_account"]
    fields = readonly_fields

    @admin.display(description="state")
    def state(self, obj: ExternalAccountKey) -> str:
        return "revoked" if obj.revoked_at else "used" if obj.used_at else "unused"

    @admin.display(description="account")
    def bound_account(self, obj: ExternalAccountKey) -> str:
        account = getattr(obj, "account", None)
        return account.name if account else "-"

    def add_view(self, request: HttpRequest, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            return super().add_view(request, form_url, extra_context)
        principal = getattr(request, "principal", None)
        form = EabCreateForm(request.POST or None, principal=principal)
        if request.method == "POST" and form.is_valid():
            try:
                created = create_eab_key(form.cleaned_data["organization"], actor=Actor.from_request(request),
                                         ca=form.cleaned_data["ca"], label=form.cleaned_data["label"])
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                response = TemplateResponse(request, "admin/acme_server/eab_created.html", {
                    **self.admin_site.each_context(request), "credential": created.credential,
                    "hmac_key": created.hmac_key, "title": "ACME external account key created"})
                response["Cache-Control"] = "no-store"
                return response
        context = {**self.admin_site.each_context(request), "title": "Create an ACME external account key",
                   "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/acme_server/eab_form.html", context)

    @admin.action(description="Revoke the selected external account keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for credential in queryset:
            try:
                revoke_eab_key(credential, actor=Actor.from_request(request))
                revoked += 1
            except ServiceError as error:
                self.message_user(request, f"{credential.key_id}: {error.message}", messages.WARNING)
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)


@admin.register(Account)
class AccountAdmin(ReadOnly, OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "ca", "status", "contacts", "eab_key", "created_at"]
    list_filter = ["status"]
    list_select_related = ["organization", "ca", "external_key"]
    search_fields = ["name", "thumbprint"]
    readonly_fields = ["name", "organization", "ca", "status", "contacts", "thumbprint", "jwk", "terms_agreed",
                       "external_key", "created_at", "updated_at"]

    @admin.display(description="EAB key id")
    def eab_key(self, obj: Account) -> str:
        return obj.external_key.key_id if obj.external_key_id else "-"


class AuthorizationInline(ReadOnly, admin.TabularInline):
    model = Authorization
    fields = ["identifier_type", "identifier_value", "wildcard", "status", "expires_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Order)
class OrderAdmin(ReadOnly, OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "account", "ca", "status", "names", "certificate", "expires_at", "created_at"]
    list_filter = ["status"]
    list_select_related = ["account", "ca", "certificate"]
    search_fields = ["name", "account__name"]
    readonly_fields = ["name", "account", "organization", "ca", "status", "identifiers", "expires_at", "error",
                       "certificate", "created_at", "updated_at"]
    inlines = [AuthorizationInline]

    @admin.display(description="identifiers")
    def names(self, obj: Order) -> str:
        return ", ".join(identifier["value"] for identifier in obj.identifiers)
