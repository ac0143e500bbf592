from django.core.management.base import BaseCommand

from approvals.services import approve, get_visible_approval
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit, service_errors_as_command_errors


class Command(BaseCommand):
    help = ("Approve a pending certificate request as the operator: its certificate is issued now. A request "
            "made at the console (issue_certificate) needs a member's approval instead (two people).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id", metavar="ID", help="the request's id (issue_certificate prints it)")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = Actor.operator("approve_request")
        with service_errors_as_command_errors():
            approved = approve(get_visible_approval(actor, options["request_id"]), actor=actor)
        certificate = approved.certificate
        payload = {"id": approved.pk, "status": approved.status, "certificate": certificate.pk,
                   "serial": certificate.serial, "not_after": certificate.not_after}
        emit(self, options, payload, f"Approved request {approved.pk}: issued certificate {certificate.serial} "
                                     f"(id {certificate.pk}) until {certificate.not_after:%Y-%m-%d %H:%M} UTC.")
