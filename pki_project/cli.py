"""Shared plumbing for `manage.py` commands: passwords, `--json` output, clean errors.

Passwords come from `--password-file`, `--password-env`, or an interactive prompt;
never from a plain argument (it would land in shell history and `ps`).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

MAX_PASSWORD_FILE_BYTES = 4096


def add_password_arguments(parser: ArgumentParser, what: str = "root password") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-file", metavar="FILE", help=f"read the {what} from FILE (first line)")
    group.add_argument("--password-env", metavar="VAR", help=f"read the {what} from environment variable VAR")


def add_key_backend_arguments(parser: ArgumentParser) -> None:
    """Where a new CA key is made: the file vault (default) or a PKCS#11 token, and the token's PIN."""
    parser.add_argument("--key-backend", choices=["vault", "pkcs11"], default="vault",
                        help="where the CA's key is made and kept (default: the encrypted file vault)")
    parser.add_argument("--token-label", default=None, metavar="LABEL", help="the PKCS#11 token (--key-backend pkcs11)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--pin-file", metavar="FILE", help="read a token-held root's user PIN from FILE (first line)")
    group.add_argument("--pin-env", metavar="VAR", help="read a token-held root's user PIN from variable VAR")


def read_root_secret(options: dict[str, Any], *, token: bool, confirm: bool = False) -> str:
    """The secret that opens a root: its root password, or for a token-held root the token's user PIN
    (`--pin-file`/`--pin-env`, else `--password-file`/`--password-env`, else a prompt)."""
    if token and (options.get("pin_file") or options.get("pin_env")):
        return read_password({"password_file": options.get("pin_file"), "password_env": options.get("pin_env")},
                             what="token user PIN")
    return read_password(options, what="token user PIN" if token else "root password", confirm=confirm and not token)


def add_json_argument(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def _password_from_file(path: str) -> str:
    try:
        data = Path(path).read_bytes()[: MAX_PASSWORD_FILE_BYTES + 1]
    except OSError:
        raise CommandError(f"Cannot read the password file {path}.") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise CommandError("The password file is too large.")
    return data.decode("utf-8", errors="strict").splitlines()[0] if data.strip() else ""


def _password_from_prompt(what: str, confirm: bool) -> str:
    if not sys.stdin.isatty():
        raise CommandError(f"No {what} given: use --password-file FILE or --password-env VAR (no terminal to ask on).")
    password = getpass.getpass(f"{what.capitalize()}: ")
    if confirm and getpass.getpass(f"{what.capitalize()} (again): ") != password:
        raise CommandError("The two entries differ.")
    return password


def read_password(options: dict[str, Any], what: str = "root password", confirm: bool = False) -> str:
    """The password from the chosen source; the value is never echoed or logged."""
    if options.get("password_file"):
        password = _password_from_file(options["password_file"])
    elif options.get("password_env"):
        name = options["password_env"]
        if name not in os.environ:
            raise CommandError(f"The environment variable {name} is not set.")
        password = os.environ[name]
    else:
        password = _password_from_prompt(what, confirm)
    if not password:
        raise CommandError(f"The {what} is empty.")
    return password


def emit(command: BaseCommand, options: dict[str, Any], payload: dict[str, Any], text: str) -> None:
    """`--json`: exactly one JSON object on stdout; otherwise a readable line."""
    if options.get("json"):
        command.stdout.write(json.dumps(payload, sort_keys=True, default=str))
    else:
        command.stdout.write(text)


@contextmanager
def service_errors_as_command_errors() -> Iterator[None]:
    """A refused operation ends the command with its clear message and exit status 1, not a traceback."""
    from certificates.errors import ServiceError
    from organizations.services import OrganizationError

    try:
        yield
    except (ServiceError, OrganizationError) as error:
        raise CommandError(str(error)) from None
