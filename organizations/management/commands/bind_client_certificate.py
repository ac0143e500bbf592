from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from certificates.errors import Conflict, NotFound
from certificates.selectors import get_certificate
from organizations.client_certificates import bind_client_certificate, unbind_client_certificate
from organizations.management.commands._output import emit, fail
from organizations.models import ClientCertificateBinding
from organizations.services import IdentityError
from pki_project.actor import Actor


class Command(BaseCommand):
    help = ("Bind a certificate this PKI issued to the member who signs in with it through the TLS proxy "
            "(POST /auth/mtls); --remove unbinds it.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", help="the member's username (a member of the certificate's organization)")
        parser.add_argument("--certificate", required=True, metavar="CERT", help="the certificate's id or hex serial")
        parser.add_argument("--ca", help="the issuing CA's slug or id, where a serial alone is ambiguous")
        parser.add_argument("--remove", action="store_true", help="remove the certificate's binding instead")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        certificate = self._certificate(options["certificate"], options["ca"])
        actor = Actor.operator("bind_client_certificate")
        if options["remove"]:
            binding = ClientCertificateBinding.objects.select_related("user").filter(certificate=certificate).first()
            if binding is None:
                raise fail(f"Certificate {certificate.serial} is not bound.")
            binding_id, username = binding.pk, binding.user.get_username()
            unbind_client_certificate(binding, actor=actor)
            emit(self, options, {"id": binding_id, "certificate": certificate.pk, "serial": certificate.serial,
                                 "user": username, "removed": True},
                 f"Unbound certificate {certificate.serial} from {username}.")
            return
        if not options["user"]:
            raise fail("Name the member with --user (or pass --remove).")
        user = get_user_model().objects.filter(username=options["user"].strip()).first()
        if user is None:
            raise fail(f"No user '{options['user'].strip()}'.")
        try:
            binding = bind_client_certificate(user, certificate, actor=actor)
        except IdentityError as error:
            raise fail(str(error)) from None
        emit(self, options, {"id": binding.pk, "certificate": certificate.pk, "serial": certificate.serial,
                             "fingerprint_sha256": certificate.fingerprint_sha256, "user": user.get_username()},
             f"Bound certificate {certificate.serial} (id {certificate.pk}) to {user.get_username()}: "
             "they sign in with it at POST /auth/mtls.")

    @staticmethod
    def _certificate(reference: str, ca_reference: str | None):
        from certificates.selectors import get_ca

        try:
            ca = get_ca(ca_reference) if ca_reference else None
            return get_certificate(reference, ca=ca)
        except (NotFound, Conflict) as error:
            raise fail(str(error)) from None
