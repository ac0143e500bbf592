"""Issuance policy checks: SANs against profiles, name constraints, validity."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import InvalidRequestError, PolicyError
from .names import (
    check_name_characters,
    common_name_of,
    is_wildcard,
    normalize_dns_name,
    normalize_email,
    san_type,
)
from .profiles import Profile, max_validity

# --------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------

#: Upper bound on any requested validity (roughly 50 years), to keep date
#: arithmetic far from overflow and refuse absurd requests.
MAX_DAYS = 50 * 366


def ensure_utc(moment: datetime, label: str = "time") -> datetime:
    """Return ``moment`` in UTC without microseconds; refuse naive datetimes."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequestError(f"{label} must be a timezone-aware datetime", code="time_invalid")
    return moment.astimezone(UTC).replace(microsecond=0)


def utc_now() -> datetime:
    """The current time in UTC, truncated to whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def describe_validity(validity: timedelta) -> str:
    """``90 days`` or ``36 hours`` or ``30 minutes``: the largest whole unit."""
    seconds = int(validity.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _requested_validity(requested: int | timedelta) -> timedelta:
    """An int is a number of days (the historical unit); a timedelta is taken as it is."""
    if isinstance(requested, timedelta):
        if requested < timedelta(minutes=1):
            raise InvalidRequestError("validity must be at least one minute", code="validity_invalid")
        validity = requested
    else:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidRequestError("validity must be a positive number of days", code="validity_invalid")
        if requested > MAX_DAYS:
            raise InvalidRequestError(f"validity must not exceed {MAX_DAYS} days", code="validity_invalid")
        validity = timedelta(days=requested)
    if validity > timedelta(days=MAX_DAYS):
        raise InvalidRequestError(f"validity must not exceed {MAX_DAYS} days", code="validity_invalid")
    return validity


def clamp_validity(
    not_before: datetime,
    requested: int | timedelta,
    profile: Profile | None,
    issuer_not_after: datetime | None,
    issuer_not_before: datetime | None = None,
) -> tuple[datetime, datetime]:
    """Compute ``(not_before, not_after)`` for a certificate valid for ``requested``.

    * ``requested`` is a number of days, or a :class:`timedelta` (short-lived
      certificates of hours or minutes).
    * RFC 5280 4.1.2.5: the validity period is inclusive, so a certificate of
      N days ends at ``not_before + N days - 1 second`` (this is also how BR
      6.3.2 and pkilint count the day limits).
    * More than the profile allows at ``not_before`` (``max_validity``: the BR
      schedule for serverAuth, else the profile's own maximum) raises
      :class:`PolicyError` (code ``validity_too_long``); ``profile=None`` (CA
      certificates) skips that check.
    * The certificate never outlives its issuer: ``not_after`` is *clamped* to
      ``issuer_not_after`` when given (a certificate outliving its issuer would fail path
      validation in some relying parties anyway). Likewise ``not_before`` is
      raised to ``issuer_not_before`` when given. If nothing is left (issuer
      expired) :class:`PolicyError` (code ``issuer_expired``) is raised.
    """
    validity = _requested_validity(requested)
    start = ensure_utc(not_before, "not_before")
    if profile is not None and validity > (allowed := max_validity(profile, start)):
        raise PolicyError(
            f"profile {profile.name!r} allows at most {describe_validity(allowed)}, "
            f"{describe_validity(validity)} requested",
            code="validity_too_long",
        )
    if issuer_not_before is not None:
        start = max(start, ensure_utc(issuer_not_before, "issuer not_before"))
    end = start + validity - timedelta(seconds=1)
    if issuer_not_after is not None:
        end = min(end, ensure_utc(issuer_not_after, "issuer not_after"))
    if end <= start:
        raise PolicyError("the issuing CA has expired or expires too soon", code="issuer_expired")
    return start, end


# --------------------------------------------------------------------------
# SANs against a profile
# --------------------------------------------------------------------------


def validate_sans_for_profile(profile: Profile, sans: Sequence[x509.GeneralName]) -> None:
    """Check the SAN types, presence, wildcards, domains and IP ranges a profile allows.

    Raises :class:`InvalidRequestError` with code ``san_not_allowed``.
    """
    for name in sans:
        kind = san_type(name)
        if kind not in profile.allowed_san_types:
            allowed = ", ".join(sorted(profile.allowed_san_types))
            raise InvalidRequestError(
                f"profile {profile.name!r} does not allow {kind} names (allowed: {allowed})",
                code="san_not_allowed",
            )
        if is_wildcard(name) and not profile.allow_wildcard:
            raise InvalidRequestError(f"profile {profile.name!r} does not allow wildcard names", code="san_not_allowed")
        _check_san_in_allowed_ranges(profile, name)
    if profile.requires_san and not sans:
        raise InvalidRequestError(
            f"profile {profile.name!r} requires at least one subject alternative name",
            code="san_not_allowed",
        )
    present = {san_type(name) for name in sans}
    if missing := sorted(set(profile.required_san_types) - present):
        raise InvalidRequestError(
            f"profile {profile.name!r} requires a SAN of each type: {', '.join(missing)} missing",
            code="san_not_allowed",
        )


def dns_name_in_suffixes(host: str, suffixes: Iterable[str]) -> bool:
    """``host`` (a wildcard by its base) equals one of ``suffixes`` or is below one (label-wise)."""
    host = host.lower().rstrip(".").removeprefix("*.")
    for suffix in suffixes:
        suffix = suffix.lower().strip(".")
        if host == suffix or host.endswith(f".{suffix}"):
            return True
    return False


def _check_san_in_allowed_ranges(profile: Profile, name: x509.GeneralName) -> None:
    if (isinstance(name, x509.DNSName) and profile.allowed_dns_suffixes
            and not dns_name_in_suffixes(name.value, profile.allowed_dns_suffixes)):
        raise InvalidRequestError(
            f"profile {profile.name!r} allows DNS names only under: {', '.join(profile.allowed_dns_suffixes)}",
            code="san_not_allowed",
        )
    if isinstance(name, x509.IPAddress) and profile.allowed_ip_networks:
        networks = [ipaddress.ip_network(network, strict=False) for network in profile.allowed_ip_networks]
        if not any(_ip_matches(name.value, network) for network in networks):
            raise InvalidRequestError(
                f"profile {profile.name!r} allows IP addresses only in: {', '.join(profile.allowed_ip_networks)}",
                code="san_not_allowed",
            )


def _normalised_common_name(common_name: str) -> str | None:
    """The form a SAN of this value takes: a lower-case A-label, a normalised mailbox, or an IP."""
    for parse in (lambda text: normalize_email(text) if "@" in text else None,
                  lambda text: str(ipaddress.ip_address(text)),
                  lambda text: normalize_dns_name(text, allow_wildcard=True)):
        try:
            value = parse(common_name)
        except (InvalidRequestError, ValueError):
            continue
        if value is not None:
            return value
    return None


def check_common_name_in_sans(subject: x509.Name, sans: Sequence[x509.GeneralName]) -> x509.Name:
    """BR 7.1.4.3: a subject commonName must repeat one of the SAN values, as the SAN spells it.

    Returns ``subject`` with the commonName replaced by the matching SAN's normalised value
    (a CSR's ``WWW.EXAMPLE.COM`` becomes ``www.example.com``, like its SAN), or raises
    :class:`InvalidRequestError` (code ``san_not_allowed``) when no SAN matches.
    """
    common_name = common_name_of(subject)
    if common_name is None:
        return subject
    values = {str(name.value).lower(): str(name.value) for name in sans}
    normalised = _normalised_common_name(common_name.strip())
    match = values.get(normalised.lower()) if normalised else None
    match = match or values.get(common_name.lower())
    if match is None:
        raise InvalidRequestError(
            "the common name must also be one of the subject alternative names",
            code="san_not_allowed",
        )
    if match == common_name:
        return subject
    return x509.Name([
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.COMMON_NAME, match) if attribute.oid == NameOID.COMMON_NAME else attribute
            for attribute in rdn
        ])
        for rdn in subject.rdns
    ])


# --------------------------------------------------------------------------
# Name constraints (RFC 5280 4.2.1.10)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NameConstraintSpec:
    """Permitted and excluded subtrees as operator-friendly strings.

    Entries are DNS domains (``example.com``: the domain and every subdomain;
    ``.example.com``: subdomains only), IP networks in CIDR notation
    (``10.0.0.0/8``, ``2001:db8::/32``) or a mailbox (``user@example.com``).
    A domain entry constrains both dNSName and rfc822Name (e-mail domains).
    """

    permitted: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def of(cls, permitted: Iterable[str] | None, excluded: Iterable[str] | None) -> NameConstraintSpec:
        return cls(tuple(permitted or ()), tuple(excluded or ()))

    def to_extension(self) -> x509.NameConstraints:
        """The nameConstraints extension value for these subtrees."""
        permitted = constraint_general_names(self.permitted)
        excluded = constraint_general_names(self.excluded)
        if not permitted and not excluded:
            raise InvalidRequestError("name constraints are empty", code="name_constraints_invalid")
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)


def constraint_general_names(entries: Iterable[str], *, email: bool = True) -> list[x509.GeneralName]:
    """Turn constraint strings into the GeneralNames of a nameConstraints extension.

    A domain yields a dNSName and an rfc822Name subtree (RFC 5280 4.2.1.10:
    constraints apply per name form, so constraining only dNSName would leave
    e-mail addresses unconstrained). An IP network yields an iPAddress subtree.
    With ``email=False`` (a CA that issues no e-mail certificates) a domain yields
    only its dNSName subtree and a mailbox entry is refused.
    """
    result: list[x509.GeneralName] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise InvalidRequestError("empty name constraint", code="name_constraints_invalid")
        check_name_characters("a name constraint", entry, code="name_constraints_invalid")
        text = entry.strip()
        if "/" in text:
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError:
                raise InvalidRequestError(
                    "IP name constraints must be networks like 10.0.0.0/8", code="name_constraints_invalid"
                ) from None
            result.append(x509.IPAddress(network))
        elif "@" in text:
            if not email:
                raise InvalidRequestError(
                    f"'{text}' is an e-mail constraint, but this CA issues no e-mail certificates (its extended "
                    "key usage has no emailProtection): give domains or IP networks", code="name_constraints_invalid",
                )
            result.append(x509.RFC822Name(normalize_email(text)))
        else:
            leading_dot = text.startswith(".")
            try:
                domain = normalize_dns_name(text[1:] if leading_dot else text, allow_wildcard=False)
            except InvalidRequestError:
                raise InvalidRequestError(
                    "invalid domain in name constraints", code="name_constraints_invalid"
                ) from None
            value = f".{domain}" if leading_dot else domain
            result.append(x509.DNSName(value))
            if email:
                result.append(x509.RFC822Name(value))
    return result


_EVERY_IPV4 = x509.IPAddress(ipaddress.ip_network("0.0.0.0/0"))
_EVERY_IPV6 = x509.IPAddress(ipaddress.ip_network("::/0"))
_EVERY_DNS_NAME = x509.DNSName("")  # RFC 5280 4.2.1.10: the empty dNSName matches every name


def directory_subtree(subject: x509.Name) -> x509.Name | None:
    """The CA's organization as a directoryName subtree: its countryName and organizationName, in order."""
    kept = [attribute for attribute in subject
            if attribute.oid in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME)]
    return x509.Name(kept) if kept else None


def ca_name_constraints(
    permitted: Iterable[str] | None,
    excluded: Iterable[str] | None,
    *,
    subject: x509.Name,
    email: bool,
    tls: bool,
) -> x509.NameConstraints:
    """The nameConstraints of a new subordinate CA named ``subject``.

    ``email``: the CA may issue e-mail certificates (its EKU has emailProtection, or it has none);
    otherwise no rfc822Name subtree is written and e-mail constraints are refused. ``tls``: the CA
    may issue TLS certificates; with permitted names it is then a technically constrained TLS CA
    (BR 7.1.2.5.2), which takes a directoryName permitted subtree (the CA's own C and O: every
    certificate below it names this organization) and, for each of dNSName, IPv4 and IPv6 without
    a permitted subtree, the excluded subtree that shuts that form out (the empty dNSName,
    0.0.0.0/0, ::/0). Exclusions alone make no technically constrained CA: they are written as given.
    """
    permitted_names = constraint_general_names(permitted or (), email=email)
    excluded_names = constraint_general_names(excluded or (), email=email)
    if not permitted_names and not excluded_names:
        raise InvalidRequestError("name constraints are empty", code="name_constraints_invalid")
    if permitted_names and tls:
        directory = directory_subtree(subject)
        if directory is not None:
            permitted_names.insert(0, x509.DirectoryName(directory))
        forms = {
            _EVERY_DNS_NAME: any(isinstance(name, x509.DNSName) for name in permitted_names),
            _EVERY_IPV4: any(isinstance(name, x509.IPAddress) and name.value.version == 4 for name in permitted_names),
            _EVERY_IPV6: any(isinstance(name, x509.IPAddress) and name.value.version == 6 for name in permitted_names),
        }
        excluded_names += [everything for everything, has_permitted in forms.items()
                           if not has_permitted and everything not in excluded_names]
    return x509.NameConstraints(permitted_subtrees=permitted_names or None, excluded_subtrees=excluded_names or None)


def _directory_names_within(subject: x509.Name, base: x509.Name) -> bool:
    """RFC 5280 4.2.1.10 / 7.1: ``subject`` starts with the RDNs of ``base`` (compared as encoded)."""
    rdns, prefix = list(subject.rdns), list(base.rdns)
    return len(rdns) >= len(prefix) and rdns[: len(prefix)] == prefix


def permitted_directory_names(constraints: Iterable[x509.NameConstraints | None]) -> list[list[x509.Name]]:
    """For each constraining CA, its permitted directoryName subtrees (CAs without any are left out)."""
    found = []
    for constraint in constraints:
        if constraint is None or not constraint.permitted_subtrees:
            continue
        names = [subtree.value for subtree in constraint.permitted_subtrees if isinstance(subtree, x509.DirectoryName)]
        if names:
            found.append(names)
    return found


def subject_within_directory_subtrees(subject: x509.Name,
                                      constraints: Iterable[x509.NameConstraints | None]) -> x509.Name:
    """``subject`` made to fall in the permitted directoryName subtrees of every CA on the path.

    RFC 5280 4.2.1.10: a directoryName constraint applies to a non-empty subject, so a subject of
    only a commonName below a CA constrained to ``C=US, O=Example`` is refused by relying parties;
    it is issued as ``C=US, O=Example, CN=...``. An empty subject stays empty; a subject that
    already falls inside is kept as it is.
    """
    if not list(subject):
        return subject
    for bases in permitted_directory_names(constraints):
        if not any(_directory_names_within(subject, base) for base in bases):
            subject = x509.Name([*bases[0].rdns, *subject.rdns])
    return subject


def check_directory_subtrees(subject: x509.Name, constraints: Iterable[x509.NameConstraints | None]) -> None:
    """Refuse a non-empty ``subject`` outside a CA's permitted directoryName subtrees (RFC 5280 4.2.1.10)."""
    if not list(subject):
        return
    for bases in permitted_directory_names(constraints):
        if not any(_directory_names_within(subject, base) for base in bases):
            raise PolicyError(f"the subject {subject.rfc4514_string()} is outside the issuer's directoryName "
                              "constraints", code="name_constraints")


def _dns_matches(name: str, constraint: str) -> bool:
    """RFC 5280 4.2.1.10 dNSName matching, plus the common leading-dot form.

    ``example.com`` matches example.com and any subdomain; ``.example.com``
    matches subdomains only (OpenSSL and most relying parties agree).
    """
    name = name.lower().rstrip(".")
    constraint = constraint.lower().rstrip(".")
    if not constraint:
        return True  # an empty dNSName constraint matches everything
    if constraint.startswith("."):
        return name.endswith(constraint)
    return name == constraint or name.endswith(f".{constraint}")


def _wildcard_may_cover(name: str, constraint: str) -> bool:
    """True when a wildcard SAN could match a host inside an *excluded* subtree.

    ``*.example.com`` covers ``bad.example.com`` although the literal name
    does not end with it; being conservative here keeps excluded subtrees
    excluded for relying parties that expand wildcards.
    """
    if not name.startswith("*.") or constraint.startswith("."):
        return False
    base = name[2:]
    parent = constraint.partition(".")[2]
    return parent == base


def _email_matches(address: str, constraint: str) -> bool:
    """RFC 5280 4.2.1.10 rfc822Name matching.

    ``user@host`` is one mailbox, ``host`` every mailbox at exactly that host,
    ``.host`` every mailbox at any subdomain of host.
    """
    local, _, domain = address.rpartition("@")
    domain = domain.lower()
    if "@" in constraint:
        c_local, _, c_domain = constraint.rpartition("@")
        return local == c_local and domain == c_domain.lower()
    constraint = constraint.lower()
    if constraint.startswith("."):
        return domain.endswith(constraint)
    return domain == constraint


def _ip_matches(address: object, network: object) -> bool:
    if not isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return False
    if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return False
    return address.version == network.version and address in network


def _matches(name: x509.GeneralName, subtree: x509.GeneralName, *, excluded: bool) -> bool:
    """Whether ``name`` falls inside ``subtree`` (same name form only)."""
    if isinstance(name, x509.DNSName) and isinstance(subtree, x509.DNSName):
        if _dns_matches(name.value, subtree.value):
            return True
        return excluded and _wildcard_may_cover(name.value.lower(), subtree.value.lower())
    if isinstance(name, x509.RFC822Name) and isinstance(subtree, x509.RFC822Name):
        return _email_matches(name.value, subtree.value)
    if isinstance(name, x509.IPAddress) and isinstance(subtree, x509.IPAddress):
        return _ip_matches(name.value, subtree.value)
    return False


def check_general_subtrees(
    permitted: Sequence[x509.GeneralName] | None,
    excluded: Sequence[x509.GeneralName] | None,
    sans: Iterable[x509.GeneralName],
) -> None:
    """Apply permitted/excluded subtrees to SANs with RFC 5280 4.2.1.10 semantics.

    A name must not fall in any excluded subtree. If permitted subtrees of the
    name's own form exist, it must fall in one of them; name forms with no
    permitted subtree are unconstrained (exactly as a relying party would
    evaluate the extension). Raises :class:`PolicyError` code ``name_constraints``.
    """
    permitted = list(permitted or ())
    excluded = list(excluded or ())
    for name in sans:
        if any(_matches(name, subtree, excluded=True) for subtree in excluded):
            raise PolicyError(f"{name.value} is excluded by the issuer's name constraints", code="name_constraints")
        same_form = [subtree for subtree in permitted if type(subtree) is type(name)]
        if same_form and not any(_matches(name, subtree, excluded=False) for subtree in same_form):
            raise PolicyError(
                f"{name.value} is not permitted by the issuer's name constraints", code="name_constraints"
            )


def check_name_constraints(
    permitted: list[str] | None,
    excluded: list[str] | None,
    sans: Iterable[x509.GeneralName],
) -> None:
    """Check SANs against constraint strings (see :class:`NameConstraintSpec`)."""
    check_general_subtrees(
        constraint_general_names(permitted or ()),
        constraint_general_names(excluded or ()),
        sans,
    )


def check_issuer_name_constraints(issuer_cert: x509.Certificate, sans: Iterable[x509.GeneralName]) -> None:
    """Enforce the nameConstraints extension of ``issuer_cert`` (if any) on ``sans``."""
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return
    check_general_subtrees(constraints.permitted_subtrees, constraints.excluded_subtrees, sans)
