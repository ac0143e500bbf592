"""Against a live gunicorn: a restore never un-revokes, and the audit trail cannot be rewritten unnoticed.

The insider is a global admin with the API and a downloaded backup, or someone with the database
itself (the triggers dropped, events deleted and re-hashed). What relying parties see is judged by
`openssl ocsp` and `openssl crl`; what the trail says by `manage.py verify_audit_log`.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.canonical import compute_hash
from tests.reliability.installations import installation_for
from tests.trust.live import ISSUING_CA, ROOT_CA, LivePKI, query

pytestmark = pytest.mark.slow
RESTORE = "/admin/restore/database"


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "pki-test-boundary-0d1e2f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(live: LivePKI, archive: bytes):
    body, content_type = multipart("backup", "backup.zip", archive)
    return live.request("POST", RESTORE, key="global-admin", body=body, headers={"Content-Type": content_type})


def confirm(live: LivePKI, preview: dict, **fields):
    return live.request("POST", RESTORE, key="global-admin", json_body={
        "pending": preview["pending"], "confirmation": preview["confirmation_phrase"], **fields})


def download_backup(live: LivePKI) -> bytes:
    response = live.request("GET", "/admin/backup/database", key="global-admin")
    assert response.status == 200, response.body
    return response.body


def openssl(*args: str | Path) -> str:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def ocsp_status(live: LivePKI, certificate_id: int) -> str:
    detail = live.request("GET", f"/api/v1/certificates/{certificate_id}/", key="manager").json()
    leaf, chain = live.directory / "leaf.pem", live.directory / "chain.pem"
    leaf.write_text(detail["certificate_pem"])
    chain.write_text(detail["chain_pem"])
    root = live.directory / "root.pem"
    root.write_bytes(live.request("GET", f"/pki/ca/{ROOT_CA}.pem").body)
    inter = live.directory / "inter.pem"
    inter.write_bytes(live.request("GET", f"/pki/ca/{ISSUING_CA}.pem").body)
    output = openssl("ocsp", "-issuer", inter, "-cert", leaf, "-url", f"{live.base}/pki/ocsp/{ISSUING_CA}/",
                     "-CAfile", root, "-verify_other", inter)
    assert "Response verify OK" in output, output
    return output


def crl_serials(live: LivePKI) -> str:
    path = live.directory / "latest.crl"
    texts = []
    for suffix in ("crl", "delta.crl"):  # the base and the delta that carries revocations since it
        path.write_bytes(live.request("GET", f"/pki/crl/{ISSUING_CA}.{suffix}").body)
        texts.append(openssl("crl", "-inform", "DER", "-in", path, "-noout", "-text").upper())
    return "\n".join(texts)


def test_restoring_an_older_backup_keeps_the_revocation_in_ocsp_and_the_next_crl(live: LivePKI):
    leaf = live.certificates["csr-leaf"]
    archive = download_backup(live)
    revoked = live.request("POST", f"/api/v1/certificates/{leaf['id']}/revoke/", key="manager",
                           json_body={"reason": "keyCompromise"})
    assert revoked.status == 200, revoked.body
    key_revoked = live.manage("revoke_api_key", str(live.key_ids["user"]))
    assert key_revoked.returncode == 0, key_revoked.stderr
    assert f"{live.directory / 'leaf.pem'}: revoked" in ocsp_status(live, leaf["id"])

    preview = upload(live, archive).json()
    assert preview["preview"]["revocations_carried"] == 1
    assert preview["preview"]["api_key_revocations_carried"] == 1
    assert preview["preview"]["audit_trail"] == "kept"
    restored = confirm(live, preview)
    assert restored.status == 200, restored.body

    output = ocsp_status(live, leaf["id"])
    assert f"{live.directory / 'leaf.pem'}: revoked" in output, output
    assert "Reason: keyCompromise" in output
    assert leaf["serial"].upper().lstrip("0") in crl_serials(live).replace(":", "")
    cas = live.request("GET", "/api/v1/cas/", key="manager").json()["results"]
    ca_id = next(ca["id"] for ca in cas if ca["slug"] == ISSUING_CA)
    fresh = live.request("POST", f"/api/v1/cas/{ca_id}/crl/", key="manager", json_body={})
    assert fresh.status in (200, 201), fresh.body  # the next CRL, signed after the restore, lists it too
    assert leaf["serial"].upper().lstrip("0") in crl_serials(live).replace(":", "")
    assert live.request("GET", "/api/v1/certificates/", key="user").status == 401, "the revoked key stays revoked"


def put_back(live: LivePKI, archive: bytes, path: Path) -> None:
    """Leave the installation as the other tests of the module expect it: the operator restores, overriding."""
    path.write_bytes(archive)
    result = live.manage("restore_database", str(path), "--yes", "--replace-audit-trail")
    assert result.returncode == 0, result.stderr


def test_a_backup_of_another_history_is_refused_and_the_override_is_recorded(live: LivePKI, tmp_path: Path):
    original = download_backup(live)
    engine = "sqlite" if live.installation.database_url.startswith("sqlite") else "postgres"
    with installation_for(engine, tmp_path / "elsewhere") as elsewhere:  # same secrets, another trail
        elsewhere.ok("create_organization", "--name", "Elsewhere Corp")
        foreign = tmp_path / "elsewhere.zip"
        elsewhere.ok("backup_database", "--output", str(foreign))
    before, head = live.fingerprint(), live.audit_head()

    preview = upload(live, foreign.read_bytes()).json()
    assert preview["preview"]["audit_trail"] == "diverged"
    refused = confirm(live, preview)

    assert refused.status == 409
    assert refused.error_code == "audit_trail_diverged"
    assert live.fingerprint().differences(before) == []
    assert [(event["action"], event["outcome"], event["details"]["code"]) for event in live.audit_events(head)] == [
        ("backup.restore", "failure", "audit_trail_diverged")]

    restored = confirm(live, refused.json(), replace_audit_trail=True)

    assert restored.status == 200, restored.body
    assert restored.json()["restored"]["audit_trail"] == "replaced"
    newest = live.audit_events(0)[-1]
    assert (newest["action"], newest["details"]["override"]) == ("backup.restore", "replace_audit_trail")
    assert newest["details"]["replaced_head_seq"] == head + 1
    report = json.loads(live.manage("verify_audit_log", "--json").stdout)
    assert report["ok"] is True
    put_back(live, original, tmp_path / "original.zip")


def test_an_edited_backup_is_refused_without_the_key(live: LivePKI):
    """A global admin un-revokes a certificate in a downloaded backup and recomputes every hash."""
    archive = download_backup(live)
    members = {}
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        for info in opened.infolist():
            members[info.filename] = opened.read(info)
    name = "db/certificates.certificate.jsonl"
    rows = [json.loads(line) for line in members[name].splitlines()]
    for row in rows:
        row.update(revoked_at=None, revocation_reason="", invalidity_date=None)
    members[name] = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    manifest = json.loads(members["manifest.json"])
    manifest["members"][name] = {"sha256": hashlib.sha256(members[name]).hexdigest(),
                                 "size": len(members[name])}
    members["manifest.json"] = json.dumps(manifest).encode()
    edited = io.BytesIO()
    with zipfile.ZipFile(edited, "w") as out:
        for member, data in members.items():
            out.writestr(member, data)
    before, head = live.fingerprint(), live.audit_head()

    refused = upload(live, edited.getvalue())

    assert refused.status == 400
    assert refused.error_code == "manifest_not_authentic"
    assert live.fingerprint().differences(before) == []
    assert [event["details"]["code"] for event in live.audit_events(head)] == ["manifest_not_authentic"]


def test_deleting_a_failed_login_and_rehashing_in_the_database_is_caught(live: LivePKI, tmp_path: Path):
    """The database owner drops the triggers, deletes a failed-login event and re-hashes what follows."""
    original = download_backup(live)
    assert live.request("POST", "/auth/session", json_body={"api_key": "pki_000000000000_" + "x" * 43}).status == 401
    assert live.request("POST", "/auth/session", json_body={"api_key": live.keys["manager"]}).status == 200
    failed = next(event for event in reversed(live.audit_events(0)) if event["action"] == "auth.login"
                  and event["outcome"] == "failure")
    assert json.loads(live.manage("verify_audit_log", "--json").stdout)["ok"] is True

    rewrite_without_key(live.installation.database_url, delete_seq=failed["seq"])

    result = live.manage("verify_audit_log", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert (report["broken"]["kind"], report["broken"]["seq"]) == ("forged", failed["seq"])
    assert "without this installation's audit key" in report["broken"]["message"]
    refused = live.manage("restore_database", str(tmp_path / "x.zip"), "--yes")  # nothing restores over it quietly
    assert refused.returncode != 0
    put_back(live, original, tmp_path / "original.zip")
    assert json.loads(live.manage("verify_audit_log", "--json").stdout)["ok"] is True


COLUMNS = ("id", "seq", "version", "created_at", "action", "outcome", "actor_user_id", "actor_username",
           "actor_api_key_id", "actor_role", "actor_label", "organization_id", "organization_slug", "target_type",
           "target_id", "target_serial", "source_ip", "user_agent", "details", "prev_hash", "hash")


def rewrite_without_key(database_url: str, *, delete_seq: int) -> None:
    """What someone with the database but without the environment does: delete, renumber, re-hash."""
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in query(
        database_url, f"SELECT {', '.join(COLUMNS)} FROM audit_auditevent ORDER BY seq", [])]  # noqa: S608
    kept = [row for row in rows if row["seq"] != delete_seq]
    prev_hash = next(row["hash"] for row in rows if row["seq"] == delete_seq - 1)
    updates = []
    for row in kept[delete_seq - 1:]:
        row["seq"] -= 1
        row["prev_hash"] = prev_hash
        record = {**row, "v": row["version"], "created_at": _utc(row["created_at"]),
                  "details": json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]}
        row["hash"] = prev_hash = compute_hash(record)
        updates.append((row["seq"], row["prev_hash"], row["hash"], row["id"]))
    _run_as_database_owner(database_url, delete_seq, updates)


def _utc(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _run_as_database_owner(database_url: str, delete_seq: int, updates: list[tuple]) -> None:
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            connection.execute("DROP TRIGGER audit_event_no_update")
            connection.execute("DROP TRIGGER audit_event_no_delete")
            connection.execute("DELETE FROM audit_auditevent WHERE seq = ?", [delete_seq])
            connection.executemany("UPDATE audit_auditevent SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?",
                                   updates)
        return
    import psycopg

    with psycopg.connect(database_url) as connection:
        connection.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        connection.execute("DELETE FROM audit_auditevent WHERE seq = %s", [delete_seq])
        connection.cursor().executemany("UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s "
                                        "WHERE id = %s", updates)
