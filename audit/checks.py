"""System checks for what keeps the chain linear."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register("database")
def check_sqlite_transaction_mode(app_configs=None, **kwargs) -> list[CheckMessage]:
    """On SQLite, appends are serialized by BEGIN IMMEDIATE; without it concurrent writers fail.

    (They fail loudly on the unique `seq`, or with "database is locked"; they never fork the
    chain, but audited operations would error under load.)
    """
    return sqlite_transaction_mode_problems(settings.DATABASES.get("default", {}))


def sqlite_transaction_mode_problems(database: dict) -> list[CheckMessage]:
    if database.get("ENGINE") != "django.db.backends.sqlite3":
        return []
    if database.get("OPTIONS", {}).get("transaction_mode") == "IMMEDIATE":
        return []
    return [Warning(
        "SQLite is not configured with transaction_mode IMMEDIATE.",
        hint="Audit appends rely on BEGIN IMMEDIATE to serialize writers; see pki_project.settings._database_config.",
        id="audit.W001",
    )]
