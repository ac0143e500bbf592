from django.core.management.base import BaseCommand

from certificates.demo import bootstrap_demo


class Command(BaseCommand):
    help = "Create the demo installation (organization, admin API key, CAs) where missing; safe to re-run."

    def handle(self, *args, **options) -> None:
        bootstrap_demo(say=self.stdout.write)
