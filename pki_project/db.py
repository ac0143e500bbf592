"""Statements on the hot paths compiled once: one-row INSERTs and a few SELECTs.

`Model.save()` compiles its INSERT statement on every call: on the issuance hot path
that was about a third of a millisecond per row, more than signing a P-256
certificate. `insert_new` builds the statement once, from Django's own
field machinery, and after that only converts the values.

It is `save(force_insert=True)` without signals and without the model's `save()`
override, so it is for the services that own a model's invariants (the certificate
row of an issuance, the audit chain's append), not a general replacement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import (
    BinaryField,
    CharField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    JSONField,
    Model,
    QuerySet,
    TextField,
)
from django.db.models.fields import AutoFieldMixin
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

ModelT = TypeVar("ModelT", bound=Model)
T = TypeVar("T")

# A shortcut for Field.get_db_prep_save(value, connection) when the value has the usual type.
_Shortcut = Callable[[object, BaseDatabaseWrapper], object]


@dataclass(frozen=True)
class _Column:
    """How one field's value is read and converted, decided once per model."""

    field: Field
    attname: str
    has_pre_save: bool  # auto_now(_add) and the like: the value comes from field.pre_save
    none_is_null: bool  # get_db_prep_save(None) is None: skip the conversion chain
    shortcut_types: tuple[type, ...] = ()  # exact value types the shortcut takes (no subclasses)
    shortcut: _Shortcut | None = None
    passthrough: tuple[type, ...] = ()  # exact value types the whole chain returns unchanged (text's str)


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    columns: tuple[_Column, ...]
    returns_pk: bool


_PLANS: dict[tuple[type[Model], str], _InsertPlan] = {}


def insert_new(instance: Model, using: str = DEFAULT_DB_ALIAS) -> Model:
    """INSERT `instance` as a new row, set its primary key, and return it."""
    connection = connections[using]
    plan = _plan(type(instance), connection)
    params = _params(plan, instance, connection)
    if plan.returns_pk:
        primary_key = fetch_one(connection, plan.sql, params)[0]
    else:
        meta = instance._meta
        primary_key = _run(connection, plan.sql, params,
                           lambda cursor: connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column))
    instance.pk = primary_key
    instance._state.adding = False
    instance._state.db = using
    return instance


_ABSENT = object()  # a deferred attribute: `_db_value` reads it through the descriptor


def _params(plan: _InsertPlan, instance: Model, connection: BaseDatabaseWrapper) -> list[object]:
    """The statement's parameters: a text column's str as it is, every other value through `_db_value`.

    Most columns of a row are text that the conversion chain returns unchanged; reading them
    straight from the instance skips a call per column.
    """
    values = instance.__dict__
    return [value if type(value) in column.passthrough else _db_value(column, instance, connection)
            for column in plan.columns for value in (values.get(column.attname, _ABSENT),)]


def _db_value(column: _Column, instance: Model, connection: BaseDatabaseWrapper) -> object:
    """What save() would send: pre_save (auto_now_add), then get_db_prep_save, or its shortcut."""
    field = column.field
    value = field.pre_save(instance, True) if column.has_pre_save else getattr(instance, column.attname)
    if value is None and column.none_is_null:
        return None
    if type(value) in column.shortcut_types:
        return column.shortcut(value, connection)
    return field.get_db_prep_save(value, connection)


def fetch_one(connection: BaseDatabaseWrapper, sql: str, params: list[object]) -> tuple | None:
    """Run one statement and return its first row, through the driver's own cursor when nothing watches.

    Django's cursor wrapper adds query logging and execute wrappers, and on SQLite rewrites
    `%s` to `?` with a regular expression on every call; on the issuance hot path that is
    about 15 us a statement. When queries are logged (DEBUG, assertNumQueries) or
    a wrapper is installed, or the connection is not open yet, Django's cursor runs it as usual.
    Either way errors come out as Django's (IntegrityError...) and a broken transaction refuses.
    """
    return _run(connection, sql, params, _first_row)


def _first_row(cursor: object) -> tuple | None:
    return cursor.fetchone()


def _run(connection: BaseDatabaseWrapper, sql: str, params: list[object], read: Callable[[object], T]) -> T:
    """Execute `sql` and return `read(cursor)`: on the driver's cursor when nothing watches (see `fetch_one`)."""
    native_sql = _native_sql(connection, sql)
    if native_sql is None or connection.connection is None or connection.queries_logged \
            or connection.execute_wrappers:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(native_sql, params)
            return read(cursor)
        finally:
            cursor.close()


@contextmanager
def write_transaction(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """A short write transaction of a hot path: BEGIN … COMMIT on the driver's connection.

    Django's outermost `atomic()` turns autocommit off and on again, opens its cursor for
    `BEGIN IMMEDIATE`, commits through its wrappers and looks for on-commit hooks: on the
    issuance hot path that was about 0.3 ms, more than the statements it brackets.
    Here the driver runs `BEGIN` (with SQLite's configured transaction mode), the block's
    statements, and `COMMIT`, or `ROLLBACK` when the block raises; errors come out as
    Django's (IntegrityError...).

    The block may only run statements (`insert_new`, `fetch_one`, a cursor). Django does not
    know this transaction is open, so nothing inside may open an `atomic()` block (SQLite
    refuses a nested BEGIN and psycopg a change of autocommit, both loudly) or register
    `transaction.on_commit` (it would run at once). When Django already has a transaction
    open (an outer `atomic()`, a test case), queries are logged or wrapped, the connection
    is not open yet or awaits its health check, this is plain `transaction.atomic()`.
    """
    connection = connections[using]
    begin = _native_begin(connection)
    if begin is None:
        with transaction.atomic(using=using):
            yield
        return
    _native_execute(connection, begin)
    try:
        yield
        _native_execute(connection, "COMMIT")
    except BaseException:
        _rollback_or_close(connection)
        raise


def _native_begin(connection: BaseDatabaseWrapper) -> str | None:
    """The BEGIN statement for a native write transaction, or None when `transaction.atomic()` must do it."""
    if connection.connection is None or connection.in_atomic_block or not connection.get_autocommit() \
            or connection.queries_logged or connection.execute_wrappers \
            or (connection.health_check_enabled and not connection.health_check_done):
        return None
    if connection.vendor == "sqlite":
        mode = getattr(connection, "transaction_mode", None)
        return f"BEGIN {mode}" if mode else "BEGIN"
    if connection.vendor == "postgresql" and "isolation_level" not in connection.settings_dict["OPTIONS"]:
        return "BEGIN"  # the server's default, READ COMMITTED, which is also Django's
    return None


def _rollback_or_close(connection: BaseDatabaseWrapper) -> None:
    """Keep the block's own error: a ROLLBACK that fails too closes the connection (as atomic() does)."""
    try:
        _native_execute(connection, "ROLLBACK")
    except Exception:
        with suppress(Exception):
            connection.close()


def _native_execute(connection: BaseDatabaseWrapper, sql: str) -> None:
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()


_NATIVE_SQL: dict[tuple[str, str], str | None] = {}


def _native_sql(connection: BaseDatabaseWrapper, sql: str) -> str | None:
    """`sql` in the driver's own parameter style (what Django's cursor wrapper would send), None if unknown."""
    key = (connection.vendor, sql)
    if key not in _NATIVE_SQL:
        if connection.vendor == "sqlite":  # the conversion of Django's SQLiteCursorWrapper.convert_query
            _NATIVE_SQL[key] = FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")
        elif connection.vendor == "postgresql":  # psycopg takes the format style as Django writes it
            _NATIVE_SQL[key] = sql
        else:
            _NATIVE_SQL[key] = None
    return _NATIVE_SQL[key]


# --- Shortcuts: each is exactly what the stock Django method chain returns for that value type ---
#
# They apply only when the field's class uses Django's own methods (a subclass that overrides
# one takes the full chain); tests/foundation/test_insert_new.py compares every shortcut with
# get_db_prep_save on both engines.


def _uses_stock(kind: type, **methods: object) -> bool:
    return all(getattr(kind, name) is stock for name, stock in methods.items())


def _same_text(value: object, connection: BaseDatabaseWrapper) -> object:
    return value


def _same_primary_key(value: object, connection: BaseDatabaseWrapper) -> object:
    return connection.ops.validate_autopk_value(value)


def _json_shortcut(field: JSONField) -> _Shortcut:
    return lambda value, connection: connection.ops.adapt_json_value(value, field.encoder)


def _integer_shortcut(field: IntegerField) -> _Shortcut:
    internal_type = field.get_internal_type()
    return lambda value, connection: connection.ops.adapt_integerfield_value(value, internal_type)


def _datetime_shortcut(field: DateTimeField) -> _Shortcut:
    def adapt(value: datetime, connection: BaseDatabaseWrapper) -> object:
        if value.tzinfo is None:  # naive: Django's chain warns and makes it aware
            return field.get_db_prep_save(value, connection)
        if value.tzinfo is UTC and connection.vendor == "sqlite" and connection.timezone is UTC:
            # What SQLite's adapt_datetimefield_value returns once make_naive has nothing to shift:
            # str() of the naive value, which is str() of this one without its "+00:00".
            return str(value)[:-6]
        return connection.ops.adapt_datetimefield_value(value)

    return adapt


def _binary(value: object, connection: BaseDatabaseWrapper) -> object:
    return connection.Database.Binary(value)


def _is_plain_text(field: Field) -> bool:
    """CharField/TextField whose conversion chain is Django's own: the identity for a str."""
    return isinstance(field, CharField | TextField) and _uses_stock(
        type(field), get_db_prep_save=Field.get_db_prep_save, get_db_prep_value=Field.get_db_prep_value,
    ) and type(field).get_prep_value in (CharField.get_prep_value, TextField.get_prep_value) and type(
        field).to_python in (CharField.to_python, TextField.to_python)


def _shortcut_for(field: Field) -> tuple[tuple[type, ...], _Shortcut | None]:
    """The value types with a shortcut for `field`, and the shortcut; ((), None) when it has none."""
    kind = type(field)
    stock_save = kind.get_db_prep_save is Field.get_db_prep_save
    if _is_plain_text(field):
        return (str,), _same_text
    if isinstance(field, ForeignKey) and _uses_stock(kind, get_db_prep_save=ForeignKey.get_db_prep_save):
        target = type(field.target_field)
        if issubclass(target, AutoFieldMixin) and _uses_stock(
                target, get_db_prep_save=Field.get_db_prep_save,
                get_db_prep_value=AutoFieldMixin.get_db_prep_value, get_prep_value=IntegerField.get_prep_value):
            return (int,), _same_primary_key
        return (), None
    if isinstance(field, DateTimeField) and stock_save and _uses_stock(
            kind, get_db_prep_value=DateTimeField.get_db_prep_value, get_prep_value=DateTimeField.get_prep_value):
        return (datetime,), _datetime_shortcut(field)
    if isinstance(field, IntegerField) and not isinstance(field, AutoFieldMixin) and stock_save and _uses_stock(
            kind, get_db_prep_value=IntegerField.get_db_prep_value, get_prep_value=IntegerField.get_prep_value):
        return (int,), _integer_shortcut(field)
    if isinstance(field, JSONField) and _uses_stock(
            kind, get_db_prep_save=JSONField.get_db_prep_save, get_db_prep_value=JSONField.get_db_prep_value,
            get_prep_value=Field.get_prep_value):
        return (dict, list), _json_shortcut(field)
    if isinstance(field, BinaryField) and stock_save and _uses_stock(
            kind, get_db_prep_value=BinaryField.get_db_prep_value, get_prep_value=Field.get_prep_value):
        return (bytes,), _binary
    return (), None


def _column(field: Field) -> _Column:
    shortcut_types, shortcut = _shortcut_for(field)
    has_pre_save = type(field).pre_save is not Field.pre_save
    return _Column(field=field, attname=field.attname, has_pre_save=has_pre_save,
                   none_is_null=shortcut is not None, shortcut_types=shortcut_types, shortcut=shortcut,
                   passthrough=(str,) if shortcut is _same_text and not has_pre_save else ())


def _plan(model: type[Model], connection: BaseDatabaseWrapper) -> _InsertPlan:
    key = (model, connection.alias)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _build_plan(model, connection)
    return plan


def _build_plan(model: type[Model], connection: BaseDatabaseWrapper) -> _InsertPlan:
    """The statement `save()` would send for a new row whose primary key the database assigns."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields = tuple(field for field in meta.local_concrete_fields if field is not meta.auto_field)
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only quoted identifiers from the model's own metadata; every value is a parameter.
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    # SQLite gives the new rowid for free (cursor.lastrowid); its RETURNING clause cost about
    # 15 us more per INSERT on SQLite 3.40, so only other backends use RETURNING.
    returns_pk = meta.auto_field is not None and connection.features.can_return_columns_from_insert \
        and connection.vendor != "sqlite"
    if returns_pk:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return _InsertPlan(sql=sql, columns=tuple(_column(field) for field in fields), returns_pk=returns_pk)


# --- New instances through Model.__init__'s positional path -----------------------------------


@dataclass(frozen=True)
class _RowPlan:
    fields: tuple[tuple[str, Callable[[], object]], ...]  # (attname, default) of each concrete field, in order
    foreign_keys: dict[str, str]  # many-to-one relation name -> its attname
    one_to_ones: frozenset[str]  # set through the descriptor: it also fills the reverse side's cache


_ROW_PLANS: dict[type[Model], _RowPlan] = {}


def new_row(model: type[ModelT], **values: object) -> ModelT:
    """An unsaved instance equal to `model(**values)`, built through Model.__init__'s positional path.

    Keyword arguments make `__init__` match every field by name (about 18 us for a
    certificate row against 6 us by position). `values` are by field name, a relation
    given as its object or by its attname; missing fields take their defaults.
    """
    plan = _ROW_PLANS.get(model) or _ROW_PLANS.setdefault(model, _row_plan(model))
    related = {}
    for name, attname in plan.foreign_keys.items():
        if name in values:
            related[name] = target = values.pop(name)
            values[attname] = None if target is None else target.pk
    arguments = [values.pop(attname) if attname in values else default() for attname, default in plan.fields]
    if values:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    instance = model(*arguments)
    for name, target in related.items():
        if name in plan.one_to_ones and target is not None:
            setattr(instance, name, target)
        else:
            instance._state.fields_cache[name] = target  # what ForwardManyToOneDescriptor.__set__ caches
    return instance


def _row_plan(model: type[Model]) -> _RowPlan:
    fields = model._meta.concrete_fields
    relations = [field for field in fields if isinstance(field, ForeignKey)]
    return _RowPlan(
        fields=tuple((field.attname, field.get_default) for field in fields),
        foreign_keys={field.name: field.attname for field in relations},
        one_to_ones=frozenset(field.name for field in relations if field.one_to_one),
    )


# --- SELECTs compiled once ----------------------------------------------------------------------


@dataclass(frozen=True)
class _SelectPlan:
    sql: str
    # Per SQL parameter: (argument index, the type the backend wrapped it in), or (None, the constant).
    slots: tuple[tuple[int | None, object], ...]
    compiler: SQLCompiler
    converters: dict
    init_list: list[str]
    model_slice: slice
    related_populators: list


class PreparedSelect:
    """A queryset shape (select_related included) compiled once, then run with new values.

    Django compiles a queryset's SQL on each evaluation. For a select_related of a few
    dozen columns that costs several times the query itself: on the two queries every
    API issuance makes (the API-key lookup and the CA lookup), about 0.5 ms each.
    `build` receives one placeholder per argument type and returns the queryset; the
    placeholders are found among the compiled parameters and replaced by the values
    of each call. Rows become model instances as Django's ModelIterable makes them,
    with the compiler's own converters and related populators.

    Plans are per thread and database alias: a compiler holds its thread's connection.
    """

    def __init__(self, build: Callable[..., QuerySet], *argument_types: type) -> None:
        self._build = build
        self._placeholders = tuple(_placeholder(kind, index) for index, kind in enumerate(argument_types))
        self._plans = threading.local()

    def fetch(self, *values: object, using: str = DEFAULT_DB_ALIAS) -> list[Model]:
        plan = self._plan(using)
        params = [kind(values[index]) if index is not None else kind for index, kind in plan.slots]
        with connections[using].cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall()
        if plan.converters:
            rows = plan.compiler.apply_converters(rows, plan.converters)
        return [self._instance(plan, row, using) for row in rows]

    @staticmethod
    def _instance(plan: _SelectPlan, row, using: str) -> Model:
        model = plan.compiler.klass_info["model"]
        instance = model.from_db(using, plan.init_list, row[plan.model_slice])
        for populator in plan.related_populators:
            populator.populate(row, instance)
        return instance

    def _plan(self, using: str) -> _SelectPlan:
        plans = self._plans.__dict__
        if using not in plans:
            plans[using] = self._build_plan(using)
        return plans[using]

    def _build_plan(self, using: str) -> _SelectPlan:
        queryset = self._build(*self._placeholders)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        slots = tuple(_slot(value, self._placeholders) for value in params)
        found = sorted(index for index, _ in slots if index is not None)
        if found != list(range(len(self._placeholders))):
            raise ValueError("each placeholder must appear exactly once among the query's parameters")
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        model_slice = slice(fields[0], fields[-1] + 1)
        return _SelectPlan(
            sql=sql, slots=slots, compiler=compiler,
            converters=compiler.get_converters([column[0] for column in select[:compiler.col_count]]),
            init_list=[column[0].target.attname for column in select[model_slice]], model_slice=model_slice,
            related_populators=get_related_populators(klass_info, select, using),
        )


def _placeholder(kind: type, index: int) -> object:
    """A value of `kind` that no real query parameter will equal."""
    if kind is int:
        return -(2**62) + index
    if kind is str:
        return f"\x00prepared-select-{index}\x00"
    raise TypeError(f"unsupported placeholder type {kind!r}")


def _slot(value: object, placeholders: tuple[object, ...]) -> tuple[int | None, object]:
    """Which argument a compiled parameter is, and its type: psycopg's Int8 and the like are int subclasses."""
    for index, placeholder in enumerate(placeholders):
        if isinstance(value, type(placeholder)) and not isinstance(value, bool) and value == placeholder:
            return index, type(value)
    return None, value
