from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.models import IssuanceApproval
from approvals.services import submit_issuance
from certificates.crypto.csr import MAX_CSR_SIZE
from certificates.crypto.keys import KeyType
from certificates.selectors import get_ca
from certificates.services.artifacts import certificate_pem, chain_pem, download_certificate, reveal_pkcs12_password
from certificates.services.issuance import IssuanceRequest
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit, service_errors_as_command_errors


def read_csr(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CSR_SIZE + 1)
    except OSError:
        raise CommandError(f"Cannot read the CSR file {path}.") from None
    return data  # the service refuses an oversized CSR with a clear message


class Command(BaseCommand):
    help = "Issue a certificate from a CSR, or with a key generated here (then sealed in a PKCS#12)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ca", required=True, help="issuing CA: slug or id")
        parser.add_argument("--profile", required=True, metavar="NAME",
                            help="server, client, server-client, email, or a custom profile (list_profiles)")
        parser.add_argument("--csr", metavar="FILE", help="PEM or DER certificate signing request")
        parser.add_argument("--common-name", metavar="CN")
        parser.add_argument("--san", action="append", default=[], metavar="TYPE:VALUE",
                            help="DNS:name, IP:address or EMAIL:address (repeatable)")
        parser.add_argument("--key-type", choices=[k.value for k in KeyType],
                            help="for a key generated on the server (default ec-p256)")
        validity = parser.add_mutually_exclusive_group()
        validity.add_argument("--days", type=int)
        validity.add_argument("--hours", type=int, help="the validity in hours (short-lived certificates)")
        parser.add_argument("--out", metavar="DIR", help="write the certificate, chain (and PKCS#12) into DIR")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["csr"] and (options["common_name"] or options["key_type"]):
            raise CommandError("Give either --csr, or --common-name/--san/--key-type for a key generated here.")
        actor = Actor.operator("issue_certificate")
        request = IssuanceRequest(
            profile=options["profile"], csr=read_csr(options["csr"]) if options["csr"] else None,
            common_name=options["common_name"], sans=tuple(options["san"]), key_type=options["key_type"],
            days=options["days"], hours=options["hours"],
        )
        with service_errors_as_command_errors():
            certificate = submit_issuance(get_ca(options["ca"]), request, actor=actor)
            if isinstance(certificate, IssuanceApproval):
                self._pending(certificate, options)
                return
            written = self._write_files(certificate, options["out"], actor) if options["out"] else {}
        payload = {"id": certificate.pk, "serial": certificate.serial, "not_after": certificate.not_after,
                   "fingerprint_sha256": certificate.fingerprint_sha256, **written}
        until = f"{certificate.not_after:%Y-%m-%d %H:%M} UTC"
        lines = [f"Issued certificate {certificate.serial} (id {certificate.pk}) until {until}."]
        lines += [f"  {key}: {value}" for key, value in written.items()]
        emit(self, options, payload, "\n".join(lines))

    def _pending(self, approval: IssuanceApproval, options: dict) -> None:
        """The profile or CA requires approval: nothing is issued until a member approves request `id`."""
        payload = {"id": approval.pk, "status": approval.status, "approval": approval.pk,
                   "expires_at": approval.expires_at}
        emit(self, options, payload,
             f"Request {approval.pk} is pending approval until {approval.expires_at:%Y-%m-%d %H:%M} UTC: an admin "
             "or manager of the organization approves it (page /approvals, API POST /api/v1/approvals/"
             f"{approval.pk}/approve/); nothing was issued yet.")

    def _write_files(self, certificate, directory: str, actor: Actor) -> dict[str, str]:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        stem = certificate.serial
        files = {"certificate": out / f"{stem}.pem", "chain": out / f"{stem}.chain.pem"}
        files["certificate"].write_bytes(certificate_pem(certificate))
        files["chain"].write_bytes(chain_pem(certificate))
        written = {name: str(path) for name, path in files.items()}
        if certificate.pkcs12_path:
            bundle = out / f"{stem}.p12"
            bundle.write_bytes(download_certificate(certificate, "p12", actor=actor).content)
            bundle.chmod(0o600)
            written["pkcs12"] = str(bundle)
            written["pkcs12_password"] = reveal_pkcs12_password(certificate, actor=actor)
        return written
