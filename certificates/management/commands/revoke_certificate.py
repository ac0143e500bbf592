from datetime import datetime

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from certificates.models import RevocationReason
from certificates.selectors import get_ca, get_certificate
from certificates.services.revocation import revoke_certificate
from pki_project.actor import Actor
from pki_project.cli import (
    JsonCommand,
    add_json_argument,
    add_password_arguments,
    emit,
    read_password,
    service_errors_as_command_errors,
)


def parse_invalidity_date(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = parse_datetime(text)
    if moment is None:
        raise CommandError(f"Cannot read the invalidity date '{text}': use ISO 8601, e.g. 2026-01-31T12:00:00Z.")
    return moment


class Command(JsonCommand):
    help = "Revoke a certificate (RFC 5280 reason). A CA certificate needs its root's password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("certificate", metavar="CERT", help="certificate id or hex serial")
        parser.add_argument("--reason", required=True, choices=RevocationReason.values)
        parser.add_argument("--invalidity-date", metavar="ISO", help="when the key is known to have been compromised")
        parser.add_argument("--ca", help="the issuing CA, when a serial alone is ambiguous")
        parser.add_argument("--revoke-children", action="store_true",
                            help="for a CA: revoke every valid certificate below it too")
        add_password_arguments(parser)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        invalidity_date = parse_invalidity_date(options["invalidity_date"])
        with service_errors_as_command_errors():
            ca = get_ca(options["ca"]) if options["ca"] else None
            certificate = get_certificate(options["certificate"], ca=ca)
            needs_password = certificate.kind in ("root_ca", "intermediate_ca")
            revoked = revoke_certificate(
                certificate, reason=options["reason"], invalidity_date=invalidity_date,
                root_password=read_password(options) if needs_password else None,
                revoke_children=options["revoke_children"], actor=Actor.operator("revoke_certificate"),
            )
        emit(self, options, {"id": certificate.pk, "serial": certificate.serial,
                             "revoked": [c.serial for c in revoked]},
             f"Revoked {certificate.serial} ({options['reason']})"
             + (f" and {len(revoked) - 1} certificate(s) below it." if len(revoked) > 1 else "."))
