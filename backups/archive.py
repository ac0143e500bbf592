"""The backup archive format (version 1): a zip any engine can load, streamed with bounded memory.

Members, in the order they are written::

    db/<app_label>.<model_name>.jsonl   one JSON object per row, every table of every installed app
    db/snapshot.sqlite3                 only when the source ran on SQLite: the raw online-backup copy,
                                        so a restore can run PRAGMA integrity_check on it
    data/<relative path>                every encrypted artifact of PKI_DATA_DIR, byte for byte (still
                                        sealed: nothing is ever decrypted into an archive)
    manifest.json                       last, because it holds the SHA-256 of every other member

Why a logical dump: a SQLite file cannot be loaded into PostgreSQL nor a `pg_dump`
into SQLite, but rows encoded portably can (bytes as base64, datetimes as ISO 8601
UTC, JSON and decimals as text), so one format serves both engines and every OS.
Artifact paths are the vault's canonical relative POSIX paths, which are also the
associated data of their encryption, so they restore unchanged on any machine.

The manifest carries the format version, the application version, the source
engine, the applied migrations, per-table row counts and columns, the size and
SHA-256 of every member, and the public 8-byte key id of the encryption key (never
the key), so a restore can refuse a foreign archive before decrypting anything.

`django_session` is left out: sessions are short-lived credentials, not state.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import tomllib
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.db import models

FORMAT_NAME = "pki-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_PREFIX = "db/"
DATA_PREFIX = "data/"
SQLITE_SNAPSHOT = "db/snapshot.sqlite3"
TABLE_SUFFIX = ".jsonl"
# Volatile rows a restore must neither bring back nor wipe: sessions, and the rate-limit counters.
EXCLUDED_MODELS = frozenset({"sessions.session", "ratelimits.counter"})
CHUNK_SIZE = 1024 * 1024
ROW_CHUNK = 2000
FILE_MODE = 0o600


def _read_app_version() -> str:
    try:
        with (Path(settings.BASE_DIR) / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableSpec:
    """One table of the dump: its model, label (`app_label.model_name`) and columns (attnames)."""

    model: type[models.Model]

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table

    @property
    def member(self) -> str:
        return f"{DB_PREFIX}{self.label}{TABLE_SUFFIX}"

    @property
    def fields(self) -> list[models.Field]:
        return list(self.model._meta.concrete_fields)

    @property
    def columns(self) -> list[str]:
        return [field.attname for field in self.fields]


def backup_tables() -> list[TableSpec]:
    """Every managed concrete table of every installed app (m2m through tables included), parents first.

    Foreign keys are DEFERRABLE INITIALLY DEFERRED on both engines, so cycles
    (a certificate's issuer is a CA whose certificate is a certificate) load in one
    transaction; the order only keeps dumps readable and deletes/inserts tidy.
    """
    candidates = {
        model._meta.label_lower: model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and model._meta.label_lower not in EXCLUDED_MODELS
    }
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(label: str) -> None:
        if label in ordered or label in visiting:
            return
        visiting.add(label)
        for field in candidates[label]._meta.concrete_fields:
            target = field.related_model
            if target is not None and target._meta.label_lower in candidates:
                visit(target._meta.label_lower)
        visiting.discard(label)
        ordered.append(label)

    for label in sorted(candidates):
        visit(label)
    return [TableSpec(candidates[label]) for label in ordered]


# --------------------------------------------------------------------------- row codec


def encode_value(field: models.Field, value: Any) -> Any:
    """A database value as a portable JSON value (see the module docstring)."""
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "JSONField":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=field.encoder or json.JSONEncoder)
    if kind == "BinaryField":
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # USE_TZ is on; a naive value can only be UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, memoryview | bytes):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def decode_value(field: models.Field, value: Any) -> Any:
    """The inverse of `encode_value`; raises ValueError/TypeError on a value that does not fit."""
    if value is None:
        return None
    kind = field.get_internal_type()
    if kind == "JSONField":
        if not isinstance(value, str):
            raise TypeError("a JSON column must be encoded as text")
        return json.loads(value, cls=field.decoder or json.JSONDecoder)
    if kind == "BinaryField":
        if not isinstance(value, str):
            raise TypeError("a binary column must be base64 text")
        return base64.b64decode(value.encode("ascii"), validate=True)
    if kind == "DateTimeField":
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a timestamp must carry its UTC offset")
        return moment.astimezone(dt.UTC)
    if kind == "DateField":
        return dt.date.fromisoformat(value)
    if kind == "TimeField":
        return dt.time.fromisoformat(value)
    if kind == "DurationField":
        return dt.timedelta(microseconds=int(value))
    if kind == "DecimalField":
        return Decimal(value)
    if kind == "UUIDField":
        return uuid.UUID(value)
    return field.to_python(value)


def encode_row(spec_fields: list[models.Field], values: tuple[Any, ...]) -> bytes:
    row = {field.attname: encode_value(field, value) for field, value in zip(spec_fields, values, strict=True)}
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def decode_row(spec: TableSpec, line: bytes | str) -> list[Any]:
    """Values in `spec.columns` order; raises ValueError on a malformed line."""
    row = json.loads(line)
    if not isinstance(row, dict) or set(row) != set(spec.columns):
        raise ValueError("the row's columns do not match the table")
    return [decode_value(field, row[field.attname]) for field in spec.fields]


# --------------------------------------------------------------------------- writing


class HashingWriter:
    """Counts and hashes what passes through, so no member is ever held in memory to hash it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


@dataclass(frozen=True)
class MemberDigest:
    sha256: str
    size: int


class ArchiveWriter:
    """Writes members one at a time straight into the zip file (zip64, private file modes)."""

    def __init__(self, output: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6, allowZip64=True)
        self.members: dict[str, MemberDigest] = {}

    @contextmanager
    def member(self, name: str, *, compress: bool = True) -> Iterator[HashingWriter]:
        info = zipfile.ZipInfo(name, date_time=dt.datetime.now(dt.UTC).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = (0o100000 | FILE_MODE) << 16  # a regular file, 0600
        info.create_system = 3  # unix, so the mode bits above are meaningful
        with self._zip.open(info, "w", force_zip64=True) as raw:
            writer = HashingWriter(raw)
            yield writer
        self.members[name] = MemberDigest(writer.sha256.hexdigest(), writer.size)

    def copy_file(self, name: str, source: IO[bytes], *, compress: bool = True) -> MemberDigest:
        with self.member(name, compress=compress) as writer:
            while chunk := source.read(CHUNK_SIZE):
                writer.write(chunk)
        return self.members[name]

    def write_manifest(self, manifest: dict[str, Any], seal: Callable[[dict[str, Any]], str] | None = None) -> None:
        """Write the manifest last, with every member's digest; `seal` returns its MAC (`backups.integrity`)."""
        manifest = {**manifest, "members": {name: vars(d) for name, d in sorted(self.members.items())}}
        if seal is not None:
            manifest["mac"] = seal(manifest)
        data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        info = zipfile.ZipInfo(MANIFEST, date_time=dt.datetime.now(dt.UTC).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o100000 | FILE_MODE) << 16
        info.create_system = 3
        self._zip.writestr(info, data)

    def close(self) -> None:
        self._zip.close()


def write_table(writer: ArchiveWriter, spec: TableSpec, using: str,
                on_rows: Callable[[int], None] | None = None) -> int:
    """Stream one table, in primary-key order, as JSON Lines; return its row count."""
    fields = spec.fields
    queryset = models.QuerySet(model=spec.model, using=using).order_by("pk").values_list(*spec.columns)
    count = 0
    with writer.member(spec.member) as out:
        for values in queryset.iterator(chunk_size=ROW_CHUNK):
            out.write(encode_row(fields, values))
            count += 1
            if on_rows is not None and count % ROW_CHUNK == 0:
                on_rows(count)
    return count


APP_VERSION = _read_app_version()
