"""The staff pages: dashboard, organizations, issuance, a certificate's page, the toolbox.

Thin views: they read forms, call the services with `Actor.from_request`, and end
every action with a message. Objects come from querysets scoped to the caller
(`certificates.staff`), so another organization's certificate answers 404. Who may
do what to which object is `certificates.services.permissions`, the rule the API and
the admin meet too: the pages show only the controls it permits, and when the
service refuses anyway (a hand-made request) the page answers 403 with its message
and nothing has changed.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.models import IssuanceApproval
from approvals.services import submit_issuance
from certificates import listing, staff
from certificates.dashboard import dashboard_context
from certificates.decoder import DecodeError, decode, describe_certificate
from certificates.errors import PermissionRefused, ServiceError
from certificates.forms import CrlForm, DecoderForm, IssueForm, OrganizationForm, RevokeForm
from certificates.models import Certificate
from certificates.selectors import acme_origin
from certificates.services.artifacts import DownloadFormat, download_certificate, issuer_chain, reveal_pkcs12_password
from certificates.services.issuance import IssuanceRequest, renew_certificate
from certificates.services.permissions import Action, permits, within_key_scope
from certificates.services.profiles import visible_profiles
from certificates.services.publication import publish_crls
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from organizations.services import OrganizationError, create_organization
from pki_project.actor import Actor
from pki_project.uploads import takes_files

DOWNLOADS = [
    (DownloadFormat.PEM, "Certificate (PEM)"),
    (DownloadFormat.DER, "Certificate (DER)"),
    (DownloadFormat.CHAIN, "Chain without root (PEM)"),
    (DownloadFormat.FULLCHAIN, "Full chain with root (PEM)"),
]


def render_page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """A staff page with what every page shows (who is signed in, which controls the role gets)."""
    principal = staff.principal_of(request)
    context = {
        "principal": principal,
        "can_operate": staff.can_operate(principal),
        "is_admin": staff.is_admin(principal),
        "is_global_admin": staff.can_create_organizations(principal),
        **context,
    }
    return render(request, template, context, status=status)


def _certificate_or_404(request: HttpRequest, pk: int) -> Certificate:
    queryset = staff.visible_certificates(staff.principal_of(request)).select_related("issuer", "organization")
    certificate = queryset.filter(pk=pk).first()
    if certificate is None:
        raise Http404
    return certificate


# --- Dashboard and organizations ---------------------------------------------------------


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render_page(request, "pki/dashboard.html", dashboard_context(staff.principal_of(request)))


@require_GET
def organizations(request: HttpRequest) -> HttpResponse:
    rows = staff.visible_organizations(staff.principal_of(request)).annotate(
        ca_count=Count("cas", distinct=True),
        valid_count=Count("certificates", filter=Q(certificates__revoked_at__isnull=True), distinct=True),
    )
    return render_page(request, "pki/organizations.html", {"organizations": rows})


@require_http_methods(["GET", "POST"])
def create_organization_page(request: HttpRequest) -> HttpResponse:
    principal = staff.principal_of(request)
    if not staff.can_create_organizations(principal):
        return render_page(request, "pki/create_organization.html", {"refused": True}, status=403)
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = create_organization(form.cleaned_data["name"], form.cleaned_data["slug"] or None,
                                               request=request, principal=principal)
        except OrganizationError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Organization “{organization.name}” ({organization.slug}) was created.")
            return HttpResponseRedirect(reverse("pki-organizations"))
    status = 400 if request.method == "POST" else 200
    return render_page(request, "pki/create_organization.html", {"form": form}, status=status)


# --- Issuance ------------------------------------------------------------------------------


def _issuance_request(form: IssueForm) -> IssuanceRequest:
    data = form.cleaned_data
    if data["key_source"] == IssueForm.SOURCE_CSR:
        return IssuanceRequest(profile=data["profile"], csr=data["csr_data"],
                               common_name=(data.get("common_name") or "").strip() or None,
                               sans=tuple(form.san_list()), days=data.get("days"), hours=data.get("hours"))
    return IssuanceRequest(profile=data["profile"], common_name=(data.get("common_name") or "").strip() or None,
                           sans=tuple(form.san_list()), key_type=data.get("key_type") or None, days=data.get("days"),
                           hours=data.get("hours"))


@takes_files  # the CSR file field (within PKI_MAX_REQUEST_BYTES, parsed in memory)
@require_http_methods(["GET", "POST"])
def issue(request: HttpRequest) -> HttpResponse:
    actor = Actor.from_request(request)
    issuers, profiles = within_key_scope(actor, staff.issuing_cas(staff.principal_of(request)),
                                         visible_profiles(actor).filter(enabled=True))
    form = IssueForm(request.POST or None, request.FILES or None, issuers=issuers, profiles=profiles)
    if request.method == "POST" and form.is_valid():
        try:
            certificate = submit_issuance(form.cleaned_data["ca"], _issuance_request(form),
                                          actor=Actor.from_request(request))
        except ServiceError as error:
            form.add_error(None, error.message)
            if isinstance(error, PermissionRefused):
                return render_page(request, "pki/issue.html", {"form": form, "issuers": issuers}, status=error.status)
        else:
            if isinstance(certificate, IssuanceApproval):
                messages.success(request, f"Request {certificate.pk} waits for the approval of another admin or "
                                          "manager of the organization; nothing is issued until then.")
                return HttpResponseRedirect(reverse("pki-approvals"))
            extra = " Its key is in the PKCS#12 file below; reveal its password when you hand it over." \
                if certificate.pkcs12_path else ""
            messages.success(request, f"Certificate for “{certificate.common_name or certificate.serial}” issued "
                                      f"(serial {certificate.serial}).{extra}")
            return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))
    status = 400 if request.method == "POST" else 200
    return render_page(request, "pki/issue.html", {"form": form, "issuers": issuers}, status=status)


# --- The certificate list and its CSV export --------------------------------------------------

LIST_PAGE_SIZE = 50
SORTABLE_COLUMNS = [("name", "Name"), ("serial", "Serial"), ("issued", "Valid from"), ("expires", "Expires")]


@require_GET
def certificate_list(request: HttpRequest) -> HttpResponse:
    """The caller's certificates: search by name, SAN or serial, filter, sort, page; "renew" on expiring rows."""
    principal = staff.principal_of(request)
    selection = listing.Selection.from_query(request.GET)
    now = timezone.now()
    page = Paginator(listing.select_certificates(staff.visible_certificates(principal), selection, now),
                     LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    renewed = set(Certificate.objects.filter(predecessor__in=[c.pk for c in page.object_list])
                  .values_list("predecessor_id", flat=True))
    actor = Actor.from_request(request)
    rows = [(row, row.renewable and permits(actor, Action.RENEW, row.certificate))
            for row in listing.rows(page.object_list, now, renewed)]
    columns = [(key, label, _sort_link(selection, key)) for key, label in SORTABLE_COLUMNS]
    context = {"page": page, "rows": rows, "selection": selection, "columns": columns,
               "statuses": listing.CertificateStatus.choices, "kinds": list(listing.KIND_LABELS.items()),
               "expiring_choices": listing.EXPIRING_CHOICES, "renew_window": listing.RENEW_WINDOW_DAYS,
               "export_query": selection.query_string(),
               "previous_query": selection.query_string(page=str(page.number - 1)) if page.has_previous() else "",
               "next_query": selection.query_string(page=str(page.number + 1)) if page.has_next() else ""}
    return render_page(request, "pki/certificates.html", context)


def _sort_link(selection: listing.Selection, key: str) -> dict[str, str]:
    """The column's sort link (a second click reverses it) and its `aria-sort` state."""
    current = selection.sort.lstrip("-") == key
    descending = selection.sort.startswith("-")
    target = f"-{key}" if current and not descending else key
    return {"query": selection.query_string(sort=target),
            "aria": ("descending" if descending else "ascending") if current else ""}


@require_GET
def certificate_export(request: HttpRequest) -> HttpResponse:
    """The list's selection (the same query string) as CSV, every row, no paging."""
    selection = listing.Selection.from_query(request.GET)
    now = timezone.now()
    certificates = listing.select_certificates(staff.visible_certificates(staff.principal_of(request)), selection,
                                               now)
    response = HttpResponse(listing.csv_export(certificates.iterator(chunk_size=500), now),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="certificates-{now:%Y%m%dT%H%M%SZ}.csv"'
    return response


# --- A certificate's page and its actions ----------------------------------------------------


def _certificate_page(request: HttpRequest, certificate: Certificate, *, revoke_form: RevokeForm | None = None,
                      revealed_password: str = "", status: int = 200) -> HttpResponse:
    chain = issuer_chain(certificate, include_root=True)
    actor = Actor.from_request(request)
    context = {
        "certificate": certificate,
        "description": describe_certificate(load_x509(certificate)),
        "chain": chain,
        "successor": Certificate.objects.filter(predecessor=certificate).first(),
        "acme": acme_origin(certificate),
        "downloads": DOWNLOADS,
        "revoke_form": revoke_form or _revoke_form(certificate),
        "revealed_password": revealed_password,
        "is_ca_certificate": certificate.kind in ("root_ca", "intermediate_ca"),
        # The controls shown are the ones the service layer's rules permit (the service refuses the rest).
        "can_download_pkcs12": permits(actor, Action.DOWNLOAD_PKCS12, certificate),
        "can_reveal_password": permits(actor, Action.REVEAL_PKCS12_PASSWORD, certificate),
        "can_renew": permits(actor, Action.RENEW, certificate),
        "can_revoke": permits(actor, Action.REVOKE, certificate),
    }
    return render_page(request, "pki/certificate.html", context, status=status)


def _refused(request: HttpRequest, certificate: Certificate, error: PermissionRefused, outcome: str) -> HttpResponse:
    """A refusal by the rules: 403, the certificate's page with why, and nothing changed."""
    messages.error(request, f"{outcome}: {error.message}")
    return _certificate_page(request, certificate, status=error.status)


@require_GET
def certificate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _certificate_page(request, _certificate_or_404(request, pk))


@require_GET
def certificate_download(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = _certificate_or_404(request, pk)
    try:
        download = download_certificate(certificate, request.GET.get("format", "pem"),
                                        actor=Actor.from_request(request))
    except PermissionRefused as error:
        return _refused(request, certificate, error, "Nothing was downloaded")
    except ServiceError as error:
        messages.error(request, error.message)
        return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))
    response = HttpResponse(download.content, content_type=download.content_type)
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    return response


@require_POST
def certificate_reveal_password(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = _certificate_or_404(request, pk)
    try:
        password = reveal_pkcs12_password(certificate, actor=Actor.from_request(request))
    except PermissionRefused as error:
        return _refused(request, certificate, error, "The password was not revealed")
    except ServiceError as error:
        messages.error(request, error.message)
        return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))
    messages.success(request, "PKCS#12 password revealed below (this was recorded in the audit trail). "
                              "It is not shown again after you leave this page.")
    return _certificate_page(request, certificate, revealed_password=password)


@require_POST
def certificate_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = _certificate_or_404(request, pk)
    form = _revoke_form(certificate, request.POST)
    if not form.is_valid():
        messages.error(request, "The certificate was not revoked: correct the form below.")
        return _certificate_page(request, certificate, revoke_form=form, status=400)
    data = form.cleaned_data
    try:
        revoked = revoke_certificate(
            certificate, reason=data["reason"], actor=Actor.from_request(request),
            invalidity_date=data.get("invalidity_date"), root_password=data.get("root_password") or None,
            revoke_children=bool(data.get("revoke_children")),
        )
    except ServiceError as error:
        messages.error(request, f"The certificate was not revoked: {error.message}")
        form = _revoke_form(certificate, initial=_without_password(data))
        return _certificate_page(request, certificate, revoke_form=form, status=error.status)
    more = f" and {len(revoked) - 1} certificate(s) below it" if len(revoked) > 1 else ""
    messages.success(request, f"Certificate {certificate.serial}{more} revoked ({data['reason']}). "
                              "The CRL is being re-signed.")
    return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))


def _revoke_form(certificate: Certificate, data=None, initial: dict | None = None) -> RevokeForm:
    """The revocation form; the root password and children fields only for a CA certificate."""
    form = RevokeForm(data, initial=initial)
    if certificate.kind == "end_entity":
        del form.fields["root_password"], form.fields["revoke_children"]
    return form


def _without_password(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "root_password"}


@require_http_methods(["GET", "POST"])
def certificate_renew(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm (what the new certificate will be); POST renews."""
    certificate = _certificate_or_404(request, pk)
    if request.method == "GET":
        if not permits(Actor.from_request(request), Action.RENEW, certificate):
            messages.error(request, "The certificate cannot be renewed: only a manager or an admin may renew it.")
            return _certificate_page(request, certificate, status=403)
        successor = Certificate.objects.filter(predecessor=certificate).first()
        return render_page(request, "pki/renew_confirm.html", {"certificate": certificate, "successor": successor})
    try:
        renewed = renew_certificate(certificate, actor=Actor.from_request(request))
    except PermissionRefused as error:
        return _refused(request, certificate, error, "The certificate was not renewed")
    except ServiceError as error:
        messages.error(request, f"The certificate was not renewed: {error.message}")
        return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))
    messages.success(request, f"Renewed: the new certificate has serial {renewed.serial}.")
    return HttpResponseRedirect(reverse("pki-certificate", args=[renewed.pk]))


# --- Toolbox -------------------------------------------------------------------------------


def _toolbox(request: HttpRequest, *, decoder_form: DecoderForm | None = None, crl_form: CrlForm | None = None,
             description=None, known: Certificate | None = None, status: int = 200) -> HttpResponse:
    principal = staff.principal_of(request)
    context = {
        "decoder_form": decoder_form or DecoderForm(),
        "crl_form": crl_form or CrlForm(cas=_signable_crl_cas(request)),
        "description": description,
        "known": known,
        "can_backup": principal is not None and principal.is_global_admin,  # backups hold every organization
    }
    return render_page(request, "pki/toolbox.html", context, status=status)


def _crl_cas(request: HttpRequest):
    """The CAs a CRL form accepts: the caller's usable CAs (another organization's is not a choice)."""
    return staff.visible_cas(staff.principal_of(request)).usable().order_by("organization__slug", "name")


def _signable_crl_cas(request: HttpRequest):
    """The CAs the form offers: those whose CRL the caller may sign (a manager is not offered a root).

    A request naming another of `_crl_cas` reaches the service, which refuses it (403).
    """
    cas = _crl_cas(request)
    actor = Actor.from_request(request)
    return cas.filter(pk__in=[ca.pk for ca in cas if permits(actor, Action.SIGN_CRL, ca)])


@require_GET
def toolbox(request: HttpRequest) -> HttpResponse:
    return _toolbox(request)


@takes_files  # the certificate or CSR file field (within PKI_MAX_REQUEST_BYTES, parsed in memory)
@require_POST
def toolbox_decode(request: HttpRequest) -> HttpResponse:
    form = DecoderForm(request.POST, request.FILES)
    if not form.is_valid():
        return _toolbox(request, decoder_form=form, status=400)
    try:
        description = decode(form.cleaned_data["data"])
    except DecodeError as error:
        form.add_error(None, str(error))
        return _toolbox(request, decoder_form=form, status=400)
    known = None
    if description.sha256:
        fingerprint = description.sha256.replace(":", "").lower()
        known = staff.visible_certificates(staff.principal_of(request)).filter(fingerprint_sha256=fingerprint).first()
    return _toolbox(request, decoder_form=form, description=description, known=known)


@require_POST
def toolbox_crl(request: HttpRequest) -> HttpResponse:
    form = CrlForm(request.POST, cas=_crl_cas(request))
    if not form.is_valid():
        messages.error(request, "No CRL was signed: choose a CA.")
        return _toolbox(request, crl_form=form, status=400)
    ca = form.cleaned_data["ca"]
    try:
        crl, *_delta = publish_crls(ca, actor=Actor.from_request(request),
                                    root_password=form.cleaned_data["root_password"])
    except ServiceError as error:
        messages.error(request, f"No CRL was signed for {ca.name}: {error.message}")
        return _toolbox(request, crl_form=CrlForm(initial={"ca": ca.pk}, cas=_signable_crl_cas(request)),
                        status=error.status)
    messages.success(request, f"CRL #{crl.number} of {ca.name} signed with {crl.entry_count} entr"
                              f"{'y' if crl.entry_count == 1 else 'ies'}; next update "
                              f"{crl.next_update:%Y-%m-%d %H:%M} UTC.")
    return HttpResponseRedirect(reverse("pki-toolbox"))
