"""The admin pages of expiry notifications: targets (through the service) and what was sent (read-only).

Only admins (of the organization, or global) see and change targets
(`certificates.services.permissions`, action `manage_notifications`). A webhook's signing key
is shown once, on the page that answers the creation, and never again.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse

from certificates.admin import ReadOnlyAdminMixin  # this module is imported at the end of certificates.admin
from certificates.errors import ServiceError
from certificates.notification_models import ExpiryNotification, NotificationKind, NotificationTarget
from certificates.services.notifications import (
    create_target,
    delete_target,
    describe_target,
    parse_bands,
    update_target,
)
from certificates.services.permissions import Action, may_ever, permits
from organizations.admin import OrganizationScopedAdminMixin
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.api import scope_to_principal

NEW_SECRET_ATTRIBUTE = "_pki_new_webhook_secret"  # noqa: S105  (an attribute name)


class NotificationTargetForm(forms.ModelForm):
    bands = forms.CharField(initial="30,7,1", help_text="Days before expiry to notify at, e.g. 30,7,1.")

    class Meta:
        model = NotificationTarget
        fields = ["organization", "kind", "address", "bands", "enabled"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["bands"] = ",".join(str(band) for band in self.instance.bands)

    def clean_bands(self) -> list[int]:
        try:
            return parse_bands(self.cleaned_data["bands"])
        except ServiceError as error:
            raise ValidationError(error.message) from None


def _principal(request: HttpRequest):
    return getattr(request, "principal", None)


@admin.register(NotificationTarget)
class NotificationTargetAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    form = NotificationTargetForm
    list_display = ["organization", "kind", "recipient", "bands", "enabled", "created_at"]
    list_filter = ["kind", "enabled"]

    @admin.display(description="to")
    def recipient(self, obj: NotificationTarget) -> str:
        return describe_target(obj)

    def get_readonly_fields(self, request, obj=None):
        return ["organization", "kind", "address", "created_by", "created_at"] if obj else []

    def get_fields(self, request, obj=None):
        if obj:
            return ["organization", "kind", "address", "bands", "enabled", "created_by", "created_at"]
        return ["organization", "kind", "address", "bands"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization":
            kwargs["queryset"] = scope_to_principal(Organization.objects.all(), _principal(request), "pk")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _may(self, request: HttpRequest, obj: NotificationTarget | None) -> bool:
        if obj is None:
            return may_ever(_principal(request), Action.MANAGE_NOTIFICATIONS)
        return permits(_principal(request), Action.MANAGE_NOTIFICATIONS, obj.organization)

    def has_module_permission(self, request) -> bool:
        return self._may(request, None)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._may(request, None)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        actor = Actor.from_request(request)
        if change:
            updated = update_target(obj, actor=actor, bands=form.cleaned_data["bands"],
                                    enabled=form.cleaned_data["enabled"])
            obj.pk, obj.bands, obj.enabled = updated.pk, updated.bands, updated.enabled
            return
        created = create_target(form.cleaned_data["organization"], form.cleaned_data["kind"],
                                form.cleaned_data["address"], form.cleaned_data["bands"], actor=actor)
        obj.pk = created.target.pk
        setattr(request, NEW_SECRET_ATTRIBUTE, created.webhook_secret)

    def delete_model(self, request, obj) -> None:
        delete_target(obj, actor=Actor.from_request(request))

    def log_addition(self, request, obj, message):
        return None  # the audit trail has the event (notification_target.create); Django's log adds nothing

    def log_change(self, request, obj, message):
        return None

    def log_deletion(self, request, obj, object_repr):
        return None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as error:  # a duplicate committed meanwhile, a refusal the form could not foresee
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, NEW_SECRET_ATTRIBUTE, None)
        if obj.kind != NotificationKind.WEBHOOK or not secret:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "title": "Webhook created", "target": obj,
                   "recipient": describe_target(obj), "secret": secret, "opts": self.model._meta}
        response = TemplateResponse(request, "admin/certificates/notificationtarget/created.html", context)
        return response


@admin.register(ExpiryNotification)
class ExpiryNotificationAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "target__organization"
    list_display = ["certificate", "recipient", "band", "status", "attempts", "sent_at", "next_attempt_at",
                    "last_error"]
    list_filter = ["status", "band"]
    list_select_related = ["target", "certificate"]

    @admin.display(description="to")
    def recipient(self, obj: ExpiryNotification) -> str:
        return describe_target(obj.target)

    def get_actions(self, request):
        return {}

    def has_module_permission(self, request) -> bool:
        return may_ever(_principal(request), Action.MANAGE_NOTIFICATIONS)

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None:
            return may_ever(_principal(request), Action.MANAGE_NOTIFICATIONS)
        return permits(_principal(request), Action.MANAGE_NOTIFICATIONS, obj.target.organization)
