from django.core.management.base import BaseCommand

from approvals.models import ApprovalStatus
from approvals.services import visible_approvals
from pki_project.actor import Actor


class Command(BaseCommand):
    help = "List certificate requests (default: the pending ones), newest first; expired ones are marked first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--status", choices=ApprovalStatus.values, default=ApprovalStatus.PENDING)

    def handle(self, *args, **options) -> None:
        rows = visible_approvals(Actor.operator("list_approvals")).filter(status=options["status"])
        for row in rows[:1000]:
            names = ", ".join(row.names[:3]) or row.common_name or "-"
            self.stdout.write(f"{row.pk}\t{row.status}\t{row.ca.slug}\t{row.profile}\t{names}\t"
                              f"by {row.requested_by}\texpires {row.expires_at:%Y-%m-%d %H:%M}")
