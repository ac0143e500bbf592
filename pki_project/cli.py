"""Shared plumbing for `manage.py` commands: passwords, `--json` output, clean errors, dates.

Passwords come from `--password-file` (`-`: the first line of standard input), `--password-env`,
or an interactive prompt; never from a plain argument (it would land in shell history and `ps`).

Commands that take `--json` derive from `JsonCommand`: with `--json` (or `--format json|jsonl`)
every failure, a usage error included, prints exactly one JSON object
`{"error": {"code", "message"}}` on stdout and exits non-zero. Every date and time a command
prints is ISO 8601 in UTC with a `Z` (`iso_utc`), in JSON and in text alike.
"""

from __future__ import annotations

import getpass
import itertools
import json
import os
import sys
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, handle_default_options
from django.db import connections

from kernel.errors import ServiceError

MAX_PASSWORD_FILE_BYTES = 4096


def add_password_arguments(parser: ArgumentParser, what: str = "root password") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-file", metavar="FILE",
                       help=f"read the {what} from FILE (first line; - for standard input)")
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


def add_json_argument(parser: ArgumentParser, what: str = "") -> None:
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object on stdout" + (f" ({what})" if what else "")
                        + "; a failure is one {\"error\": {\"code\", \"message\"}} object, exit status non-zero")


def read_input(path: str, limit: int, what: str) -> bytes:
    """At most `limit` + 1 bytes of FILE, or of standard input for `-` (the caller refuses the excess)."""
    if path == "-":
        return sys.stdin.buffer.read(limit + 1)
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError:
        raise CommandError(f"Cannot read the {what} {path}.") from None


def _password_from_file(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.readline(MAX_PASSWORD_FILE_BYTES + 1)
        if len(data) > MAX_PASSWORD_FILE_BYTES:
            raise CommandError("The password on standard input is too long.")
        return data.decode("utf-8", errors="strict").rstrip("\r\n")
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


def iso_utc(value: datetime | None) -> str | None:
    """The one date format of the commands: ISO 8601 in UTC to the second, `2026-12-04T01:17:38Z`."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def json_default(value: object) -> object:
    """`json.dumps(default=...)`: datetimes as `iso_utc`, anything else as its text."""
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value)


def to_json(payload: object) -> str:
    return json.dumps(payload, sort_keys=True, default=json_default)


def emit(command: BaseCommand, options: dict[str, Any], payload: dict[str, Any], text: str) -> None:
    """`--json`: exactly one JSON object on stdout; otherwise a readable line."""
    if options.get("json"):
        command.stdout.write(to_json(payload))
    else:
        command.stdout.write(text)


def command_failed(message: str, *, code: str = "failed", details: dict[str, Any] | None = None,
                   returncode: int = 1) -> CommandError:
    """A CommandError (printed as such) with a machine-readable code and, under --json, extra fields."""
    error = CommandError(message, returncode=returncode)
    error.code = code
    error.details = details or {}
    return error


def error_object(error: CommandError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": getattr(error, "code", None) or "failed", "message": str(error)}
    details = getattr(error, "details", None)
    if details:
        body["details"] = details
    return {"error": body}


def _wants_json(argv: list[str]) -> bool:
    if "--json" in argv or "--format=json" in argv or "--format=jsonl" in argv:
        return True
    return any(flag == "--format" and value in ("json", "jsonl") for flag, value in itertools.pairwise(argv))


class JsonCommand(BaseCommand):
    """A command whose failures under `--json` are one JSON error object on stdout (exit status non-zero)."""

    def run_from_argv(self, argv: list[str]) -> None:
        if not _wants_json(argv[2:]):
            super().run_from_argv(argv)
            return
        self._called_from_command_line = True
        try:
            parser = self.create_parser(argv[0], argv[1])
            parser.called_from_command_line = False  # a usage error raises CommandError instead of exiting
            try:
                options = parser.parse_args(argv[2:])
            except CommandError as error:
                raise command_failed(str(error).removeprefix("Error: "), code="usage", returncode=2) from None
            cmd_options = vars(options)
            args = cmd_options.pop("args", ())
            handle_default_options(options)
            self.execute(*args, **cmd_options)
        except CommandError as error:
            sys.stdout.write(to_json(error_object(error)) + "\n")
            sys.stdout.flush()
            sys.exit(error.returncode or 1)
        finally:
            connections.close_all()


@contextmanager
def service_errors_as_command_errors() -> Iterator[None]:
    """A refused operation (any `ServiceError`: certificates, identity, backups...) ends the command with its
    clear message and exit status 1, not a traceback (under --json: one error object with its code)."""
    try:
        yield
    except ServiceError as error:
        raise command_failed(error.message, code=error.code) from None
