from pathlib import Path

from django.core.management.base import CommandError

from approvals.models import IssuanceApproval
from approvals.services import submit_issuance
from certificates.crypto.csr import MAX_CSR_SIZE
from certificates.crypto.keys import KeyType
from certificates.selectors import get_ca
from certificates.services.artifacts import certificate_pem, chain_pem, download_certificate, reveal_pkcs12_password
from certificates.services.issuance import IssuanceRequest
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, iso_utc, read_input, service_errors_as_command_errors


def read_csr(path: str) -> bytes:
    """The CSR from FILE, or from standard input for `-` (the service refuses an oversized one clearly)."""
    return read_input(path, MAX_CSR_SIZE, "CSR file")


def certificate_payload(certificate, written: dict[str, str]) -> dict:
    """What `--json` prints for a certificate just issued or renewed: its PEM and chain included."""
    return {"id": certificate.pk, "serial": certificate.serial, "common_name": certificate.common_name,
            "not_before": certificate.not_before, "not_after": certificate.not_after,
            "fingerprint_sha256": certificate.fingerprint_sha256, "profile": certificate.profile,
            "predecessor": certificate.predecessor.serial if certificate.predecessor_id else None,
            "certificate_pem": certificate_pem(certificate).decode(), "chain_pem": chain_pem(certificate).decode(),
            **written}


def write_certificate_files(certificate, directory: str, actor: Actor) -> dict[str, str]:
    """The certificate, its chain (and the PKCS#12 of a key generated here) in DIR; their paths."""
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


def describe(verb: str, certificate, written: dict[str, str]) -> str:
    lines = [f"{verb} certificate {certificate.serial} (id {certificate.pk}) until {iso_utc(certificate.not_after)}."]
    lines += [f"  {key}: {value}" for key, value in written.items()]
    return "\n".join(lines)


class Command(JsonCommand):
    help = "Issue a certificate from a CSR, or with a key generated here (then sealed in a PKCS#12)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ca", required=True, help="issuing CA: slug or id")
        parser.add_argument("--profile", required=True, metavar="NAME",
                            help="server, client, server-client, email, or a custom profile (list_profiles)")
        parser.add_argument("--csr", metavar="FILE", help="PEM or DER certificate signing request (- for stdin)")
        parser.add_argument("--common-name", metavar="CN")
        parser.add_argument("--san", action="append", default=[], metavar="TYPE:VALUE",
                            help="DNS:name, IP:address or EMAIL:address (repeatable)")
        parser.add_argument("--key-type", choices=[k.value for k in KeyType],
                            help="for a key generated on the server (default ec-p256)")
        validity = parser.add_mutually_exclusive_group()
        validity.add_argument("--days", type=int)
        validity.add_argument("--hours", type=int, help="the validity in hours (short-lived certificates)")
        parser.add_argument("--out", metavar="DIR", help="write the certificate, chain (and PKCS#12) into DIR")
        add_json_argument(parser, "with the certificate's PEM and chain")

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
            written = write_certificate_files(certificate, options["out"], actor) if options["out"] else {}
        emit(self, options, certificate_payload(certificate, written), describe("Issued", certificate, written))

    def _pending(self, approval: IssuanceApproval, options: dict) -> None:
        """The profile or CA requires approval: nothing is issued until a member approves request `id`."""
        payload = {"id": approval.pk, "status": approval.status, "approval": approval.pk,
                   "expires_at": approval.expires_at}
        emit(self, options, payload,
             f"Request {approval.pk} is pending approval until {iso_utc(approval.expires_at)}: an admin "
             "or manager of the organization approves it (page /approvals, API POST /api/v1/approvals/"
             f"{approval.pk}/approve/); nothing was issued yet.")
