"""Test secrets and the assertions that they never leak into messages, reprs or logs."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Iterable

from certificates.vault.at_rest import derive_master_key

PASSPHRASE = "vault-test passphrase: correct horse battery staple"
SALT = "installation-salt-0123456789"
OTHER_PASSPHRASE = "another installation's passphrase, also long enough"
OTHER_SALT = b"other-salt-bytes-0123456789"
ROOT_PASSWORD = "Root password: tr0ub4dor&3 horse"
WRONG_PASSWORD = "Wrong password: not the one at all"


def _forms(secret: str | bytes) -> list[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [raw.hex(), raw.hex().upper(), repr(raw)[2:-1]]
    if isinstance(secret, str):
        forms.append(secret)
    return forms


@functools.cache
def _base_needles() -> tuple[str, ...]:
    secrets: list[str | bytes] = [
        PASSPHRASE,
        OTHER_PASSPHRASE,
        ROOT_PASSWORD,
        WRONG_PASSWORD,
        derive_master_key(PASSPHRASE, SALT),
        derive_master_key(OTHER_PASSPHRASE, OTHER_SALT),
    ]
    return tuple(form for secret in secrets for form in _forms(secret))


def secret_needles(extra: Iterable[str | bytes] = ()) -> list[str]:
    """Every spelling under which a known test secret could leak into text."""
    return [*_base_needles(), *(form for secret in extra for form in _forms(secret))]


def render(obj: object) -> str:
    """str + repr (+ args, attributes and the formatted traceback chain for exceptions)."""
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


def assert_no_secret_in_text(text: str, extra: Iterable[str | bytes] = ()) -> None:
    for needle in secret_needles(extra):
        assert needle not in text, "secret leaked into captured text"
