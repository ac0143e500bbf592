from argparse import BooleanOptionalAction

from django.core.management.base import BaseCommand

from approvals.services import set_ca_requires_approval
from certificates.selectors import get_ca
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit, service_errors_as_command_errors


class Command(BaseCommand):
    help = "Make every certificate a CA issues wait for a second person's approval (or stop: --no-requires-approval)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("ca", metavar="CA", help="slug or id")
        parser.add_argument("--requires-approval", action=BooleanOptionalAction, required=True)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = Actor.operator("set_ca_approval")
        with service_errors_as_command_errors():
            ca = set_ca_requires_approval(get_ca(options["ca"]), options["requires_approval"], actor=actor)
        state = "requires" if ca.requires_approval else "no longer requires"
        emit(self, options, {"id": ca.pk, "slug": ca.slug, "requires_approval": ca.requires_approval},
             f"CA {ca.slug} {state} approval of what it issues.")
