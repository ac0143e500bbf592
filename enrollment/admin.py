"""Enrollment tokens in the admin, scoped to the staff member's organization (a global admin sees all).

A token is created here (shown once, on the page that answers the creation, never stored in a
message or cookie) and revoked with an action; nothing else about it can be changed.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpRequest
from django.template.response import TemplateResponse

from certificates.errors import ServiceError
from certificates.models import CertificateAuthority, CertificateProfile
from enrollment.models import EnrollmentToken
from enrollment.services.tokens import create_token, revoke_token
from organizations.admin import OrganizationScopedAdminMixin, RevokeOnlyAdminMixin
from organizations.models import Organization
from pki_project.actor import Actor

LIFETIMES = [(3600, "1 hour"), (86400, "24 hours"), (7 * 86400, "7 days"), (30 * 86400, "30 days")]


class EnrollmentTokenCreateForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), label="CA")
    profile = forms.ModelChoiceField(queryset=CertificateProfile.objects.none())
    san_patterns = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Allowed names",
                                   help_text="One pattern a line: DNS:*.fleet.example.com, IP:10.0.0.0/8, "
                                             "EMAIL:*@example.com, CN:robot-*")
    expires_in = forms.TypedChoiceField(choices=LIFETIMES, coerce=int, initial=86400, label="Expires in")
    label = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, principal=None, **kwargs):
        super().__init__(*args, **kwargs)
        organizations = Organization.objects.all()
        cas = CertificateAuthority.objects.filter(parent__isnull=False)
        profiles = CertificateProfile.objects.filter(enabled=True)
        if principal is None or not principal.is_global_admin:
            organization_id = principal.organization_id if principal else None
            organizations = organizations.filter(pk=organization_id)
            cas = cas.filter(organization_id=organization_id)
            profiles = profiles.filter(Q(organization__isnull=True) | Q(organization_id=organization_id))
        self.fields["organization"].queryset = organizations
        self.fields["ca"].queryset = cas
        self.fields["profile"].queryset = profiles

    def clean_san_patterns(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["san_patterns"].splitlines() if line.strip()]


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(RevokeOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ["token_id", "organization", "ca", "profile", "label", "state", "expires_at", "certificate"]
    list_select_related = ["organization", "ca", "profile", "certificate"]
    search_fields = ["token_id", "label"]
    actions = ["revoke_selected"]
    readonly_fields = ["token_id", "organization", "ca", "profile", "san_patterns", "label", "created_by",
                       "created_at", "expires_at", "used_at", "revoked_at", "certificate"]
    fields = readonly_fields

    @admin.display(description="state")
    def state(self, obj: EnrollmentToken) -> str:
        return obj.state

    def add_view(self, request: HttpRequest, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            return super().add_view(request, form_url, extra_context)
        form = EnrollmentTokenCreateForm(request.POST or None, principal=getattr(request, "principal", None))
        if request.method == "POST" and form.is_valid():
            values = form.cleaned_data
            try:
                created = create_token(values["organization"], ca=values["ca"], profile=values["profile"],
                                       san_patterns=values["san_patterns"], expires_in=values["expires_in"],
                                       label=values["label"], actor=Actor.from_request(request))
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                response = TemplateResponse(request, "admin/enrollment/token_created.html", {
                    **self.admin_site.each_context(request), "token": created.token, "secret": created.secret,
                    "title": "Enrollment token created"})
                response["Cache-Control"] = "no-store"
                return response
        context = {**self.admin_site.each_context(request), "title": "Create an enrollment token", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/enrollment/token_form.html", context)

    @admin.action(description="Revoke the selected enrollment tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for token in queryset:
            try:
                revoke_token(token, actor=Actor.from_request(request))
                revoked += 1
            except ServiceError as error:
                self.message_user(request, f"{token.token_id}: {error.message}", messages.WARNING)
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)
