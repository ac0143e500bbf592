
from organizations.management.commands._output import emit, fail
from organizations.models import ApiKey
from organizations.services import revoke_api_key
from pki_project.actor import Actor
from pki_project.cli import JsonCommand


class Command(JsonCommand):
    help = "Revoke an API key (by id or prefix); its sessions end on their next request."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key_id", metavar="KEY_ID", help="the key's id or its prefix")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        key_id = options["key_id"].strip()
        lookup = {"pk": int(key_id)} if key_id.isdigit() else {"prefix": key_id}
        api_key = ApiKey.objects.filter(**lookup).first()
        if api_key is None:
            raise fail(f"No API key with the id or prefix '{key_id}'.")
        changed = revoke_api_key(api_key, actor_label=Actor.operator("revoke_api_key").label)
        payload = {"id": api_key.pk, "prefix": api_key.prefix, "revoked": True, "already_revoked": not changed}
        emit(self, options, payload,
             f"Revoked API key {api_key.pk} (prefix {api_key.prefix})." if changed
             else f"API key {api_key.pk} (prefix {api_key.prefix}) was already revoked.")
