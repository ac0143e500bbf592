"""manage.py acme_cleanup: delete expired ACME nonces and expired orders/authorizations that never got a certificate.

Run it from cron (every hour is plenty); safe on several hosts at once.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from acme_server.services.cleanup import cleanup


class Command(BaseCommand):
    help = "Delete expired ACME nonces and expired pending/ready/invalid orders with their authorizations."

    def handle(self, *args, **options) -> None:
        def progress(what: str, count: int) -> None:
            if options["verbosity"] >= 1:
                self.stdout.write(f"{what}: {count} deleted so far")

        report = cleanup(progress)
        self.stdout.write(f"Deleted {report.nonces} expired nonce(s) and {report.orders} expired order(s).")
