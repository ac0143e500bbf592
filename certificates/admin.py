"""The admin as the control room: CAs (as a tree, with creation forms), certificates and CRLs.

Nothing here edits a certificate's content or deletes a certificate, CA or CRL: the
change pages are read-only detail views and every write goes through a service
(`create_root_ca`, `create_intermediate_ca`, `revoke_certificate`, `renew_certificate`,
`generate_crl`, `download_certificate`) with `Actor.from_request`. Querysets are
scoped to the staff member's organization (`OrganizationScopedAdminMixin`), list
filters offer only what the member may see.

Who may do what to which object is `certificates.services.permissions`, the rule the
API and the pages meet too. An action is offered to a role the rules let do it to
some kind of object (a user sees no revoke); before an action does anything, every
selected object is checked against the rule, and one refusal refuses the whole action
(403, each refusal named, nothing changed): a manager selecting a CA certificate, an
OCSP responder or a root's CRL gets no form and no partial result. A posted action
the role is not offered is 403 too, a selection naming an object outside the caller's
organization 404, and one that is not an id 400.
"""

from __future__ import annotations

from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from certificates import staff
from certificates.decoder import describe_certificate
from certificates.errors import ServiceError
from certificates.forms import CrlForm, IntermediateCAForm, RevokeForm, RootCAForm
from certificates.models import (
    Certificate,
    CertificateAuthority,
    CertificateProfile,
    CertificateRevocationList,
    CertificateStatus,
)
from certificates.services.artifacts import download_certificate, issuer_chain
from certificates.services.authorities import ca_purposes, create_intermediate_ca, create_root_ca
from certificates.services.issuance import renew_certificate
from certificates.services.permissions import Action, may_ever, refusal
from certificates.services.profiles import EDITABLE_FIELDS as PROFILE_EDITABLE_FIELDS
from certificates.services.profiles import MANAGERS as PROFILE_MANAGERS
from certificates.services.profiles import (
    ca_policy_oids,
    create_profile,
    delete_profile,
    update_profile,
    visible_profiles,
)
from certificates.services.publication import publish_crls
from certificates.services.records import load_x509
from certificates.services.revocation import check_reason_allowed, parse_revocation_reason, revoke_certificate
from organizations.admin import OrganizationScopedAdminMixin
from pki_project.actor import Actor

EXPIRY_BANDS = (7, 30, 90)
KIND_LABELS = {"root_ca": "root CA", "intermediate_ca": "intermediate CA", "end_entity": "end entity",
               "ocsp_responder": "OCSP responder"}
TEMPLATE_DIR = "admin/certificates"


class ReadOnlyAdminMixin:
    """No add, change or delete through Django's generic views: the change page is a detail view."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class RuleBoundActionsMixin:
    """Admin actions that meet `certificates.services.permissions` before they do anything.

    `refuse_unless_permitted` checks every selected object against the rule for the action
    and answers one 403 page naming each refusal: nothing is done unless all may be.
    `changelist_view` refuses a posted action the role is not offered (403, not Django's
    quiet "no action selected"), a selected id outside the caller's organization (404,
    as everywhere) and one that is not an id (400, not a 500 from the query).
    """

    refused_template = f"{TEMPLATE_DIR}/refused.html"

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if request.method == "POST" and "action" in request.POST and "_save" not in request.POST:
            refused = self._refused_action_request(request)
            if refused is not None:
                return refused
        return super().changelist_view(request, extra_context)

    def _posted_action(self, request: HttpRequest) -> str:
        """The action whose button was pressed (Django's own reading of `index`)."""
        names = request.POST.getlist("action")
        index = request.POST.get("index", "0")
        position = int(index) if index.isdigit() else 0
        return names[position] if position < len(names) else ""

    def _refused_action_request(self, request: HttpRequest) -> HttpResponse | None:
        name = self._posted_action(request)
        declared = {getattr(action, "__name__", action) for action in (self.actions or ())}
        if name in declared and name not in self.get_actions(request):
            return self.refusal_page(request, "Nothing was done.", ["Your role may not use this action."])
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(value.isdigit() for value in selected):
            return self.refusal_page(request, "Nothing was done.", ["The selection is not a list of ids."],
                                     status=400)
        wanted = {int(value) for value in selected}
        if wanted and self.get_queryset(request).filter(pk__in=wanted).count() != len(wanted):
            raise Http404  # another organization's object does not exist for the caller
        return None

    def refuse_unless_permitted(self, request: HttpRequest, action: Action, objects, outcome: str,
                                ) -> HttpResponse | None:
        """None when the rule lets the caller do `action` to every object; else the 403 page."""
        actor = Actor.from_request(request)
        refusals = []
        for obj in objects:
            error = refusal(actor, action, obj)
            if error is not None:
                refusals.append(f"{obj}: {error.message}")
        return self.refusal_page(request, outcome, refusals) if refusals else None

    def refusal_page(self, request: HttpRequest, outcome: str, refusals: list[str],
                     status: int = 403) -> TemplateResponse:
        opts = self.model._meta
        context = {**self.admin_site.each_context(request), "title": "Not done", "opts": opts,
                   "outcome": outcome, "refusals": refusals,
                   "back_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")}
        return TemplateResponse(request, self.refused_template, context, status=status)


def _may_ever(request: HttpRequest, action: Action) -> bool:
    """Whether the caller's role may do `action` to some kind of object (then the action is offered)."""
    return may_ever(Actor.from_request(request), action)


def _status_badge(status: str) -> str:
    return format_html('<span class="pki-badge pki-badge-{}">{}</span>', status, status.replace("_", " "))


def _report(model_admin: admin.ModelAdmin, request: HttpRequest, done: list[str], failed: list[str],
            verb: str) -> None:
    if done:
        model_admin.message_user(request, f"{verb} {len(done)}: {', '.join(done)}.", messages.SUCCESS)
    for failure in failed:
        model_admin.message_user(request, failure, messages.ERROR)
    if not done and not failed:
        model_admin.message_user(request, "Nothing was selected.", messages.WARNING)


# --- Certificates ----------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(status.value, status.label.replace("_", " ").capitalize()) for status in CertificateStatus]

    def queryset(self, request, queryset):
        if self.value() in CertificateStatus.values:
            return queryset.with_status(self.value())
        return queryset


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [(str(days), f"Valid, expiring within {days} days") for days in EXPIRY_BANDS]

    def queryset(self, request, queryset):
        if self.value() in {str(days) for days in EXPIRY_BANDS}:
            return queryset.expiring_within(int(self.value()))
        return queryset


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return list(KIND_LABELS.items())

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() in KIND_LABELS else queryset


class ChannelFilter(admin.SimpleListFilter):
    """ACME-issued or not: the dashboard's ACME tile links here."""

    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return [("acme", "ACME"), ("other", "API, pages, admin, CLI")]

    def queryset(self, request, queryset):
        if self.value() in ("acme", "other"):
            return queryset.filter(acme_order__isnull=self.value() == "other")
        return queryset


@admin.register(Certificate)
class CertificateAdmin(RuleBoundActionsMixin, ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["pki/admin.css"]}

    list_display = ["display_name", "status_badge", "kind_label", "profile", "issuer", "organization", "not_after",
                    "short_serial"]
    list_filter = [StatusFilter, ExpiryFilter, KindFilter, ChannelFilter, ("issuer", admin.RelatedOnlyFieldListFilter),
                   ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["issuer", "organization"]
    search_fields = ["common_name", "serial", "fingerprint_sha256"]
    search_help_text = "Common name, SAN, serial or SHA-256 fingerprint (colons optional)."
    date_hierarchy = None
    list_per_page = 50
    actions = ["revoke_selected", "renew_selected", "download_selected"]
    fieldsets = [
        (None, {"fields": ["summary", "page_link", "status_badge", "subject", "sans_list", "issuer_link",
                           "organization", "kind", "profile", "key_description", "key_source"]}),
        ("Validity and identity", {"fields": ["not_before", "not_after", "serial", "fingerprints"]}),
        ("Revocation", {"fields": ["revocation"]}),
        ("Chain and renewals", {"fields": ["chain", "predecessor_link", "successor_link"]}),
        ("Extensions", {"fields": ["extensions_table"]}),
        ("Record", {"fields": ["created_by", "created_at", "acme_origin"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    @admin.display(description="ACME account and order")
    def acme_origin(self, obj: Certificate) -> str:
        """A certificate ordered over ACME names the account and order it came from."""
        order = getattr(obj, "acme_order", None)
        if order is None:
            return "-"
        return f"account {order.account.name} (organization {order.organization.slug}), order {order.name}"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return _may_ever(request, Action.REVOKE)

    def has_renew_permission(self, request: HttpRequest) -> bool:
        return _may_ever(request, Action.RENEW)

    def has_download_permission(self, request: HttpRequest) -> bool:
        return _may_ever(request, Action.DOWNLOAD)

    def get_list_display(self, request: HttpRequest):
        principal = staff.principal_of(request)
        if principal is not None and principal.is_global_admin:
            return self.list_display
        return [column for column in self.list_display if column != "organization"]  # always their own

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return results, may_have_duplicates
        compact = term.replace(":", "").lower()
        extra = queryset.filter(serial=compact) | queryset.filter(fingerprint_sha256=compact)
        by_san = queryset.annotate(sans_text=Cast("sans", TextField())).filter(sans_text__icontains=term)
        ids = set(extra.values_list("pk", flat=True)) | set(by_san.values_list("pk", flat=True))
        if ids:
            results = results | queryset.filter(pk__in=ids)
        return results, may_have_duplicates

    # --- list columns ---

    @admin.display(description="name", ordering="common_name")
    def display_name(self, obj: Certificate) -> str:
        return obj.common_name or obj.subject or obj.serial

    @admin.display(description="status")
    def status_badge(self, obj: Certificate) -> str:
        return _status_badge(obj.status)

    @admin.display(description="kind", ordering="kind")
    def kind_label(self, obj: Certificate) -> str:
        return KIND_LABELS.get(obj.kind, obj.kind)

    @admin.display(description="serial", ordering="serial")
    def short_serial(self, obj: Certificate) -> str:
        return f"{obj.serial[:16]}…" if len(obj.serial) > 16 else obj.serial

    # --- detail fields (decoded from the stored DER) ---

    def _description(self, obj: Certificate):
        cached = getattr(obj, "_pki_description", None)
        if cached is None:
            cached = obj._pki_description = describe_certificate(load_x509(obj))
        return cached

    @admin.display(description="in plain words")
    def summary(self, obj: Certificate) -> str:
        return format_html("<ul class='pki-sentences'>{}</ul>",
                           format_html_join("", "<li>{}</li>", ((s,) for s in self._description(obj).sentences)))

    @admin.display(description="certificate page")
    def page_link(self, obj: Certificate) -> str:
        page = reverse("pki-certificate", args=[obj.pk])
        downloads = format_html_join(" · ", '<a href="{}?format={}">{}</a>', (
            (reverse("pki-certificate-download", args=[obj.pk]), fmt, label)
            for fmt, label in (("pem", "PEM"), ("der", "DER"), ("chain", "chain"), ("fullchain", "full chain"))
        ))
        return format_html('<a href="{}">Open the certificate page</a> (downloads: {})', page, downloads)

    @admin.display(description="subject")
    def subject(self, obj: Certificate) -> str:
        return self._description(obj).subject

    @admin.display(description="subject alternative names")
    def sans_list(self, obj: Certificate) -> str:
        return ", ".join(self._description(obj).sans) or "none"

    @admin.display(description="issuer")
    def issuer_link(self, obj: Certificate) -> str:
        if obj.issuer is None:
            return "self-signed (root)"
        url = reverse("admin:certificates_certificate_change", args=[obj.issuer.certificate_id])
        return format_html('<a href="{}">{}</a>', url, obj.issuer.name)

    @admin.display(description="key")
    def key_description(self, obj: Certificate) -> str:
        return self._description(obj).key

    @admin.display(description="fingerprints")
    def fingerprints(self, obj: Certificate) -> str:
        description = self._description(obj)
        return format_html("SHA-256 <code>{}</code><br>SHA-1 <code>{}</code>", description.sha256, description.sha1)

    @admin.display(description="revocation")
    def revocation(self, obj: Certificate) -> str:
        if obj.revoked_at is None:
            return "not revoked"
        text = f"revoked {obj.revoked_at:%Y-%m-%d %H:%M} UTC, reason {obj.revocation_reason}"
        if obj.invalidity_date:
            text += f", invalid since {obj.invalidity_date:%Y-%m-%d %H:%M} UTC"
        return text

    @admin.display(description="chain (issuer first)")
    def chain(self, obj: Certificate) -> str:
        rows = issuer_chain(obj, include_root=True)
        if not rows:
            return "none: this is a root"
        return format_html_join(" → ", '<a href="{}">{}</a>', (
            (reverse("admin:certificates_certificate_change", args=[row.pk]), row.common_name) for row in rows
        ))

    @admin.display(description="predecessor")
    def predecessor_link(self, obj: Certificate) -> str:
        if obj.predecessor_id is None:
            return "none"
        url = reverse("admin:certificates_certificate_change", args=[obj.predecessor_id])
        return format_html('<a href="{}">the certificate this one renewed</a>', url)

    @admin.display(description="successor")
    def successor_link(self, obj: Certificate) -> str:
        successor = Certificate.objects.filter(predecessor=obj).only("pk", "serial").first()
        if successor is None:
            return "none"
        url = reverse("admin:certificates_certificate_change", args=[successor.pk])
        return format_html('<a href="{}">renewed as serial {}</a>', url, successor.serial[:16])

    @admin.display(description="extensions")
    def extensions_table(self, obj: Certificate) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (ext.name, "critical" if ext.critical else "", ext.meaning) for ext in self._description(obj).extensions
        ))
        return format_html("<table class='pki-extensions'><thead><tr><th>extension</th><th></th>"
                           "<th>what it means</th></tr></thead><tbody>{}</tbody></table>", rows)

    # --- actions ---

    @admin.action(description="Revoke selected certificates…", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Certificate]):
        refused = self.refuse_unless_permitted(request, Action.REVOKE, queryset.order_by("pk"),
                                               "Nothing was revoked.")
        if refused is not None:
            return refused
        form = RevokeForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid() and self._reason_fits_all(form, queryset):
            self._revoke(request, queryset, form.cleaned_data)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke certificates",
            "opts": self.model._meta,
            "form": form,
            "certificates": queryset,
            "needs_root_password": queryset.exclude(kind="end_entity").exists(),
            "action_name": "revoke_selected",
        }
        status = 400 if "apply" in request.POST else 200
        return TemplateResponse(request, f"{TEMPLATE_DIR}/certificate/revoke.html", context, status=status)

    @staticmethod
    def _reason_fits_all(form: RevokeForm, queryset: QuerySet[Certificate]) -> bool:
        """BR 7.2.2 before anything is revoked: a CA-only reason with a subscriber certificate among
        the selection revokes none of them (the form comes back with the rule's sentence)."""
        reason = parse_revocation_reason(form.cleaned_data["reason"])
        for certificate in queryset.order_by("pk"):
            try:
                check_reason_allowed(certificate, reason)
            except ServiceError as error:
                form.add_error("reason", f"Nothing was revoked: {error.message}")
                return False
        return True

    def _revoke(self, request: HttpRequest, queryset: QuerySet[Certificate], data: dict) -> None:
        done, failed = [], []
        actor = Actor.from_request(request)
        for certificate in queryset.order_by("pk"):
            certificate.refresh_from_db()  # an earlier one may have revoked it as a child
            try:
                revoked = revoke_certificate(
                    certificate, reason=data["reason"], actor=actor, invalidity_date=data.get("invalidity_date"),
                    root_password=data.get("root_password") or None, revoke_children=bool(data.get("revoke_children")),
                )
            except ServiceError as error:
                failed.append(f"{certificate}: not revoked: {error.message}")
            else:
                done.extend(str(row) for row in revoked)
        _report(self, request, done, failed, "Revoked")

    @admin.action(description="Renew selected certificates", permissions=["renew"])
    def renew_selected(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> HttpResponse | None:
        refused = self.refuse_unless_permitted(request, Action.RENEW, queryset.order_by("pk"),
                                               "Nothing was renewed.")
        if refused is not None:
            return refused
        done, failed = [], []
        actor = Actor.from_request(request)
        for certificate in queryset.order_by("pk"):
            try:
                renewed = renew_certificate(certificate, actor=actor)
            except ServiceError as error:
                failed.append(f"{certificate}: not renewed: {error.message}")
            else:
                done.append(f"{certificate.common_name or certificate.serial} → serial {renewed.serial[:16]}")
        _report(self, request, done, failed, "Renewed")
        return None

    @admin.action(description="Download selected certificates (PEM)", permissions=["download"])
    def download_selected(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> HttpResponse:
        refused = self.refuse_unless_permitted(request, Action.DOWNLOAD, queryset.order_by("pk"),
                                               "Nothing was downloaded.")
        if refused is not None:
            return refused
        actor = Actor.from_request(request)
        parts = [download_certificate(certificate, "pem", actor=actor).content for certificate in queryset]
        response = HttpResponse(b"".join(parts), content_type="application/x-pem-file")
        response["Content-Disposition"] = f'attachment; filename="certificates-{timezone.now():%Y%m%d-%H%M%S}.pem"'
        return response


# --- Certificate authorities -------------------------------------------------------------------


def _tree(cas: list[CertificateAuthority]) -> list[dict]:
    """Nested {ca, children} nodes; a CA whose parent is out of sight is shown at the top."""
    children: dict[int | None, list[CertificateAuthority]] = defaultdict(list)
    ids = {ca.pk for ca in cas}
    for ca in cas:
        children[ca.parent_id if ca.parent_id in ids else None].append(ca)

    def node(ca: CertificateAuthority) -> dict:
        return {"ca": ca, "children": [node(child) for child in children[ca.pk]]}

    return [node(ca) for ca in children[None]]


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(RuleBoundActionsMixin, ReadOnlyAdminMixin, OrganizationScopedAdminMixin,
                                admin.ModelAdmin):
    class Media:
        css = {"all": ["pki/admin.css"]}

    change_list_template = f"{TEMPLATE_DIR}/certificateauthority/change_list.html"
    list_display = ["name", "kind", "parent", "organization", "status_badge", "not_after", "crl_next_update"]
    list_filter = ["kind", ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organization", "parent", "certificate"]
    search_fields = ["name", "slug"]
    actions = ["regenerate_crl"]
    fields = ["name", "slug", "kind", "organization", "parent", "certificate_link", "status_badge", "not_after",
              "path_length", "purposes", "policy_oids", "permitted_names", "excluded_names", "crl_number",
              "crl_validity_hours", "requires_approval", "crl_next_update", "publication", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        latest = CertificateRevocationList.objects.filter(
            ca=OuterRef("pk"), delta_base_number__isnull=True).order_by("-number")
        return super().get_queryset(request).annotate(latest_crl_next_update=Subquery(latest.values("next_update")[:1]))

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return _may_ever(request, Action.CREATE_CA)

    def has_crl_permission(self, request: HttpRequest) -> bool:
        return _may_ever(request, Action.SIGN_CRL)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("create-root/", wrap(self.create_root_view), name="certificates_certificateauthority_create_root"),
            path("create-intermediate/", wrap(self.create_intermediate_view),
                 name="certificates_certificateauthority_create_intermediate"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        cas = list(self.get_queryset(request).order_by("name"))
        extra = {"ca_tree": _tree(cas), "can_create": self.has_add_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description="status")
    def status_badge(self, obj: CertificateAuthority) -> str:
        return _status_badge(obj.certificate.status)

    @admin.display(description="valid until", ordering="certificate__not_after")
    def not_after(self, obj: CertificateAuthority):
        return obj.certificate.not_after

    @admin.display(description="CRL next update")
    def crl_next_update(self, obj: CertificateAuthority):
        return getattr(obj, "latest_crl_next_update", None) or "no CRL yet"

    @admin.display(description="certificate")
    def certificate_link(self, obj: CertificateAuthority) -> str:
        return format_html('<a href="{}">{}</a> (<a href="{}">certificate page</a>)',
                           reverse("admin:certificates_certificate_change", args=[obj.certificate_id]),
                           obj.certificate.serial, reverse("pki-certificate", args=[obj.certificate_id]))

    @admin.display(description="purposes (EKU)")
    def purposes(self, obj: CertificateAuthority) -> str:
        return ", ".join(ca_purposes(obj))

    @admin.display(description="certificate policies")
    def policy_oids(self, obj: CertificateAuthority) -> str:
        return ", ".join(ca_policy_oids(obj)) or "anyPolicy"

    @admin.display(description="public URLs")
    def publication(self, obj: CertificateAuthority) -> str:
        return format_html('<a href="/pki/ca/{0}.pem">CA certificate</a> · <a href="/pki/crl/{0}.crl">CRL</a>',
                           obj.slug)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "title": "Create a certificate authority",
                   "opts": self.model._meta}
        return TemplateResponse(request, f"{TEMPLATE_DIR}/certificateauthority/add_choice.html", context)

    def _form_page(self, request: HttpRequest, form, title: str, intro: str, status: int) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "title": title, "intro": intro, "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, f"{TEMPLATE_DIR}/certificateauthority/create_ca.html", context,
                                status=status)

    def _created(self, request: HttpRequest, ca: CertificateAuthority) -> HttpResponseRedirect:
        """Say what exists now: the CA, and its first CRL only if it was really signed (signing it may fail
        after the CA stands; the CA's distribution point then has nothing to serve until someone signs one)."""
        what = f"{ca.get_kind_display().capitalize()} CA “{ca.name}” ({ca.slug}) created"
        first_crl = CertificateRevocationList.objects.filter(ca=ca, delta_base_number__isnull=True) \
            .order_by("-number").first()
        if first_crl is not None:
            self.message_user(request, f"{what}, with its first CRL #{first_crl.number} (next update "
                                       f"{first_crl.next_update:%Y-%m-%d %H:%M} UTC).", messages.SUCCESS)
        else:
            self.message_user(request, f"{what}, but its first CRL was not signed (the server log says why): "
                                       f"sign it with the action “Regenerate the CRL of selected CAs” on this list "
                                       f"or `manage.py generate_crl --ca {ca.slug}`.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:certificates_certificateauthority_changelist"))

    def create_root_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        principal = staff.principal_of(request)
        form = RootCAForm(request.POST or None, organizations=staff.visible_organizations(principal))
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                ca = create_root_ca(organization=data["organization"], common_name=data["common_name"],
                                    root_password=data["root_password"], actor=Actor.from_request(request),
                                    key_type=data["key_type"], days=data["days"], path_length=data["path_length"])
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                return self._created(request, ca)
        intro = ("A root CA signs only intermediate CAs and its CRL. Its key opens only with the root password you "
                 "choose here: keep it offline; it is not stored anywhere and cannot be recovered.")
        return self._form_page(request, form, "Create a root CA", intro, 400 if request.method == "POST" else 200)

    def create_intermediate_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        parents = staff.visible_cas(staff.principal_of(request)).usable().order_by("name")
        form = IntermediateCAForm(request.POST or None, parents=parents)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                ca = create_intermediate_ca(
                    parent=data["parent"], common_name=data["common_name"], actor=Actor.from_request(request),
                    root_password=data["root_password"] or None, key_type=data["key_type"], days=data["days"],
                    path_length=data["path_length"], purposes=data["purposes"] or None,
                    policy_oids=data["policy_oids"] or None,
                )
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                return self._created(request, ca)
        intro = ("An intermediate CA issues the certificates of servers, clients and people. Below a root it needs "
                 "the root password once, to sign it.")
        return self._form_page(request, form, "Create an intermediate CA", intro,
                               400 if request.method == "POST" else 200)

    @admin.action(description="Regenerate the CRL of selected CAs…", permissions=["crl"])
    def regenerate_crl(self, request: HttpRequest, queryset: QuerySet[CertificateAuthority]):
        refused = self.refuse_unless_permitted(request, Action.SIGN_CRL, queryset.order_by("pk"),
                                               "No CRL was signed.")
        if refused is not None:
            return refused
        needs_password = any(ca.is_root for ca in queryset)
        if needs_password and "apply" not in request.POST:
            context = {**self.admin_site.each_context(request), "title": "Regenerate CRLs", "opts": self.model._meta,
                       "form": CrlForm(cas=queryset), "cas": queryset, "action_name": "regenerate_crl"}
            return TemplateResponse(request, f"{TEMPLATE_DIR}/certificateauthority/crl.html", context)
        root_password = request.POST.get("root_password") or None
        done, failed = [], []
        for ca in queryset:
            try:
                crl, *_delta = publish_crls(ca, actor=Actor.from_request(request), root_password=root_password)
            except ServiceError as error:
                failed.append(f"{ca.name}: no CRL signed: {error.message}")
            else:
                done.append(f"{ca.name} (CRL #{crl.number}, next update {crl.next_update:%Y-%m-%d %H:%M} UTC)")
        _report(self, request, done, failed, "Signed a CRL for")
        return None


# --- CRLs ------------------------------------------------------------------------------------


@admin.register(CertificateRevocationList)
class CertificateRevocationListAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["pki/admin.css"]}

    organization_field = "ca__organization"
    list_display = ["__str__", "ca", "number", "is_delta", "this_update", "next_update", "entry_count", "download"]
    list_filter = [("ca", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["ca"]
    actions = None
    fields = ["ca", "number", "delta_base_number", "this_update", "next_update", "entry_count", "created_at",
              "download"]
    readonly_fields = fields

    @admin.display(description="delta", boolean=True)
    def is_delta(self, obj: CertificateRevocationList) -> bool:
        return obj.is_delta

    @admin.display(description="published")
    def download(self, obj: CertificateRevocationList) -> str:
        suffix = ".delta" if obj.is_delta else ""
        return format_html('<a href="/pki/crl/{}{}.crl">current {}CRL</a>', obj.ca.slug, suffix,
                           "delta " if obj.is_delta else "")


# --- Certificate profiles ------------------------------------------------------------------------


class CertificateProfileAdminForm(forms.ModelForm):
    """The row's fields; the profile service checks them (a refusal becomes a message, nothing saved)."""

    class Meta:
        model = CertificateProfile
        fields = ["name", "organization", *PROFILE_EDITABLE_FIELDS]


@admin.register(CertificateProfile)
class CertificateProfileAdmin(admin.ModelAdmin):
    """Profiles: every write goes through `certificates.services.profiles` (rules, validation, audit).

    Members see the global profiles and their organization's; admins and managers add and change
    their organization's; global ones (the built-ins too) are a global admin's. Built-ins are never deleted.
    """

    form = CertificateProfileAdminForm
    list_display = ["name", "organization", "is_builtin", "enabled", "max_validity_hours", "must_staple",
                    "cabf_policy", "requires_approval"]
    list_filter = ["is_builtin", "enabled", "must_staple", "requires_approval"]
    search_fields = ["name", "description"]

    def get_queryset(self, request: HttpRequest):
        return visible_profiles(Actor.from_request(request))

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the service
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fixed = ["is_builtin", "created_at", "updated_at"]
        principal = staff.principal_of(request)
        if obj is not None:
            return ["name", "organization", *fixed]
        if principal is None or not principal.is_global_admin:
            return ["organization", *fixed]  # a member's profile is their organization's
        return fixed

    def _may_manage(self, request: HttpRequest, obj: CertificateProfile | None) -> bool:
        principal = staff.principal_of(request)
        if principal is None or principal.role not in PROFILE_MANAGERS:
            return False
        return obj is None or obj.organization_id is not None or principal.is_global_admin

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return staff.principal_of(request) is not None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return staff.principal_of(request) is not None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request, None)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request, obj) and not (obj is not None and obj.is_builtin)

    def save_model(self, request: HttpRequest, obj: CertificateProfile, form, change: bool) -> None:
        values = {field: form.cleaned_data[field] for field in PROFILE_EDITABLE_FIELDS if field in form.cleaned_data}
        actor = Actor.from_request(request)
        if change:
            update_profile(CertificateProfile.objects.get(pk=obj.pk), values, actor=actor)
        else:
            organization = form.cleaned_data.get("organization")
            created = create_profile({**values, "name": form.cleaned_data["name"],
                                      "organization": organization.pk if organization else None}, actor=actor)
            obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: CertificateProfile) -> None:
        delete_profile(obj, actor=Actor.from_request(request))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as error:  # the service refused: nothing was saved
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as error:
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.path.removesuffix("delete/") + "change/")
# Expiry notifications have their own admin module.
from certificates import notification_admin  # noqa: E402, F401
