"""manage.py revoke_acme_eab KEY_ID: an EAB credential binds no new ACME account from now on."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from acme_server.models import ExternalAccountKey
from acme_server.services.eab import revoke_eab_key
from certificates.errors import ServiceError
from organizations.management.commands._output import emit, fail
from pki_project.actor import Actor


class Command(BaseCommand):
    help = "Revoke an ACME external account key (by its key id or database id); a bound account stays."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key", help="the key id create_acme_eab printed, or the credential's id")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        reference = options["key"]
        credential = ExternalAccountKey.objects.filter(key_id=reference).first()
        if credential is None and reference.isdigit():
            credential = ExternalAccountKey.objects.filter(pk=int(reference)).first()
        if credential is None:
            raise fail(f"No ACME external account key '{reference[:64]}'.")
        try:
            revoked = revoke_eab_key(credential, actor=Actor.operator("revoke_acme_eab"))
        except ServiceError as error:
            raise fail(error.message) from None
        emit(self, options, {"id": revoked.pk, "key_id": revoked.key_id, "revoked_at": revoked.revoked_at.isoformat()},
             f"ACME external account key {revoked.key_id} revoked: it binds no new account.")
