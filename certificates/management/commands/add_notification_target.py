from django.core.management.base import CommandError

from certificates.services.notifications import create_target, describe_target
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors


class Command(JsonCommand):
    help = ("Tell an organization's expiring certificates to an e-mail address or a webhook. A webhook's HMAC "
            "signing key is printed once: give it to the receiver, it is not shown again.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", required=True, metavar="SLUG")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--email", metavar="ADDRESS")
        where.add_argument("--webhook", metavar="URL", help="http(s) URL that receives a signed JSON POST")
        parser.add_argument("--bands", default="30,7,1", metavar="DAYS,…",
                            help="days before expiry to notify at (default 30,7,1)")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organization '{options['organization']}'.")
        kind, address = ("email", options["email"]) if options["email"] else ("webhook", options["webhook"])
        with service_errors_as_command_errors():
            created = create_target(organization, kind, address, options["bands"],
                                    actor=Actor.operator("add_notification_target"))
        target = created.target
        payload = {"id": target.pk, "organization": organization.slug, "kind": kind, "bands": target.bands,
                   "webhook_secret": created.webhook_secret}
        text = f"Target {target.pk}: {describe_target(target)} for {organization.slug}, bands {target.bands} days."
        if created.webhook_secret:
            text += (f"\nWebhook signing key (shown once): {created.webhook_secret}\n"
                     "Receivers check X-PKI-Signature = sha256=HMAC-SHA256(key, X-PKI-Timestamp + '.' + body).")
        emit(self, options, payload, text)
