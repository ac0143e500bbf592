from django.core.management.base import BaseCommand

from certificates.management.commands.issue_certificate import read_csr
from certificates.selectors import get_ca, get_certificate
from certificates.services.issuance import renew_certificate
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit, service_errors_as_command_errors


class Command(BaseCommand):
    help = "Renew a certificate: same subject, SANs and profile; a new serial and validity."

    def add_arguments(self, parser) -> None:
        parser.add_argument("certificate", metavar="CERT", help="certificate id or hex serial")
        parser.add_argument("--ca", help="the issuing CA, when a serial alone is ambiguous")
        parser.add_argument("--csr", metavar="FILE", help="a new CSR (CSR-based certificates; default: same key)")
        parser.add_argument("--days", type=int)
        parser.add_argument("--revoke-old", action="store_true", help="revoke the old certificate as superseded")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        with service_errors_as_command_errors():
            ca = get_ca(options["ca"]) if options["ca"] else None
            old = get_certificate(options["certificate"], ca=ca)
            new = renew_certificate(old, actor=Actor.operator("renew_certificate"),
                                    csr=read_csr(options["csr"]) if options["csr"] else None,
                                    days=options["days"], revoke_predecessor=options["revoke_old"])
        emit(self, options, {"id": new.pk, "serial": new.serial, "predecessor": old.serial},
             f"Renewed {old.serial} as {new.serial} (id {new.pk}) until {new.not_after:%Y-%m-%d}.")
