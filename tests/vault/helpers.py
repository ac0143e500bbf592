"""Secret-leak assertions shared by the vault tests."""

from __future__ import annotations

import traceback
from collections.abc import Iterable

from certificates.vault.at_rest import derive_master_key

from .conftest import OTHER_PASSPHRASE, OTHER_SALT, PASSPHRASE, SALT

ROOT_PASSWORD = "Root password: tr0ub4dor&3 horse"
WRONG_PASSWORD = "Wrong password: not the one at all"


def _forms(secret: str | bytes) -> list[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [raw.hex(), raw.hex().upper(), repr(raw)[2:-1]]
    if isinstance(secret, str):
        forms.append(secret)
    return forms


def secret_needles(extra: Iterable[str | bytes] = ()) -> list[str]:
    """Every spelling under which a known test secret could leak into text."""
    secrets: list[str | bytes] = [
        PASSPHRASE,
        OTHER_PASSPHRASE,
        ROOT_PASSWORD,
        WRONG_PASSWORD,
        derive_master_key(PASSPHRASE, SALT),
        derive_master_key(OTHER_PASSPHRASE, OTHER_SALT),
        *extra,
    ]
    return [form for secret in secrets for form in _forms(secret)]


def render(obj: object) -> str:
    """str + repr (+ args and the full formatted traceback chain for exceptions)."""
    parts = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        parts.extend(repr(arg) for arg in obj.args)
        parts.append("".join(traceback.format_exception(obj)))
        parts.extend(repr(value) for value in vars(obj).values())
    return "\n".join(parts)


def assert_no_secret(*objects: object, extra: Iterable[str | bytes] = ()) -> None:
    needles = secret_needles(extra)
    for obj in objects:
        text = render(obj)
        for needle in needles:
            assert needle not in text, f"secret leaked into {type(obj).__name__}"
