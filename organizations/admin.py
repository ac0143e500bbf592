"""Admin for users, organizations, memberships and API keys, scoped to the staff member's organization.

`OrganizationScopedAdminMixin` is reusable by other apps: set `organization_field` to the
lookup from the model to its organization and the changelist, change pages and actions
show a non-global member only their own organization's objects (others answer 404).
API keys are listed, never shown: no key, no hash; they are created by the command or
the API (which show the key once) and revoked with the "Revoke" action.

Users, memberships and organizations are written only through `organizations.services`,
which applies the same rules as every other channel and records an audit
event with the values before and after. The user admin has no superuser, staff, groups,
permissions or password field: roles come from memberships alone, and the role groups
are read-only. Nobody edits their own membership or deactivates or deletes themself.
Django's bulk "delete selected" is not offered here: deletions go one by one through the
services, and a save that changes nothing leaves no trace.
"""

from __future__ import annotations

import django.contrib.auth.admin  # noqa: F401  (registers User and Group, which are replaced below)
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect

from certificates.models import Certificate, CertificateKind
from organizations.client_certificates import bind_client_certificate, unbind_client_certificate
from organizations.models import ROLE_CHOICES, ApiKey, ClientCertificateBinding, Membership, Organization
from organizations.principal import Principal
from organizations.services import (
    SELF_CHANGE_REFUSED,
    USER_PROFILE_FIELDS,
    IdentityError,
    OrganizationError,
    add_user,
    change_user,
    check_membership_change,
    clean_organization_name,
    clean_user_profile,
    create_organization,
    delete_membership,
    delete_organization,
    delete_user,
    may_change_access_of,
    rename_organization,
    revoke_api_key,
    set_membership,
)
from pki_project.actor import Actor
from pki_project.api import scope_to_principal

User = get_user_model()
SERVICE_ERRORS = (IdentityError, OrganizationError)


def _principal(request) -> Principal | None:
    return getattr(request, "principal", None)


def _actor(request) -> Actor:
    return Actor.from_request(request)


def _is_global_admin(request) -> bool:
    """From the request's principal (the membership, read on every request), not from Django's flags."""
    principal = _principal(request)
    return principal is not None and principal.is_global_admin


def _may_change_access_of(request, user_id: int | None) -> bool:
    return _principal(request) is not None and may_change_access_of(_principal(request), user_id)


class OrganizationScopedAdminMixin:
    organization_field = "organization"

    def get_queryset(self, request):
        return scope_to_principal(super().get_queryset(request), _principal(request), self.organization_field)


class RevokeOnlyAdminMixin:
    """A credential shown once at creation: afterwards only listed and revoked (the list's action), never
    edited or deleted, so its audit trail and what it bound stay."""

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)  # the list's action only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class GlobalAdminWritesMixin:
    """Only a global admin adds, changes or deletes; others may at most view."""

    def has_add_permission(self, request, *args) -> bool:
        return _is_global_admin(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request)


class ServiceWritesMixin:
    """Forms learn who acts; a refusal of the services becomes a message; no bulk delete; no-op saves log nothing."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a new class per call: the attribute is this request's
        form.actor = _actor(request)
        return form

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SERVICE_ERRORS as error:  # a rule the form could not check first (e.g. a concurrent change)
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.path)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except SERVICE_ERRORS as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.path.removesuffix("delete/") + "change/")

    def log_change(self, request, obj, message):
        if not message:  # nothing changed, so there is nothing to log (and no audit event either)
            return None
        return super().log_change(request, obj, message)


class ActorForm(forms.ModelForm):
    actor: Actor | None = None  # set by ServiceWritesMixin.get_form for the request at hand

    def acting(self) -> Actor:
        if self.actor is None:
            raise ValidationError("This form checks who is acting; use it through the admin.")
        return self.actor


# --- Organizations -------------------------------------------------------------------------------


class OrganizationForm(ActorForm):
    class Meta:
        model = Organization
        fields = ["name", "slug"]

    def clean_name(self) -> str:
        try:
            return clean_organization_name(self.cleaned_data["name"])
        except OrganizationError as error:
            raise ValidationError(str(error)) from None


@admin.register(Organization)
class OrganizationAdmin(ServiceWritesMixin, GlobalAdminWritesMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "pk"
    form = OrganizationForm
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return ["slug", "created_at"] if obj else ["created_at"]  # the slug never changes: scripts and names use it

    def save_model(self, request, obj, form, change) -> None:
        if change:
            rename_organization(obj, obj.name, actor=_actor(request))
        else:
            obj.pk = create_organization(obj.name, obj.slug, request=request, principal=_principal(request)).pk

    def delete_model(self, request, obj) -> None:
        delete_organization(obj, actor=_actor(request))


# --- Memberships ---------------------------------------------------------------------------------


class MembershipForm(ActorForm):
    class Meta:
        model = Membership
        fields = ["user", "role", "organization"]

    def clean(self) -> dict:
        cleaned = super().clean()
        user = cleaned.get("user") or (self.instance.user if self.instance.user_id else None)
        if user is not None and cleaned.get("role"):
            try:
                check_membership_change(user, cleaned["role"], cleaned.get("organization"), actor=self.acting())
            except IdentityError as error:
                raise ValidationError(str(error)) from None
        return cleaned


@admin.register(Membership)
class MembershipAdmin(ServiceWritesMixin, GlobalAdminWritesMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "role", "organization"]
    list_filter = ["role", ("organization", RelatedOnlyFieldListFilter)]  # only the organizations one may see
    search_fields = ["user__username"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return ["user"] if obj else []

    def has_change_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request) and (obj is None or _may_change_access_of(request, obj.user_id))

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":  # a new membership is for a user without one; others are changed in place
            kwargs["queryset"] = User.objects.filter(membership__isnull=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        obj.pk = set_membership(obj.user, obj.role, obj.organization, actor=_actor(request)).pk

    def delete_model(self, request, obj) -> None:
        delete_membership(obj, actor=_actor(request))


# --- Users and the role groups -------------------------------------------------------------------


class UserAddForm(ActorForm):
    """A new user is created with their membership: without one nobody can sign in."""

    role = forms.ChoiceField(choices=ROLE_CHOICES)
    organization = forms.ModelChoiceField(Organization.objects.all(), required=False,
                                          help_text="Leave empty only for a global admin.")

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email"]

    def clean(self) -> dict:
        cleaned = super().clean()
        try:
            clean_user_profile({name: cleaned.get(name, "") for name in USER_PROFILE_FIELDS})
            if cleaned.get("username") and cleaned.get("role"):
                check_membership_change(User(username=cleaned["username"]), cleaned["role"],
                                        cleaned.get("organization"), actor=self.acting())
        except IdentityError as error:
            raise ValidationError(str(error)) from None
        return cleaned


class UserChangeForm(ActorForm):
    class Meta:
        model = User
        fields = [*USER_PROFILE_FIELDS, "is_active"]

    def clean(self) -> dict:
        cleaned = super().clean()
        try:
            clean_user_profile({name: cleaned.get(name, "") for name in USER_PROFILE_FIELDS})
        except IdentityError as error:
            raise ValidationError(str(error)) from None
        if "is_active" in self.changed_data and self.acting().principal is not None \
                and self.acting().principal.user_id == self.instance.pk:
            raise ValidationError(SELF_CHANGE_REFUSED)
        return cleaned


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(ServiceWritesMixin, admin.ModelAdmin):
    """Global admins only. What may change: name, e-mail, active (and, when created, the username)."""

    list_display = ["username", "email", "role", "organization", "is_active", "last_login"]
    list_filter = ["is_active", "membership__role", ("membership__organization", RelatedOnlyFieldListFilter)]
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering = ["username"]
    actions = ["deactivate_users", "activate_users"]
    add_fields = ["username", "first_name", "last_name", "email", "role", "organization"]
    change_fields = ["username", *USER_PROFILE_FIELDS, "is_active", "access", "last_login", "date_joined"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("membership__organization")

    def get_fields(self, request, obj=None) -> list[str]:
        return self.change_fields if obj else self.add_fields

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return ["username", "access", "last_login", "date_joined"] if obj else []

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = UserChangeForm if obj else UserAddForm
        return super().get_form(request, obj, **kwargs)

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request)

    def has_add_permission(self, request) -> bool:
        return _is_global_admin(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request) and (obj is None or _may_change_access_of(request, obj.pk))

    def save_model(self, request, obj, form, change) -> None:
        if change:
            change_user(obj, actor=_actor(request), **{name: form.cleaned_data[name] for name in form.changed_data})
        else:
            add_user(obj, form.cleaned_data["role"], form.cleaned_data["organization"], actor=_actor(request))

    def delete_model(self, request, obj) -> None:
        delete_user(obj, actor=_actor(request))

    @staticmethod
    def _membership(user) -> Membership | None:
        try:
            return user.membership
        except Membership.DoesNotExist:
            return None

    @admin.display(description="role", ordering="membership__role")
    def role(self, user) -> str:
        membership = self._membership(user)
        return membership.role if membership else "—"

    @admin.display(description="organization", ordering="membership__organization__slug")
    def organization(self, user) -> str:
        membership = self._membership(user)
        if membership is None:
            return "—"
        return membership.organization.slug if membership.organization_id else "every organization"

    @admin.display(description="access (from the membership)")
    def access(self, user) -> str:
        membership = self._membership(user)
        if membership is None:
            return "No membership: cannot sign in, no admin access."
        if membership.is_global_admin:
            return "Global admin: superuser in the admin, every organization."
        return f"{membership.role} of {membership.organization.slug}: staff, in the group of the role."

    @admin.action(description="Deactivate selected users (their sessions end at once)", permissions=["change"])
    def deactivate_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Activate selected users", permissions=["change"])
    def activate_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, *, active: bool) -> None:
        changed = 0
        for user in queryset:
            try:
                changed += bool(change_user(user, actor=_actor(request), is_active=active))
            except IdentityError as error:
                self.message_user(request, f"{user.get_username()}: {error}", messages.ERROR)
        self.message_user(request, f"{'Activated' if active else 'Deactivated'} {changed} user(s).", messages.SUCCESS)


@admin.register(Group)
class RoleGroupAdmin(admin.ModelAdmin):
    """The role groups, read-only: members come from `sync_user_access`, permissions from `refresh_role_groups`."""

    list_display = ["name"]
    fields = ["name", "permissions"]
    readonly_fields = fields
    actions = None

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_global_admin(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- API keys ------------------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "user__membership__organization"
    list_display = ["prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "label", "user__username"]
    fields = ["prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at",  # never key_hash
              "allowed_cas", "allowed_profiles", "max_validity_days"]
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


# --- Client-certificate bindings (mTLS sign-in) ---------------------------------------------------


@admin.register(ClientCertificateBinding)
class ClientCertificateBindingAdmin(ServiceWritesMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    """Bind a certificate to the member who signs in with it; unbind by deleting. Bindings are not edited."""

    organization_field = "certificate__organization"
    list_display = ["certificate", "user", "created_at", "created_by"]
    search_fields = ["user__username", "certificate__serial", "certificate__fingerprint_sha256"]
    fields = ["user", "certificate", "created_at", "created_by"]
    readonly_fields = ["created_at", "created_by"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # unbind and bind anew: each step is on the audit trail

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        principal = _principal(request)
        if db_field.name == "certificate":
            kwargs["queryset"] = scope_to_principal(
                Certificate.objects.filter(kind=CertificateKind.END_ENTITY, revoked_at__isnull=True,
                                           client_binding__isnull=True), principal)
        elif db_field.name == "user":
            kwargs["queryset"] = scope_to_principal(User.objects.filter(membership__organization__isnull=False),
                                                    principal, "membership__organization")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        saved = bind_client_certificate(obj.user, obj.certificate, actor=_actor(request))
        obj.pk, obj.created_at, obj.created_by = saved.pk, saved.created_at, saved.created_by

    def delete_model(self, request, obj) -> None:
        unbind_client_certificate(obj, actor=_actor(request))
