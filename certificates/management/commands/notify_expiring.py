from django.core.management.base import CommandError

from certificates.services.notifications import describe_target, notify_expiring, pending_preview
from pki_project.cli import JsonCommand, add_json_argument, emit


class Command(JsonCommand):
    help = ("Send the expiry notices that are due (e-mail and signed webhooks, on each target's bands) and retry "
            "failed ones whose time has come. Run it from cron, e.g. hourly. Exits 1 when a delivery failed.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list the notices a run would owe; send nothing")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["dry_run"]:
            self._preview(options)
            return
        progress = None if options["json"] else self.stdout.write
        summary = notify_expiring(progress=progress)
        text = (f"{summary.queued} newly owed, {summary.sent} sent, {summary.retrying} failed and will be retried, "
                f"{summary.gave_up} given up.")
        emit(self, options, summary.as_dict(), text)
        if summary.retrying or summary.gave_up:
            raise CommandError(f"{summary.retrying + summary.gave_up} notice(s) could not be delivered: "
                               + "; ".join(summary.failures[:5]))

    def _preview(self, options) -> None:
        owed = pending_preview()
        rows = [{"target": describe_target(target), "certificate": certificate.pk, "serial": certificate.serial,
                 "common_name": certificate.common_name, "band_days": band} for target, certificate, band in owed]
        lines = [f"{row['band_days']:>4}-day notice to {row['target']}: certificate {row['certificate']} "
                 f"{row['common_name'] or row['serial']}" for row in rows]
        emit(self, options, {"owed": rows}, "\n".join([*lines, f"{len(rows)} notice(s) would be owed (dry run)."]))
