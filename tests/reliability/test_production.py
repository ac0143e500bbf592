"""The production configuration of the README, exercised: gunicorn with two workers, PostgreSQL, Redis.

A fresh PostgreSQL database is created and migrated with `manage.py migrate`, the CAs are
made by the operator's tools, gunicorn serves it with two worker processes and
`CACHE_URL` on Redis; API clients issue at once through both workers and every serial is
unique. Skipped with a message when PostgreSQL or Redis does not answer.
"""

from __future__ import annotations

import http.client
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.certificates.csrs import make_csr
from tests.reliability.installations import (
    REDIS_URL,
    free_port,
    gunicorn,
    new_installation,
    postgres_database,
    redis_answers,
)

REQUESTS = 12


def post_json(port: int, path: str, body: dict, key: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, json.dumps(body),
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_two_gunicorn_workers_on_postgresql_and_redis_issue_unique_serials(tmp_path: Path) -> None:
    if not redis_answers():
        pytest.skip(f"Redis does not answer at {REDIS_URL} (PKI_TEST_REDIS_URL): production test skipped")
    with postgres_database() as url:
        installation = new_installation("postgres", url, tmp_path)
        installation.env["CACHE_URL"] = REDIS_URL
        installation.worker("setup", "--ca", "production-issuing")
        created = json.loads(installation.ok("create_api_key", "--user", "ops", "--role", "manager",
                                             "--organization", "reliable", "--json"))
        port = free_port()
        log = tmp_path / "access.log"
        env = {**installation.env, "PKI_ALLOWED_HOSTS": "127.0.0.1,localhost"}
        with gunicorn(env, port, workers=2, extra=["--access-logfile", str(log),
                                                   "--access-logformat", "%(p)s %(m)s %(U)s %(s)s"]):
            assert get(port, "/ready") == 200
            csrs = [make_csr(f"host-{index}.example.com").decode() for index in range(REQUESTS)]
            with ThreadPoolExecutor(max_workers=6) as pool:
                answers = list(pool.map(
                    lambda csr: post_json(port, "/api/v1/certificates/",
                                          {"ca": "production-issuing", "profile": "server", "csr": csr},
                                          created["key"]), csrs))
        assert [status for status, _ in answers] == [201] * REQUESTS, answers
        serials = {body["serial"] for _, body in answers}
        assert len(serials) == REQUESTS
        workers = set(re.findall(r"^<(\d+)> POST /api/v1/certificates/ 201$", log.read_text(), re.MULTILINE))
        assert len(workers) == 2, f"one worker served every request: {log.read_text()}"
        status, report = installation.consistency()
        assert report["errors"] == 0, report["findings"]
        assert status == 0
