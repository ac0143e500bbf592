from django.core.management.base import BaseCommand

from approvals.services import expire_due
from pki_project.cli import add_json_argument, emit


class Command(BaseCommand):
    help = ("Mark pending certificate requests past PKI_APPROVAL_TTL_HOURS as expired (audited). Reads do this "
            "too; run it from cron so that waiting ACME orders turn invalid without a read.")

    def add_arguments(self, parser) -> None:
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        count = expire_due()
        emit(self, options, {"expired": count}, f"{count} request(s) expired.")
