
from certificates.management.commands.issue_certificate import (
    certificate_payload,
    describe,
    read_csr,
    write_certificate_files,
)
from certificates.selectors import get_ca, get_certificate
from certificates.services.issuance import renew_certificate
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors


class Command(JsonCommand):
    help = "Renew a certificate: same subject, SANs and profile; a new serial and validity."

    def add_arguments(self, parser) -> None:
        parser.add_argument("certificate", metavar="CERT", help="certificate id or hex serial")
        parser.add_argument("--ca", help="the issuing CA, when a serial alone is ambiguous")
        parser.add_argument("--csr", metavar="FILE",
                            help="a new CSR (CSR-based certificates; default: same key; - for stdin)")
        validity = parser.add_mutually_exclusive_group()
        validity.add_argument("--days", type=int)
        validity.add_argument("--hours", type=int, help="the validity in hours (short-lived certificates)")
        parser.add_argument("--revoke-old", action="store_true", help="revoke the old certificate as superseded")
        parser.add_argument("--out", metavar="DIR", help="write the new certificate, chain (and PKCS#12) into DIR")
        add_json_argument(parser, "with the new certificate's PEM and chain")

    def handle(self, *args, **options) -> None:
        actor = Actor.operator("renew_certificate")
        with service_errors_as_command_errors():
            ca = get_ca(options["ca"]) if options["ca"] else None
            old = get_certificate(options["certificate"], ca=ca)
            new = renew_certificate(old, actor=actor, csr=read_csr(options["csr"]) if options["csr"] else None,
                                    days=options["days"], hours=options["hours"],
                                    revoke_predecessor=options["revoke_old"])
            written = write_certificate_files(new, options["out"], actor) if options["out"] else {}
        emit(self, options, certificate_payload(new, written), describe(f"Renewed {old.serial} as", new, written))
