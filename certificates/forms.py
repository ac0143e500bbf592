"""Forms of the staff pages and admin: input shape only; the services decide what is allowed.

Passwords use `PasswordInput(render_value=False)`: a form shown again after an error
never echoes the root password back into the page.
"""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from certificates.crypto.keys import KeyType
from certificates.crypto.purposes import CA_PURPOSES
from certificates.models import CertificateAuthority, CertificateProfile, RevocationReason
from organizations.models import Organization

KEY_TYPE_CHOICES = [(key_type.value, key_type.value) for key_type in KeyType]
_PURPOSE_LABELS = {"serverAuth": "TLS servers", "clientAuth": "TLS clients", "emailProtection": "S/MIME e-mail"}
PURPOSE_CHOICES = [(name, f"{name}: {_PURPOSE_LABELS.get(name, name)}") for name in CA_PURPOSES]
REASON_CHOICES = [(reason.value, reason.label) for reason in RevocationReason]
MAX_UPLOAD_BYTES = 64 * 1024


def root_password_field(*, required: bool, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label="Root password", required=required, strip=False, max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=help_text or "The root CA's password. It is used for this operation only and never stored.",
    )


class CAChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: CertificateAuthority) -> str:
        kind = "root" if obj.is_root else "intermediate"
        return f"{obj.name} ({kind}, {obj.slug})"


def read_upload(upload, label: str) -> bytes:
    """The bytes of a small uploaded file, or a readable error."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError(f"The {label} file is larger than {MAX_UPLOAD_BYTES // 1024} KiB.")
    return upload.read()


class RevokeForm(forms.Form):
    reason = forms.ChoiceField(label="Reason", choices=REASON_CHOICES, initial=RevocationReason.UNSPECIFIED)
    invalidity_date = forms.DateTimeField(
        label="Invalidity date (UTC, optional)", required=False,
        help_text="When the key was known or suspected to be compromised, e.g. 2026-01-31 12:00.",
        widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"}),
    )
    root_password = root_password_field(required=False, help_text="Needed only to revoke a CA certificate.")
    revoke_children = forms.BooleanField(
        label="Also revoke every valid certificate below a revoked CA", required=False,
    )


class RootCAForm(forms.Form):
    organization = forms.ModelChoiceField(label="Organization", queryset=Organization.objects.none())
    common_name = forms.CharField(label="Common name", max_length=64)
    key_type = forms.ChoiceField(label="Key type", choices=KEY_TYPE_CHOICES, initial=KeyType.EC_P384.value)
    days = forms.IntegerField(label="Validity (days)", min_value=1, max_value=9125, initial=3650)
    path_length = forms.IntegerField(label="Path length (optional)", min_value=0, max_value=8, required=False,
                                     help_text="How many intermediate levels may sit below this root.")
    root_password = root_password_field(
        required=True, help_text="Choose a strong password. Without it this root can never sign again.")
    root_password_confirm = root_password_field(required=True, help_text="Type the same password again.")

    def __init__(self, *args, organizations: QuerySet[Organization], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations
        self.fields["root_password_confirm"].label = "Root password (again)"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("root_password") and data.get("root_password") != data.get("root_password_confirm"):
            self.add_error("root_password_confirm", "The two passwords differ.")
        return data


class IntermediateCAForm(forms.Form):
    parent = CAChoiceField(label="Parent CA", queryset=CertificateAuthority.objects.none())
    common_name = forms.CharField(label="Common name", max_length=64)
    key_type = forms.ChoiceField(label="Key type", choices=KEY_TYPE_CHOICES, initial=KeyType.EC_P256.value)
    days = forms.IntegerField(label="Validity (days)", min_value=1, max_value=9125, initial=1825)
    path_length = forms.IntegerField(label="Path length", min_value=0, max_value=8, required=False, initial=0)
    purposes = forms.MultipleChoiceField(
        label="Purposes", choices=PURPOSE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
        initial=list(CA_PURPOSES),
        help_text="What the CA vouches for (its extended key usage): it can issue only profiles within them. "
                  "None ticked: the parent's purposes (all three below a root).",
    )
    policy_oids = forms.CharField(
        label="Policy OIDs", required=False, max_length=1024,
        help_text="Comma-separated private certificate policy OIDs the CA asserts instead of anyPolicy; its "
                  "certificates then assert them when their profile names none. Empty: anyPolicy.",
    )
    root_password = root_password_field(required=False, help_text="Needed when the parent is a root CA.")

    def clean_policy_oids(self) -> list[str]:
        return [oid.strip() for oid in self.cleaned_data["policy_oids"].split(",") if oid.strip()]

    def __init__(self, *args, parents: QuerySet[CertificateAuthority], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["parent"].queryset = parents


class IssueForm(forms.Form):
    SOURCE_CSR = "csr"
    SOURCE_SERVER = "server"

    ca = CAChoiceField(label="Issuing CA", queryset=CertificateAuthority.objects.none())
    profile = forms.ChoiceField(label="Profile", choices=[])
    key_source = forms.ChoiceField(
        label="Key", widget=forms.RadioSelect, initial=SOURCE_CSR,
        choices=[(SOURCE_CSR, "I have a CSR (the private key stays with me)"),
                 (SOURCE_SERVER, "Generate the key on the server (delivered as a PKCS#12 file)")],
    )
    csr = forms.CharField(label="CSR (PEM)", required=False, max_length=MAX_UPLOAD_BYTES,
                          widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false",
                                                       "placeholder": "-----BEGIN CERTIFICATE REQUEST-----"}))
    csr_file = forms.FileField(label="…or upload a CSR file (PEM or DER)", required=False)
    common_name = forms.CharField(label="Common name", required=False, max_length=64,
                                  help_text="For a server key; with a CSR it overrides the CSR's name.")
    sans = forms.CharField(
        label="Subject alternative names", required=False, max_length=8000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false",
                                     "placeholder": "DNS:www.example.com\nIP:192.0.2.10\nEMAIL:ops@example.com"}),
        help_text="One per line (or comma-separated): DNS:…, IP:…, EMAIL:…",
    )
    key_type = forms.ChoiceField(label="Key type (server key only)", choices=KEY_TYPE_CHOICES,
                                 initial=KeyType.EC_P256.value, required=False)
    days = forms.IntegerField(label="Validity (days, optional)", min_value=1, max_value=3650, required=False,
                              help_text="Empty: the profile's default (at most a year).")
    hours = forms.IntegerField(label="…or validity in hours (short-lived, optional)", min_value=1,
                               max_value=3650 * 24, required=False, help_text="Instead of days.")

    def __init__(self, *args, issuers: QuerySet[CertificateAuthority],
                 profiles: QuerySet[CertificateProfile] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        profiles = profiles if profiles is not None else CertificateProfile.objects.filter(
            organization__isnull=True, enabled=True)
        self.fields["profile"].choices = [
            (profile.name, f"{profile.name}: {profile.description}" if profile.description else profile.name)
            for profile in profiles.order_by("-is_builtin", "name")]
        self.fields["ca"].queryset = issuers
        self.fields["ca"].empty_label = "Choose the issuing CA"
        first_two = list(issuers[:2])
        if len(first_two) == 1:  # one CA can issue: preselect it
            self.fields["ca"].initial = first_two[0].pk

    def clean_csr_file(self):
        upload = self.cleaned_data.get("csr_file")
        return read_upload(upload, "CSR") if upload else None

    def clean(self) -> dict:
        data = super().clean()
        if data.get("key_source") == self.SOURCE_CSR:
            csr = data.get("csr_file") or (data.get("csr") or "").strip()
            if not csr:
                self.add_error("csr", "Paste a CSR or upload a CSR file, or choose a server-generated key.")
            data["csr_data"] = csr
        elif data.get("key_source") == self.SOURCE_SERVER and not (data.get("common_name") or "").strip() \
                and not self.san_list():
            self.add_error("common_name", "Give a common name and/or subject alternative names.")
        return data

    def san_list(self) -> list[str]:
        text = self.cleaned_data.get("sans") or ""
        return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    slug = forms.CharField(label="Slug (optional)", max_length=64, required=False,
                           help_text="Lower-case letters, digits and hyphens; derived from the name when empty.")


class DecoderForm(forms.Form):
    text = forms.CharField(label="Certificate or CSR (PEM)", required=False, max_length=MAX_UPLOAD_BYTES,
                           widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false",
                                                        "placeholder": "-----BEGIN CERTIFICATE-----"}))
    file = forms.FileField(label="…or upload a file (PEM or DER)", required=False)

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        return read_upload(upload, "uploaded") if upload else None

    def clean(self) -> dict:
        data = super().clean()
        data["data"] = data.get("file") or (data.get("text") or "").strip()
        if not data["data"] and not self.errors:
            raise forms.ValidationError("Paste a certificate or a CSR, or choose a file.")
        return data


class CrlForm(forms.Form):
    ca = CAChoiceField(label="CA", queryset=CertificateAuthority.objects.none())
    root_password = root_password_field(required=False, help_text="Needed only for a root CA's CRL.")

    def __init__(self, *args, cas: QuerySet[CertificateAuthority], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ca"].queryset = cas
        self.fields["ca"].empty_label = "Choose a CA"
