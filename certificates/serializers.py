"""Shapes of the CA and certificate API: what a request may carry, what a response shows.

Serializers validate shape only (types, lengths, choices). Every business rule (may this
CA sign, is the CSR acceptable, does the profile allow these days) is the services'.
Strings are bounded so that a hostile body can never reach a service or the database
as something huge; DRF's CharField already refuses NUL characters.
"""

from __future__ import annotations

import functools
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from certificates.crypto.keys import KeyType
from certificates.crypto.purposes import CA_PURPOSES
from certificates.models import (
    Certificate,
    CertificateAuthority,
    CertificateKind,
    CertificateProfile,
    CertificateRevocationList,
    CertificateStatus,
    KeySource,
    RevocationReason,
)
from certificates.selectors import acme_origin
from certificates.services.artifacts import DownloadFormat, certificate_pem, chain_pem
from certificates.services.authorities import (
    MAX_CA_DAYS,
    MAX_PATH_LENGTH,
    MAX_ROOT_CRL_VALIDITY_HOURS,
    ca_purposes,
)
from certificates.services.profiles import ca_policy_oids

MAX_PEM_LENGTH = 64 * 1024  # a CSR with a 16k-bit RSA key and 100 SANs fits many times over
MAX_NAME_LENGTH = 64  # X.509 ub-common-name (RFC 5280 appendix A)
MAX_SAN_LENGTH = 255
MAX_SANS = 100
MAX_NAME_CONSTRAINTS = 32
MAX_PASSWORD_LENGTH = 1024
MAX_DAYS = 36500  # a shape bound; each profile and CA has its own, smaller, limit in the services
MAX_REFERENCE_LENGTH = 64  # a CA's slug or id
MAX_POLICY_OIDS = 16
MAX_POLICY_OID_LENGTH = 128


def _password_field() -> serializers.CharField:
    return serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_PASSWORD_LENGTH,
        style={"input_type": "password"}, help_text="The root CA's password (never stored or logged).",
    )


# --- Errors (documentation only: pki_project.errors builds the bodies) ---------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `invalid`, `not_found`, `unlock_failed`.")
    message = serializers.CharField(help_text="Safe to show a person; never contains a secret.")
    fields = serializers.DictField(required=False, help_text="Per-field messages of a validation error.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- CAs --------------------------------------------------------------------------------------------


class CertificateAuthoritySerializer(serializers.ModelSerializer):
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    parent = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    certificate = serializers.IntegerField(source="certificate_id", read_only=True,
                                           help_text="The id of the CA's own certificate (see certificates/{id}/).")
    serial = serializers.CharField(source="certificate.serial", read_only=True)
    fingerprint_sha256 = serializers.CharField(source="certificate.fingerprint_sha256", read_only=True)
    key_type = serializers.CharField(source="certificate.key_type", read_only=True)
    not_before = serializers.DateTimeField(source="certificate.not_before", read_only=True)
    not_after = serializers.DateTimeField(source="certificate.not_after", read_only=True)
    status = serializers.ChoiceField(source="certificate.status", choices=CertificateStatus.choices, read_only=True)
    certificate_pem = serializers.SerializerMethodField()
    purposes = serializers.SerializerMethodField(
        help_text="What the CA vouches for: its certificate's extended key usage (all purposes when it has none).")
    policy_oids = serializers.SerializerMethodField(
        help_text="The private certificate policies the CA asserts; empty for anyPolicy (or none, for a root).")

    class Meta:
        model = CertificateAuthority
        fields = ["id", "slug", "name", "kind", "organization", "parent", "certificate", "serial",
                  "fingerprint_sha256", "key_type", "not_before", "not_after", "status", "path_length",
                  "permitted_names", "excluded_names", "purposes", "policy_oids", "crl_number", "certificate_pem",
                  "created_at", "key_backend", "token_label"]
        read_only_fields = fields

    def get_certificate_pem(self, ca: CertificateAuthority) -> str:
        return certificate_pem(ca.certificate).decode()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_purposes(self, ca: CertificateAuthority) -> list[str]:
        return ca_purposes(ca)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_policy_oids(self, ca: CertificateAuthority) -> list[str]:
        return list(ca_policy_oids(ca))


class CertificateAuthorityCreateSerializer(serializers.Serializer):
    """A root (`kind: root`, `organization`, `root_password`) or an intermediate (`kind: intermediate`, `parent`)."""

    kind = serializers.ChoiceField(choices=CertificateAuthority.Kind.choices)
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="The CA's common name.")
    slug = serializers.SlugField(max_length=64, required=False, allow_blank=True,
                                 help_text="Derived from the name when left out.")
    organization = serializers.SlugField(
        required=False, allow_null=True, allow_blank=True, max_length=MAX_REFERENCE_LENGTH,
        help_text="Root only. The organization's id or slug; defaults to the caller's own (a global admin must "
                  "name one).",
    )
    parent = serializers.SlugField(required=False, allow_blank=True, max_length=MAX_REFERENCE_LENGTH,
                                   help_text="Intermediate only: the parent CA's id or slug.")
    key_type = serializers.ChoiceField(choices=[k.value for k in KeyType], required=False)
    days = serializers.IntegerField(required=False, min_value=1, max_value=MAX_CA_DAYS)
    root_password = _password_field()
    key_backend = serializers.ChoiceField(
        choices=CertificateAuthority.KeyBackend.choices, required=False,
        help_text="Where the new CA's key is made: `vault` (default) or `pkcs11` (a token; a root's "
                  "`root_password` is then the token's user PIN, an intermediate's token uses the server's PIN file).")
    token_label = serializers.CharField(required=False, allow_blank=True, max_length=32,
                                        help_text="The PKCS#11 token of the new key (`key_backend: pkcs11`).")
    path_length = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_PATH_LENGTH)
    crl_validity_hours = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ROOT_CRL_VALIDITY_HOURS,
        help_text="thisUpdate to nextUpdate of this CA's CRLs in hours (BR 4.9.7: a root at most 8760, an "
                  "intermediate at most 240). Default 2160 for a root, 168 for an intermediate.",
    )
    permitted_names = serializers.ListField(
        child=serializers.CharField(max_length=MAX_SAN_LENGTH), required=False, max_length=MAX_NAME_CONSTRAINTS,
        help_text='Intermediate only: permitted DNS domains, e-mail domains or IP networks, e.g. "example.com", '
                  '"10.0.0.0/8".',
    )
    excluded_names = serializers.ListField(
        child=serializers.CharField(max_length=MAX_SAN_LENGTH), required=False, max_length=MAX_NAME_CONSTRAINTS,
    )
    purposes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(CA_PURPOSES)), required=False, allow_empty=False,
        max_length=len(CA_PURPOSES),
        help_text="Intermediate only: what the CA vouches for (its extended key usage), which limits the profiles "
                  "it can issue. Default: the parent's purposes; all three below a root.",
    )
    policy_oids = serializers.ListField(
        child=serializers.CharField(max_length=MAX_POLICY_OID_LENGTH), required=False, max_length=MAX_POLICY_OIDS,
        help_text="Intermediate only: the private certificate policy OIDs it asserts instead of anyPolicy; its "
                  "certificates then assert them when their profile names none, and never others.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["kind"] == CertificateAuthority.Kind.INTERMEDIATE and not attrs.get("parent"):
            raise serializers.ValidationError({"parent": ["An intermediate CA needs a parent."]})
        if attrs["kind"] == CertificateAuthority.Kind.ROOT:
            for name in ("parent", "permitted_names", "excluded_names", "purposes", "policy_oids"):
                if attrs.get(name):
                    raise serializers.ValidationError({name: ["Only an intermediate CA takes this field."]})
        return attrs


class CrlRequestSerializer(serializers.Serializer):
    root_password = _password_field()


class CrlSerializer(serializers.ModelSerializer):
    ca = serializers.IntegerField(source="ca_id", read_only=True)
    crl_pem = serializers.SerializerMethodField()
    crl_url = serializers.SerializerMethodField(help_text="Where relying parties fetch it (DER).")

    class Meta:
        model = CertificateRevocationList
        fields = ["id", "ca", "number", "this_update", "next_update", "entry_count", "crl_url", "crl_pem"]
        read_only_fields = fields

    def get_crl_pem(self, crl: CertificateRevocationList) -> str:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_der_x509_crl(bytes(crl.der)).public_bytes(Encoding.PEM).decode()

    def get_crl_url(self, crl: CertificateRevocationList) -> str:
        from django.conf import settings

        return f"{settings.PKI_BASE_URL}/pki/crl/{crl.ca.slug}.crl"


class CrlBatchSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        required=False, default=False,
        help_text="Sign every CA's CRL, not only those that are missing, past half their lifetime or missing a "
                  "recent revocation (`generate_crl --all --force`).",
    )
    root_password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_PASSWORD_LENGTH,
        style={"input_type": "password"},
        help_text="Admins: the password that unlocks the roots to sign (tried on each root that is due; a root "
                  "it does not open fails alone). Without it roots are skipped. Never stored or logged.",
    )


class CrlSummarySerializer(serializers.ModelSerializer):
    delta_base = serializers.IntegerField(source="delta_base_number", read_only=True, allow_null=True,
                                          help_text="A delta CRL: the number of its base CRL; null for a full CRL.")

    class Meta:
        model = CertificateRevocationList
        fields = ["id", "number", "delta_base", "this_update", "next_update", "entry_count"]
        read_only_fields = fields


class CrlErrorSerializer(serializers.Serializer):
    code = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)


class CrlPublicationSerializer(serializers.Serializer):
    ca = serializers.IntegerField(source="ca.pk", read_only=True)
    ca_slug = serializers.CharField(source="ca.slug", read_only=True)
    kind = serializers.ChoiceField(source="ca.kind", choices=CertificateAuthority.Kind.choices, read_only=True)
    organization = serializers.IntegerField(source="ca.organization_id", read_only=True)
    outcome = serializers.ChoiceField(
        choices=["signed", "current", "skipped", "failed"], read_only=True,
        help_text="signed: `crls` holds the new full CRL (and delta); current: not due, `crls` holds the latest; "
                  "skipped: a root without the password or a manager's call (`reason`); failed: see `error`.",
    )
    reason = serializers.CharField(read_only=True)
    crls = CrlSummarySerializer(many=True, read_only=True)
    error = CrlErrorSerializer(read_only=True, allow_null=True)


class CrlBatchResultSerializer(serializers.Serializer):
    cas = CrlPublicationSerializer(many=True, read_only=True)
    signed = serializers.IntegerField(read_only=True)
    current = serializers.IntegerField(read_only=True)
    skipped = serializers.IntegerField(read_only=True)
    failed = serializers.IntegerField(read_only=True)


# --- Certificates -----------------------------------------------------------------------------------


class CertificateSerializer(serializers.ModelSerializer):
    """A row of the list: everything but the PEM."""

    ca = serializers.IntegerField(source="issuer_id", read_only=True, allow_null=True,
                                  help_text="The issuing CA's id (null for a root's self-signed certificate).")
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    status = serializers.ChoiceField(choices=CertificateStatus.choices, read_only=True)
    kind = serializers.ChoiceField(choices=CertificateKind.choices, read_only=True)
    key_source = serializers.ChoiceField(choices=KeySource.choices, read_only=True)
    sans = serializers.ListField(child=serializers.CharField(), read_only=True)
    revocation_reason = serializers.ChoiceField(choices=[("", ""), *RevocationReason.choices], read_only=True)

    class Meta:
        model = Certificate
        fields = ["id", "serial", "common_name", "status", "kind", "profile", "ca", "organization", "sans",
                  "key_type", "key_source", "not_before", "not_after", "fingerprint_sha256", "revoked_at",
                  "revocation_reason", "created_at"]
        read_only_fields = fields


class AcmeOriginSerializer(serializers.Serializer):
    account = serializers.CharField()
    order = serializers.CharField()


class CertificateDetailSerializer(CertificateSerializer):
    ca_slug = serializers.SerializerMethodField()
    predecessor = serializers.IntegerField(source="predecessor_id", read_only=True, allow_null=True)
    successor = serializers.SerializerMethodField()
    has_pkcs12 = serializers.SerializerMethodField(help_text="The key was generated here: p12 download and password.")
    certificate_pem = serializers.SerializerMethodField()
    chain_pem = serializers.SerializerMethodField(help_text="The certificate and its intermediates (no root).")
    acme = serializers.SerializerMethodField(
        help_text="The ACME account and order it was issued to (names as in their URLs); null for other channels.")

    class Meta(CertificateSerializer.Meta):
        fields = [*CertificateSerializer.Meta.fields, "subject", "invalidity_date", "ca_slug", "predecessor",
                  "successor", "has_pkcs12", "created_by", "acme", "certificate_pem", "chain_pem"]
        read_only_fields = fields

    def get_ca_slug(self, certificate: Certificate) -> str | None:
        return certificate.issuer.slug if certificate.issuer_id else None

    def get_successor(self, certificate: Certificate) -> int | None:
        if self.context.get("just_issued"):  # nothing can have renewed it yet: no query
            return None
        return Certificate.objects.filter(predecessor_id=certificate.pk).values_list("pk", flat=True).first()

    @extend_schema_field(AcmeOriginSerializer(allow_null=True))
    def get_acme(self, certificate: Certificate) -> dict[str, str] | None:
        if self.context.get("just_issued"):  # issued by another channel in this request: no query
            return None
        return acme_origin(certificate)

    def get_has_pkcs12(self, certificate: Certificate) -> bool:
        return bool(certificate.pkcs12_path)

    def get_certificate_pem(self, certificate: Certificate) -> str:
        return certificate_pem(certificate).decode()

    def get_chain_pem(self, certificate: Certificate) -> str:
        return chain_pem(certificate).decode()


@functools.cache
def _just_issued_serializer() -> CertificateDetailSerializer:
    """One detail serializer per process for the answers of issuance, its fields built once.

    DRF builds a serializer's fields (a deep copy of each declared field) for every
    instance, which cost about as much as signing the certificate. `to_representation`
    keeps no state between calls (a ListSerializer uses one child for every row the same
    way), so concurrent answers can share it.
    """
    serializer = CertificateDetailSerializer(context={"just_issued": True})
    serializer.fields  # noqa: B018  (build them now, not racing in the first requests)
    return serializer


def just_issued_certificate_data(certificate: Certificate) -> dict:
    """The detail representation of a certificate this request has just issued."""
    return _just_issued_serializer().to_representation(certificate)


class IssueSerializer(serializers.Serializer):
    """Issue from a CSR (`csr`), or with a key generated on the server (`common_name`, `sans`, `key_type`)."""

    ca = serializers.SlugField(max_length=MAX_REFERENCE_LENGTH, help_text="The issuing CA's id or slug.")
    profile = serializers.CharField(max_length=64, help_text="A profile's name (GET profiles/): a built-in "
                                    "(server, client, server-client, email) or one of the organization's.")
    csr = serializers.CharField(required=False, allow_blank=True, max_length=MAX_PEM_LENGTH, trim_whitespace=False,
                                help_text="A PKCS#10 request, PEM.")
    common_name = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NAME_LENGTH)
    sans = serializers.ListField(child=serializers.CharField(max_length=MAX_SAN_LENGTH), required=False,
                                 max_length=MAX_SANS, help_text='e.g. ["DNS:www.example.com", "IP:192.0.2.1"]')
    key_type = serializers.ChoiceField(choices=[k.value for k in KeyType], required=False,
                                       help_text="Only without a CSR (default ec-p256).")
    days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DAYS,
                                    help_text="Default: a year, or the profile's maximum when shorter.")
    hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DAYS * 24,
                                     help_text="The validity in hours instead of days (short-lived certificates).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("csr") and not attrs.get("common_name") and not attrs.get("sans"):
            raise serializers.ValidationError(
                {"csr": ["Give a CSR, or a common name and/or SANs for a key generated on the server."]})
        return attrs


class RenewSerializer(serializers.Serializer):
    csr = serializers.CharField(required=False, allow_blank=True, max_length=MAX_PEM_LENGTH, trim_whitespace=False,
                                help_text="A new CSR (a new key); without it the same public key is certified again.")
    days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DAYS)
    hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DAYS * 24)
    revoke_predecessor = serializers.BooleanField(required=False, default=False)


class RevokeSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=RevocationReason.choices)
    invalidity_date = serializers.DateTimeField(required=False, allow_null=True,
                                                help_text="ISO 8601 with a time zone; never in the future.")
    root_password = _password_field()
    revoke_children = serializers.BooleanField(
        required=False, default=False, help_text="For a CA certificate: revoke every valid certificate below it too.")


class RevokeResultSerializer(serializers.Serializer):
    revoked = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of every revoked certificate.")
    certificate = CertificateDetailSerializer()


class Pkcs12PasswordSerializer(serializers.Serializer):
    password = serializers.CharField()


@extend_schema_field(OpenApiTypes.BINARY)
class BinaryField(serializers.Field):
    """Documentation only: a download's body."""


DOWNLOAD_FORMATS = [f.value for f in DownloadFormat]


# --- Certificate profiles ----------------------------------------------------------------------------

PROFILE_LIST_FIELDS = ("extended_key_usages", "key_usage", "rsa_key_usage", "ec_key_usage", "allowed_key_types",
                       "allowed_san_types", "required_san_types", "allowed_dns_suffixes", "allowed_ip_networks",
                       "policy_oids")
PROFILE_BOOLEAN_FIELDS = ("enabled", "requires_san", "allow_wildcard", "common_name_in_san", "cabf_policy",
                          "must_staple", "crl_distribution_point", "ocsp_url", "requires_approval")


def _string_list_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=255), max_length=64, **kwargs)


class CertificateProfileSerializer(serializers.ModelSerializer):
    """A profile as the API shows it (`organization`: the slug, null for a global profile)."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    extended_key_usages = _string_list_field(read_only=True)
    key_usage = _string_list_field(read_only=True)
    rsa_key_usage = _string_list_field(read_only=True)
    ec_key_usage = _string_list_field(read_only=True)
    allowed_key_types = _string_list_field(read_only=True)
    allowed_san_types = _string_list_field(read_only=True)
    required_san_types = _string_list_field(read_only=True)
    allowed_dns_suffixes = _string_list_field(read_only=True)
    allowed_ip_networks = _string_list_field(read_only=True)
    policy_oids = _string_list_field(read_only=True)

    class Meta:
        model = CertificateProfile
        fields = ["id", "name", "description", "organization", "is_builtin", "max_validity_hours",
                  *PROFILE_LIST_FIELDS, *PROFILE_BOOLEAN_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class CertificateProfileWriteSerializer(serializers.Serializer):
    """Create (`name` and `max_validity_hours` required) or change a profile: shapes here, rules in the service.

    EKUs: serverAuth, clientAuth, emailProtection, codeSigning, timeStamping. Key usage flags:
    digital_signature, content_commitment, key_encipherment, data_encipherment, key_agreement,
    encipher_only, decipher_only. SAN types: dns, ip, email.
    """

    name = serializers.CharField(max_length=64)
    organization = serializers.CharField(max_length=64, required=False, allow_null=True,
                                         help_text="Slug or id; only a global admin chooses (empty: global).")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    max_validity_hours = serializers.IntegerField(min_value=1, max_value=MAX_DAYS * 24)
    extended_key_usages = _string_list_field(required=False)
    key_usage = _string_list_field(required=False)
    rsa_key_usage = _string_list_field(required=False)
    ec_key_usage = _string_list_field(required=False)
    allowed_key_types = _string_list_field(required=False)
    allowed_san_types = _string_list_field(required=False)
    required_san_types = _string_list_field(required=False)
    allowed_dns_suffixes = _string_list_field(required=False)
    allowed_ip_networks = _string_list_field(required=False)
    policy_oids = _string_list_field(required=False)
    enabled = serializers.BooleanField(required=False)
    requires_san = serializers.BooleanField(required=False)
    allow_wildcard = serializers.BooleanField(required=False)
    common_name_in_san = serializers.BooleanField(required=False)
    cabf_policy = serializers.BooleanField(required=False)
    must_staple = serializers.BooleanField(required=False)
    crl_distribution_point = serializers.BooleanField(required=False)
    ocsp_url = serializers.BooleanField(required=False)
    requires_approval = serializers.BooleanField(required=False)
