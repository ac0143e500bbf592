"""Logout and key revocation win on the very next request in *another* worker process.

Two gunicorn servers share one SQLite file; the key is created and revoked by
`manage.py` in a third process, as an operator would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.helpers import clean_environment, run_manage
from tests.identity.test_ratelimit import start_servers, stop_servers


def call(port: int, method: str, path: str, *, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback test server)
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.slow
def test_revocation_and_logout_reach_every_worker_on_the_next_request(tmp_path):
    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_COOKIE_SECURE="false")
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    assert run_manage("create_organization", "--name", "Cross", "--json", env=env).returncode == 0
    created = run_manage("create_api_key", "--user", "xp", "--role", "manager", "--organization", "cross",
                         "--json", env=env)
    key = json.loads(created.stdout)
    servers = start_servers(env, tmp_path, 2)
    try:
        (a, _pa, _la), (b, _pb, _lb) = servers
        status, session = call(a, "POST", "/auth/session", body={"api_key": key["key"]})
        assert status == 200
        first_token = session["token"]
        status, second = call(b, "POST", "/auth/session", body={"api_key": key["key"]})
        second_token = second["token"]
        assert call(b, "GET", "/api/v1/organizations/", token=first_token)[0] == 200  # opened on A, used on B

        # logout on A: B refuses that token at once, the other session lives on
        assert call(a, "DELETE", "/auth/session", token=first_token)[0] == 200
        status, body = call(b, "GET", "/api/v1/organizations/", token=first_token)
        assert (status, body["error"]["message"]) == (401, "Invalid credentials.")
        assert call(b, "GET", "/api/v1/organizations/", token=second_token)[0] == 200

        # the operator revokes the key in a third process: both workers refuse on the next request
        assert run_manage("revoke_api_key", str(key["id"]), env=env).returncode == 0
        assert call(a, "GET", "/api/v1/organizations/", token=second_token)[0] == 401
        assert call(b, "GET", "/api/v1/organizations/", token=second_token)[0] == 401
        assert call(a, "GET", "/api/v1/organizations/", token=key["key"])[0] == 401
    finally:
        stop_servers(servers)
