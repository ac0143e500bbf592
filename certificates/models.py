"""CAs and certificates.

Every certificate the PKI knows, CA certificates included, is a `Certificate` row:
one table answers "what did this issuer sign" for CRLs, OCSP, listing and backup.
A `CertificateAuthority` is the signing role wrapped around one of those rows,
plus where its encrypted key lives.

Status is derived from time and the revocation columns, never stored, so it cannot
go stale (`Certificate.objects.valid(now)`).
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from organizations.models import Organization

MAX_DATABASE_ID = 2**63 - 1


def is_ascii_number(text: str) -> bool:
    """A database id: ASCII digits only ("³".isdigit() is True but int("³") fails) and in range."""
    return text.isascii() and text.isdigit() and int(text) <= MAX_DATABASE_ID


class RevocationReason(models.TextChoices):
    """RFC 5280 section 5.3.1 reason codes offered to operators (no certificateHold: revocation is final)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"


class CertificateKind(models.TextChoices):
    ROOT_CA = "root_ca"
    INTERMEDIATE_CA = "intermediate_ca"
    END_ENTITY = "end_entity"
    OCSP_RESPONDER = "ocsp_responder"


class KeySource(models.TextChoices):
    CSR = "csr"  # the subscriber holds the key; we never saw it
    SERVER = "server"  # generated here; kept encrypted (PKCS#12 for end entities)


class CertificateStatus(models.TextChoices):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class CertificateQuerySet(models.QuerySet):
    """Chainable, time-aware filters: `Certificate.objects.for_organization(o).valid()`."""

    def revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=False)

    def not_revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=True)

    def valid(self, now: datetime | None = None) -> CertificateQuerySet:
        now = now or timezone.now()
        return self.not_revoked().filter(not_before__lte=now, not_after__gt=now)

    def expired(self, now: datetime | None = None) -> CertificateQuerySet:
        return self.not_revoked().filter(not_after__lte=now or timezone.now())

    def with_status(self, status: str, now: datetime | None = None) -> CertificateQuerySet:
        by_status = {
            CertificateStatus.VALID: self.valid,
            CertificateStatus.REVOKED: lambda _now: self.revoked(),
            CertificateStatus.EXPIRED: self.expired,
            CertificateStatus.NOT_YET_VALID: lambda _now: self.not_revoked().filter(
                not_before__gt=_now or timezone.now()
            ),
        }
        return by_status[CertificateStatus(status)](now)

    def expiring_within(self, days: int, now: datetime | None = None) -> CertificateQuerySet:
        now = now or timezone.now()
        return self.valid(now).filter(not_after__lte=now + timezone.timedelta(days=days))

    def issued_by(self, ca: CertificateAuthority) -> CertificateQuerySet:
        return self.filter(issuer=ca)

    def for_organization(self, organization_id: int | None) -> CertificateQuerySet:
        return self.filter(organization_id=organization_id)

    def end_entities(self) -> CertificateQuerySet:
        return self.filter(kind=CertificateKind.END_ENTITY)


class Certificate(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="certificates")
    issuer = models.ForeignKey(
        "CertificateAuthority", null=True, blank=True, on_delete=models.PROTECT, related_name="issued"
    )
    kind = models.CharField(max_length=20, choices=CertificateKind.choices)
    profile = models.CharField(max_length=64, blank=True)
    serial = models.CharField(max_length=40, help_text="Lower-case hex, no separators.")
    common_name = models.CharField(max_length=64, blank=True)
    subject = models.TextField(help_text="RFC 4514 string of the subject.")
    sans = models.JSONField(default=list, blank=True, help_text='SANs as "DNS:…", "IP:…", "EMAIL:…".')
    key_type = models.CharField(max_length=16)
    key_source = models.CharField(max_length=8, choices=KeySource.choices)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    der = models.BinaryField(help_text="The certificate, DER-encoded. Public; PEM is derived.")
    key_path = models.CharField(max_length=255, blank=True, help_text="Relative to PKI_DATA_DIR.")
    pkcs12_path = models.CharField(max_length=255, blank=True, help_text="Relative to PKI_DATA_DIR.")
    pkcs12_password_path = models.CharField(max_length=255, blank=True, help_text="Relative to PKI_DATA_DIR.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=24, choices=RevocationReason.choices, blank=True)
    invalidity_date = models.DateTimeField(null=True, blank=True)
    predecessor = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="successor"
    )
    created_by = models.CharField(max_length=150, blank=True, help_text="Username or operator label.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CertificateQuerySet.as_manager()

    class Meta:
        # Newest first by id: the same order as creation time (ids only grow, restores keep
        # them), served by the primary key, so a page of a large inventory needs no sort.
        ordering = ["-id"]
        constraints = [
            # RFC 5280 4.1.2.2: a serial identifies a certificate only together with its issuer.
            # Serial first, so the same index also serves a search by serial alone (one
            # random-key index fewer for every issuance to update; the name predates the order).
            models.UniqueConstraint(fields=["serial", "issuer"], name="certificate_unique_issuer_serial"),
            # A root is self-issued (no issuer row); every other certificate has an issuer.
            models.CheckConstraint(
                condition=(Q(kind=CertificateKind.ROOT_CA, issuer__isnull=True)
                           | (~Q(kind=CertificateKind.ROOT_CA) & Q(issuer__isnull=False))),
                name="certificate_root_iff_no_issuer",
            ),
            models.CheckConstraint(condition=Q(not_after__gt=models.F("not_before")),
                                   name="certificate_validity_ordered"),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True, revocation_reason="")
                | Q(revoked_at__isnull=False) & ~Q(revocation_reason=""),
                name="certificate_revocation_complete",
            ),
            models.CheckConstraint(condition=Q(kind__in=CertificateKind.values), name="certificate_kind_known"),
            models.CheckConstraint(condition=~Q(serial=""), name="certificate_serial_present"),
        ]
        # Every index costs each issuance an update: the issuer's revoked rows are read
        # through cert_crl_entries, its other rows through the issuer foreign key's index, which also
        # keeps a CA's page in id order; tests/certificates/test_query_plans.py checks the plans.
        indexes = [
            models.Index(fields=["organization", "not_after"], name="cert_org_not_after"),
            models.Index(fields=["not_after"], name="cert_not_after"),
            models.Index(Lower("common_name"), name="cert_cn_lower"),
            # Covers the status filters (valid, expired, expiring within): counts read the index alone,
            # and ordering by its whole key (not_after, not_before, id) needs no sort, ties included.
            models.Index(fields=["revoked_at", "not_after", "not_before", "id"], name="cert_status_window"),
            # A CRL's entries (certificates.services.crls.revoked_entries) read from the index alone,
            # in order, instead of one table lookup per revoked row; revoked rows only.
            models.Index(fields=["issuer", "not_after", "serial", "revoked_at", "revocation_reason", "invalidity_date"],
                         condition=Q(revoked_at__isnull=False), name="cert_crl_entries"),
            # A CA's delegated OCSP responders (certificates.services.ocsp): without it the lookup
            # walked every valid certificate through cert_status_window (311 ms at 100,000). Partial,
            # so an end-entity issuance only evaluates its condition.
            models.Index(fields=["issuer", "-not_after"], condition=Q(kind=CertificateKind.OCSP_RESPONDER),
                         name="cert_ocsp_responders"),
        ]

    def __str__(self) -> str:
        return f"{self.common_name or self.subject} ({self.serial[:16]})"

    def status_at(self, now: datetime | None = None) -> CertificateStatus:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return CertificateStatus.REVOKED
        if now < self.not_before:
            return CertificateStatus.NOT_YET_VALID
        if now >= self.not_after:
            return CertificateStatus.EXPIRED
        return CertificateStatus.VALID

    @property
    def status(self) -> CertificateStatus:
        return self.status_at()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class CertificateAuthorityQuerySet(models.QuerySet):
    def roots(self) -> CertificateAuthorityQuerySet:
        return self.filter(parent__isnull=True)

    def intermediates(self) -> CertificateAuthorityQuerySet:
        return self.filter(parent__isnull=False)

    def usable(self, now: datetime | None = None) -> CertificateAuthorityQuerySet:
        """CAs that may sign now: their certificate is neither revoked nor outside its validity."""
        now = now or timezone.now()
        return self.filter(
            certificate__revoked_at__isnull=True, certificate__not_before__lte=now, certificate__not_after__gt=now
        )

    def for_organization(self, organization_id: int | None) -> CertificateAuthorityQuerySet:
        return self.filter(organization_id=organization_id)

    def by_reference(self, reference: str) -> CertificateAuthorityQuerySet:
        """A CA named the way operators and URLs name it: its slug, or its numeric id."""
        reference = str(reference).strip()
        if is_ascii_number(reference):
            return self.filter(Q(pk=int(reference)) | Q(slug=reference))
        return self.filter(slug=reference)


class CertificateAuthority(models.Model):
    class Kind(models.TextChoices):
        ROOT = "root"
        INTERMEDIATE = "intermediate"

    class KeyBackend(models.TextChoices):
        """Where the CA's private key lives (see `certificates.signers`)."""

        VAULT = "vault", "encrypted file vault"
        PKCS11 = "pkcs11", "PKCS#11 token"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="cas")
    name = models.CharField(max_length=64, help_text="The CA's common name.")
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    certificate = models.OneToOneField(Certificate, on_delete=models.PROTECT, related_name="authority")
    key_directory = models.CharField(max_length=255, help_text="Directory of key.pem.enc and .pwd.enc, relative.")
    root_key_params = models.JSONField(
        default=dict, blank=True, help_text="Non-secret KDF salt and parameters of a root's two-part key."
    )
    key_backend = models.CharField(max_length=16, choices=KeyBackend.choices, default=KeyBackend.VAULT)
    token_label = models.CharField(max_length=32, blank=True, help_text="PKCS#11 token holding the key (CKA_LABEL "
                                   "of the token); empty for the vault.")
    key_label = models.CharField(max_length=64, blank=True, help_text="CKA_LABEL of the key on the token.")
    key_id = models.CharField(max_length=64, blank=True, help_text="CKA_ID of the key on the token, in hex.")
    path_length = models.PositiveSmallIntegerField(null=True, blank=True)
    permitted_names = models.JSONField(default=list, blank=True, help_text="Name constraints: permitted subtrees.")
    excluded_names = models.JSONField(default=list, blank=True, help_text="Name constraints: excluded subtrees.")
    crl_number = models.PositiveBigIntegerField(default=0, help_text="Last CRL number issued; only grows.")
    crl_validity_hours = models.PositiveIntegerField(default=24)
    requires_approval = models.BooleanField(
        default=False, help_text="Every certificate this CA issues waits for a second person's approval.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CertificateAuthorityQuerySet.as_manager()

    class Meta:
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        ordering = ["organization_id", "parent_id", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="root", parent__isnull=True) | Q(kind="intermediate", parent__isnull=False),
                name="ca_root_iff_no_parent",
            ),
            models.CheckConstraint(
                condition=Q(kind="intermediate") | Q(key_backend="pkcs11") | ~Q(root_key_params={}),
                name="ca_root_has_key_params",
            ),
            models.CheckConstraint(
                condition=Q(key_backend="vault", token_label="", key_id="")
                | (Q(key_backend="pkcs11") & ~Q(token_label="") & ~Q(key_id="")),
                name="ca_token_key_named",
            ),
            models.CheckConstraint(condition=~Q(key_directory="") | Q(key_backend="pkcs11"),
                                   name="ca_key_directory_present"),
            models.CheckConstraint(condition=Q(crl_validity_hours__gte=1), name="ca_crl_validity_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


class CertificateRevocationList(models.Model):
    """A signed CRL as published. Served from here, never signed per request."""

    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="crls")
    number = models.PositiveBigIntegerField(help_text="RFC 5280 5.2.3 cRLNumber; shared by full and delta CRLs.")
    delta_base_number = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="For a delta CRL (RFC 5280 5.2.4), the number of its base CRL."
    )
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()
    entry_count = models.PositiveIntegerField(default=0)
    der = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CRL"
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["ca", "number"], name="crl_unique_ca_number"),
            models.CheckConstraint(condition=Q(next_update__gt=models.F("this_update")), name="crl_next_after_this"),
            models.CheckConstraint(condition=Q(number__gte=1), name="crl_number_positive"),
            models.CheckConstraint(
                condition=Q(delta_base_number__isnull=True) | Q(delta_base_number__lt=models.F("number")),
                name="crl_delta_base_precedes",
            ),
        ]
        indexes = [models.Index(fields=["ca", "delta_base_number", "-number"], name="crl_latest")]

    def __str__(self) -> str:
        kind = "delta CRL" if self.is_delta else "CRL"
        return f"{kind} #{self.number} of {self.ca}"

    @property
    def is_delta(self) -> bool:
        return self.delta_base_number is not None


class PresignedOCSPResponse(models.Model):
    """An OCSP answer a root signed ahead of time, served as it is (RFC 6960 2.4; RFC 5019 2.2.2).

    A root's key opens only with the operator's password, so the answers about the
    root's children (its intermediates) are signed whenever the root is unlocked, one per
    CertID hash algorithm, valid until the root CRL's nextUpdate.
    """

    ca = models.ForeignKey(CertificateAuthority, on_delete=models.CASCADE, related_name="presigned_ocsp_responses")
    serial = models.CharField(max_length=40, help_text="Lower-case hex of the certificate asked about.")
    hash_algorithm = models.CharField(max_length=16, help_text="The CertID hash: sha1, sha256, ...")
    status = models.CharField(max_length=8)
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()
    der = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pre-signed OCSP response"
        constraints = [
            models.UniqueConstraint(fields=["ca", "serial", "hash_algorithm"], name="presigned_ocsp_unique"),
            models.CheckConstraint(condition=Q(next_update__gt=models.F("this_update")),
                                   name="presigned_ocsp_next_after_this"),
        ]

    def __str__(self) -> str:
        return f"OCSP {self.status} for {self.serial[:16]} ({self.hash_algorithm}) by {self.ca}"


#: The longest validity any profile may allow (50 years, in hours): the crypto layer's own bound.
MAX_PROFILE_VALIDITY_HOURS = 50 * 366 * 24
PROFILE_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


class CertificateProfile(models.Model):
    """What an end-entity certificate of one kind contains and may name: a profile as data.

    The four built-ins (`server`, `client`, `server-client`, `email`) are rows made by a
    migration; they cannot be deleted and only a global admin edits them. A profile with an
    `organization` belongs to that organization (only its CAs issue with it, only its members
    see it); without one it is global. The service layer turns a row into the crypto layer's
    frozen `Profile` (`certificates.services.profiles.as_crypto_profile`).

    List fields are JSON lists of names: `extended_key_usages` of RFC 5280 EKU names
    (`serverAuth`, ...), the key usage fields of flag names (`digital_signature`, ...),
    `allowed_key_types` of key types (`ec-p256`, ...; empty: all), the SAN type fields of
    `dns`/`ip`/`email`, `allowed_dns_suffixes` of domains, `allowed_ip_networks` of CIDR
    networks, `policy_oids` of dotted OIDs (empty: the installation's PKI_POLICY_OID, if set).
    """

    name = models.CharField(max_length=64, help_text="Lower-case letters, digits and hyphens.")
    description = models.CharField(max_length=200, blank=True)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="certificate_profiles",
                                     help_text="Empty: a global profile every organization may use.")
    is_builtin = models.BooleanField(default=False, editable=False)
    enabled = models.BooleanField(default=True)
    extended_key_usages = models.JSONField(default=list)
    key_usage = models.JSONField(default=list, help_text="Key usage flags for every key type.")
    rsa_key_usage = models.JSONField(default=list, blank=True, help_text="Added for RSA keys.")
    ec_key_usage = models.JSONField(default=list, blank=True, help_text="Added for EC keys.")
    allowed_key_types = models.JSONField(default=list, blank=True, help_text="Empty: every key type.")
    max_validity_hours = models.PositiveIntegerField(
        help_text="Longest validity in hours (TLS server profiles also follow the BR 6.3.2 schedule).")
    allowed_san_types = models.JSONField(default=list)
    required_san_types = models.JSONField(default=list, blank=True)
    requires_san = models.BooleanField(default=True, help_text="At least one SAN.")
    allow_wildcard = models.BooleanField(default=False)
    common_name_in_san = models.BooleanField(default=True, help_text="BR 7.1.4.3: the CN repeats a SAN.")
    allowed_dns_suffixes = models.JSONField(default=list, blank=True, help_text="Empty: any domain.")
    allowed_ip_networks = models.JSONField(default=list, blank=True, help_text="Empty: any address.")
    policy_oids = models.JSONField(default=list, blank=True)
    cabf_policy = models.BooleanField(
        default=False, help_text="Also assert the CA/B Forum reserved policy OID (never for Ed25519 TLS keys or "
                                 "internal names).")
    must_staple = models.BooleanField(default=False, help_text="RFC 7633 TLS Feature status_request.")
    crl_distribution_point = models.BooleanField(default=True)
    ocsp_url = models.BooleanField(default=True)
    requires_approval = models.BooleanField(
        default=False, help_text="A request waits as pending until a second person approves it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # One name across the installation: certificates record their profile by name.
            models.UniqueConstraint(fields=["name"], name="certificate_profile_unique_name"),
            # The full pattern (PROFILE_NAME_PATTERN) is the service's check: a regex constraint would need
            # SQLite's REGEXP function, which a backup's plain sqlite3 snapshot connection does not have.
            models.CheckConstraint(condition=~Q(name=""), name="certificate_profile_name_not_empty"),
            models.CheckConstraint(condition=Q(max_validity_hours__gte=1,
                                               max_validity_hours__lte=MAX_PROFILE_VALIDITY_HOURS),
                                   name="certificate_profile_validity_positive"),
            models.CheckConstraint(condition=Q(is_builtin=False) | Q(organization__isnull=True),
                                   name="certificate_profile_builtin_is_global"),
        ]

    def __str__(self) -> str:
        return self.name


# The API's Idempotency-Key records live in their own module (certificates.idempotency).
from certificates.idempotency import IdempotencyKey  # noqa: E402, F401

# Expiry notifications (certificates.services.notifications) live in their own module.
from certificates.notification_models import ExpiryNotification, NotificationTarget  # noqa: E402, F401
