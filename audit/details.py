"""Cleaning what goes into an event: JSON that round-trips exactly, and never a secret.

The hash is computed before the row is written and re-computed from what the
database gives back, so `details` must survive SQLite's JSON text and
PostgreSQL's jsonb unchanged. Floats do not (jsonb may respell `1e+20` as an
integer), so they are stored as text; so are dates, decimals, UUIDs and enums.
NUL characters are dropped because PostgreSQL text cannot hold them, and lone
surrogates (not valid UTF-8) are replaced.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath

from audit.canonical import format_timestamp

SECRET_KEY_NAMES = frozenset(
    {"password", "passphrase", "secret", "private_key", "privatekey", "token", "api_key", "apikey", "jwt", "key_pem"}
)
SECRET_KEY_SUFFIXES = ("_password", "_passphrase", "_secret", "_private_key", "_token", "_jwt")


class SecretInDetailsError(ValueError):
    """A details key names something that must never be written to the audit trail."""


def clean_text(value: object) -> str:
    """Text every backend stores and returns unchanged: no NUL, no lone surrogate (replaced by "?")."""
    text = str(value or "").replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def is_secret_key(name: str) -> bool:
    normalized = name.strip().lower().replace("-", "_").replace(" ", "_")
    return normalized in SECRET_KEY_NAMES or normalized.endswith(SECRET_KEY_SUFFIXES)


def clean_details(details: Mapping[str, object]) -> dict[str, object]:
    """A JSON-safe copy of `details`; refuses keys that look like secrets."""
    cleaned = _clean_value(details, "details")
    if not isinstance(cleaned, dict):
        raise TypeError("details must be a mapping")
    return cleaned


def _clean_value(value: object, path: str) -> object:
    kind = type(value)  # the usual exact types first: every issuance cleans its details
    if kind is str:
        return clean_text(value)
    if kind is dict:
        return _clean_mapping(value, path)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)  # an IntEnum becomes its plain value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, enum.Enum):
        return _clean_value(value.value, path)
    if isinstance(value, float | Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, dt.datetime):
        return format_timestamp(value) if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return _clean_mapping(value, path)
    if isinstance(value, list | tuple):
        return [_clean_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted((_clean_value(item, path) for item in value), key=repr)
    raise TypeError(f"{path}: {type(value).__name__} cannot be written to the audit trail")


def _clean_mapping(value: Mapping[object, object], path: str) -> dict[str, object]:
    cleaned: dict[str, object] = {}
    for key, item in value.items():
        name = clean_text(key.value if isinstance(key, enum.Enum) else key)
        if is_secret_key(name):
            raise SecretInDetailsError(f"{path}.{name}: secrets are never written to the audit trail")
        cleaned[name] = _clean_value(item, f"{path}.{name}")
    return cleaned
