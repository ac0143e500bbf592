"""`pki_project.db.insert_new` writes exactly the row `save()` would (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict

from certificates.models import Certificate, CertificateKind, KeySource
from organizations.models import Organization
from pki_project.db import insert_new

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


def _certificate(organization: Organization, serial: str) -> Certificate:
    """An unsaved root-CA row with every kind of column: text, JSON, binary, datetimes, nulls."""
    return Certificate(
        organization=organization, issuer=None, kind=CertificateKind.ROOT_CA, profile="", serial=serial,
        common_name="Ünïcode Root", subject="CN=Ünïcode Root", sans=["DNS:a.example", "IP:192.0.2.1"],
        key_type="ec-p256", key_source=KeySource.SERVER, not_before=NOW, not_after=NOW + timedelta(days=30),
        fingerprint_sha256=serial.rjust(64, "0"), der=b"\x30\x82\x00\xff\x00", created_by="tests",
    )


def _stored(pk: int) -> dict:
    row = Certificate.objects.get(pk=pk)
    values = model_to_dict(row, exclude=["id", "serial", "fingerprint_sha256"])
    values["der"] = bytes(row.der)
    return values


def test_the_row_matches_what_save_writes() -> None:
    organization = Organization.objects.create(name="Insert Corp", slug="insert")
    by_save = _certificate(organization, "0a")
    by_save.save()
    by_insert = insert_new(_certificate(organization, "0b"))

    assert by_insert.pk is not None
    assert by_insert.pk != by_save.pk
    assert by_insert._state.adding is False
    assert by_insert._state.db == "default"
    assert _stored(by_insert.pk) == _stored(by_save.pk)
    assert Certificate.objects.get(pk=by_insert.pk).created_at is not None  # auto_now_add was applied


def test_primary_keys_follow_the_database_sequence() -> None:
    organization = Organization.objects.create(name="Sequence Corp", slug="sequence")
    first = insert_new(_certificate(organization, "01"))
    second = insert_new(_certificate(organization, "02"))
    assert second.pk > first.pk
    assert set(Certificate.objects.values_list("pk", flat=True)) == {first.pk, second.pk}


def test_the_primary_key_is_the_new_rows_own_through_either_cursor() -> None:
    """On SQLite it is the cursor's lastrowid (no RETURNING); on PostgreSQL the RETURNING value."""
    organization = Organization.objects.create(name="Key Corp", slug="key")
    native = insert_new(_certificate(organization, "1a"))  # nothing watches: the driver's cursor

    with connection.execute_wrapper(lambda execute, sql, params, many, context: execute(sql, params, many, context)):
        wrapped = insert_new(_certificate(organization, "1b"))  # a wrapper watches: Django's cursor
    assert Certificate.objects.get(pk=native.pk).serial == "1a"
    assert Certificate.objects.get(pk=wrapped.pk).serial == "1b"


def test_a_violated_constraint_raises_and_a_rolled_back_insert_leaves_nothing() -> None:
    organization = Organization.objects.create(name="Constraint Corp", slug="constraint")
    insert_new(_certificate(organization, "0c"))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_new(_certificate(organization, "0c"))  # the same fingerprint: unique
    with transaction.atomic():
        insert_new(_certificate(organization, "0d"))
        transaction.set_rollback(True)
    assert list(Certificate.objects.values_list("serial", flat=True)) == ["0c"]


def test_the_statement_is_counted_like_any_other_query() -> None:
    """It goes through Django's cursor, so query logging and execute wrappers still see it."""
    organization = Organization.objects.create(name="Logged Corp", slug="logged")
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        insert_new(_certificate(organization, "0e"))
    assert len(seen) == 1
    assert seen[0].startswith("INSERT INTO")


def test_each_value_is_converted_exactly_as_save_converts_it() -> None:
    """The str short-cut for text columns must agree with Django's get_db_prep_save everywhere."""
    from audit.models import AuditEvent
    from pki_project.db import _db_value, _params, _plan

    event = AuditEvent(seq=7, prev_hash="0" * 64, hash="f" * 64, created_at=NOW, action="certificate.issue",
                       outcome="success", actor_username="ädmin", organization_id=3, organization_slug="x",
                       target_serial="0a", details={"ca": "issuing", "n": [1, None]}, source_ip="2001:db8::1")
    organization = Organization.objects.create(name="Convert Corp", slug="convert")
    for instance in (_certificate(organization, "0f"), event):
        plan = _plan(type(instance), connection)
        params = _params(plan, instance, connection)  # the whole row at once: text read straight through
        for column, param in zip(plan.columns, params, strict=True):
            if column.attname == "created_at" and isinstance(instance, Certificate):
                continue  # auto_now_add: a new "now" on every pre_save
            expected = column.field.get_db_prep_save(column.field.pre_save(instance, True), connection)
            assert _comparable(_db_value(column, instance, connection)) == _comparable(expected), column.attname
            assert _comparable(param) == _comparable(expected), column.attname


SAMPLES = [None, "", "text", 0, 7, 2**40, NOW, NOW.replace(microsecond=0), NOW.replace(tzinfo=None),
           NOW.replace(year=5), NOW.replace(year=9999, microsecond=999999),
           NOW.astimezone(timezone(timedelta(hours=2))), {"a": [1, None]}, ["DNS:a.example"], b"\x30\x00", True]


def test_every_shortcut_returns_what_get_db_prep_save_returns() -> None:
    """Value by value and column by column, including None, naive datetimes and wrong types."""
    import warnings

    from audit.models import AuditEvent
    from pki_project.db import _db_value, _plan

    checked = 0
    for model in (Certificate, AuditEvent):
        for column in _plan(model, connection).columns:
            for value in SAMPLES:
                if not ((value is None and column.none_is_null) or type(value) in column.shortcut_types):
                    continue
                instance = model()
                setattr(instance, column.attname, value)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # naive datetimes: Django warns, both ways
                    expected = column.field.get_db_prep_save(value, connection)
                    actual = _db_value(column, instance, connection) if not column.has_pre_save else (
                        None if value is None else column.shortcut(value, connection))  # pre_save: the shortcut alone
                assert _comparable(actual) == _comparable(expected), (model.__name__, column.attname, value)
                checked += 1
    assert checked > 40  # the shortcuts cover text, keys, integers, datetimes, JSON and bytes


def test_shortcuts_are_chosen_for_the_hot_columns() -> None:
    from pki_project.db import _plan

    columns = {column.attname: column for column in _plan(Certificate, connection).columns}
    for attname in ("serial", "organization_id", "issuer_id", "not_before", "sans", "der"):
        assert columns[attname].shortcut is not None, attname


def _comparable(value: object) -> object:
    """The type as well as the value (psycopg's Int8 equals a plain int); Jsonb has no equality of its own."""
    if hasattr(value, "obj"):
        return type(value).__name__, value.obj
    if isinstance(value, memoryview):
        return "memoryview", bytes(value)
    return type(value).__name__, value


def test_new_row_builds_what_keyword_arguments_build() -> None:
    """Positional construction: the same attributes, defaults and related-object caches as Model(**values)."""
    from audit.models import AuditEvent
    from pki_project.db import new_row

    organization = Organization.objects.create(name="Row Corp", slug="row")
    predecessor = insert_new(_certificate(organization, "10"))
    values = {"organization": organization, "issuer": None, "kind": CertificateKind.ROOT_CA, "serial": "11",
              "predecessor": predecessor, "not_before": NOW, "not_after": NOW + timedelta(days=1), "der": b"\x30"}
    by_keywords, by_position = Certificate(**values), new_row(Certificate, **values)
    assert _attributes(by_position) == _attributes(by_keywords)
    assert by_position._state.fields_cache == by_keywords._state.fields_cache
    assert by_position._state.adding is True
    assert by_position.sans == []
    assert by_position.sans is not by_keywords.sans  # a fresh default each time
    assert predecessor.successor is by_position  # the one-to-one's reverse side, as the descriptor sets it

    event = {"seq": 1, "action": "x", "organization_id": organization.pk, "details": {"k": 1}, "created_at": NOW}
    assert _attributes(new_row(AuditEvent, **event)) == _attributes(AuditEvent(**event))
    with pytest.raises(TypeError, match="no field nonsense"):
        new_row(AuditEvent, nonsense=1)


def _attributes(instance) -> dict:
    return {key: value for key, value in vars(instance).items() if key != "_state"}


def test_fetch_one_answers_alike_through_the_driver_and_through_django() -> None:
    from django.test.utils import CaptureQueriesContext

    from pki_project.db import fetch_one

    organization = Organization.objects.create(name="Fetch Corp", slug="fetch")
    sql = "SELECT slug, name FROM organizations_organization WHERE id = %s AND name LIKE %s"
    direct = fetch_one(connection, sql, [organization.pk, "Fetch%"])  # nothing watches: the driver's cursor
    with CaptureQueriesContext(connection) as captured:
        logged = fetch_one(connection, sql, [organization.pk, "Fetch%"])
    assert direct == logged == ("fetch", "Fetch Corp")
    assert len(captured.captured_queries) == 1  # a logged connection still sees the statement


def test_fetch_one_refuses_to_run_in_a_broken_transaction() -> None:
    from django.db.transaction import TransactionManagementError

    from pki_project.db import fetch_one

    organization = Organization.objects.create(name="Broken Corp", slug="broken")
    with transaction.atomic():
        insert_new(_certificate(organization, "20"))
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            insert_new(_certificate(organization, "20"))  # no savepoint to return to: the transaction is broken
        with pytest.raises(TransactionManagementError):
            fetch_one(connection, "SELECT 1", [])
