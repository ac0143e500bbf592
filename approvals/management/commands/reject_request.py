from django.core.management.base import BaseCommand

from approvals.services import get_visible_approval, reject
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit, service_errors_as_command_errors


class Command(BaseCommand):
    help = "Reject a pending certificate request with a reason (nothing is issued)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id", metavar="ID", help="the request's id")
        parser.add_argument("--reason", required=True, help="why (recorded in the request and the audit trail)")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = Actor.operator("reject_request")
        with service_errors_as_command_errors():
            rejected = reject(get_visible_approval(actor, options["request_id"]), actor=actor,
                              reason=options["reason"])
        emit(self, options, {"id": rejected.pk, "status": rejected.status, "reason": rejected.reason},
             f"Rejected request {rejected.pk}.")
