"""Command-line options of `create_profile` and `update_profile`: one flag per profile field.

List fields take comma-separated values (`--eku serverAuth,clientAuth`); an empty value
(`--dns-suffixes ""`) clears the list. Booleans come in pairs (`--must-staple` / `--no-must-staple`).
Only the options given are passed on, so `update_profile` changes just those fields.
"""

from __future__ import annotations

from argparse import ArgumentParser, BooleanOptionalAction
from typing import Any

from certificates.models import CertificateProfile

#: option -> (field, help)
LIST_OPTIONS = {
    "--eku": ("extended_key_usages", "extended key usages: serverAuth, clientAuth, emailProtection, codeSigning, "
                                     "timeStamping"),
    "--key-usage": ("key_usage", "key usage flags for every key: digital_signature, key_encipherment, ..."),
    "--rsa-key-usage": ("rsa_key_usage", "key usage flags added for RSA keys"),
    "--ec-key-usage": ("ec_key_usage", "key usage flags added for EC keys"),
    "--key-types": ("allowed_key_types", "allowed key types (ec-p256, rsa-2048, ed25519, ...; empty: all)"),
    "--san-types": ("allowed_san_types", "allowed SAN types: dns, ip, email"),
    "--required-san-types": ("required_san_types", "SAN types every certificate must carry"),
    "--dns-suffixes": ("allowed_dns_suffixes", "DNS names only under these domains (empty: any)"),
    "--ip-networks": ("allowed_ip_networks", "IP addresses only in these networks, e.g. 10.0.0.0/8 (empty: any)"),
    "--policy-oids": ("policy_oids", "private certificate policy OIDs (empty: PKI_POLICY_OID)"),
}
BOOLEAN_OPTIONS = {
    "--enabled": ("enabled", "issuance may use the profile"),
    "--requires-san": ("requires_san", "at least one SAN"),
    "--allow-wildcard": ("allow_wildcard", "wildcard DNS names"),
    "--common-name-in-san": ("common_name_in_san", "the common name must repeat a SAN (BR 7.1.4.3)"),
    "--cabf-policy": ("cabf_policy", "also assert the CA/B Forum reserved policy OID"),
    "--must-staple": ("must_staple", "RFC 7633 TLS Feature status_request (OCSP Must-Staple)"),
    "--crl-distribution-point": ("crl_distribution_point", "write the CRL distribution point"),
    "--ocsp-url": ("ocsp_url", "write the AIA OCSP URL"),
    "--requires-approval": ("requires_approval", "requests wait until a second person approves them"),
}


def add_profile_field_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--description")
    parser.add_argument("--max-hours", type=int, dest="max_validity_hours", metavar="HOURS",
                        help="longest validity in hours (short-lived: e.g. 24)")
    parser.add_argument("--max-days", type=int, metavar="DAYS", help="longest validity in days (instead of hours)")
    for option, (field, help_text) in LIST_OPTIONS.items():
        parser.add_argument(option, dest=field, metavar="A,B", help=help_text)
    for option, (field, help_text) in BOOLEAN_OPTIONS.items():
        parser.add_argument(option, dest=field, action=BooleanOptionalAction, default=None, help=help_text)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def profile_values(options: dict[str, Any]) -> dict[str, Any]:
    """The fields the options name (None: not given), ready for the profile service."""
    values: dict[str, Any] = {}
    if options.get("description") is not None:
        values["description"] = options["description"]
    if options.get("max_validity_hours") is not None and options.get("max_days") is not None:
        from django.core.management.base import CommandError

        raise CommandError("Give --max-hours or --max-days, not both.")
    if options.get("max_validity_hours") is not None:
        values["max_validity_hours"] = options["max_validity_hours"]
    if options.get("max_days") is not None:
        values["max_validity_hours"] = options["max_days"] * 24
    for field, _help in LIST_OPTIONS.values():
        if options.get(field) is not None:
            values[field] = _split(options[field])
    for field, _help in BOOLEAN_OPTIONS.values():
        if options.get(field) is not None:
            values[field] = options[field]
    return values


def profile_as_dict(profile: CertificateProfile) -> dict[str, Any]:
    fields = ["name", "description", "is_builtin", "enabled", "max_validity_hours",
              *(field for field, _help in LIST_OPTIONS.values()), *(field for field, _help in BOOLEAN_OPTIONS.values())]
    row = {"id": profile.pk, **{field: getattr(profile, field) for field in dict.fromkeys(fields)}}
    row["organization"] = profile.organization.slug if profile.organization_id else None
    return row
