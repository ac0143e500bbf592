"""Login rate limits per client IP and per key prefix: 429 with Retry-After, shared through the cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client

from organizations.models import SessionToken
from pki_project import ratelimit
from tests.factories import ApiKeyFactory
from tests.helpers import PROJECT_DIR, clean_environment, run_manage

pytestmark = pytest.mark.django_db


def attempt(key: str, ip: str = "10.0.0.1", **extra):
    return Client(REMOTE_ADDR=ip).post("/auth/session", {"api_key": key}, content_type="application/json", **extra)


def wrong_key(prefix: str = "0123456789ab") -> str:
    return f"pki_{prefix}_{'x' * 43}"


@pytest.fixture
def mid_window(monkeypatch, settings) -> None:
    """The limiter's clock held in the middle of a window: a test's attempts never straddle two windows."""
    window = settings.PKI_LOGIN_RATE_WINDOW
    held = (time.time() // window) * window + window / 2
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: held))


def test_first_attempt_past_the_ip_limit_gets_429(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 3, 100
    good = ApiKeyFactory()
    for n in range(3):
        assert attempt(wrong_key(f"{n:012x}")).status_code == 401
    response = attempt(good.plain_key)  # even the right key is refused once the IP is over the limit
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= settings.PKI_LOGIN_RATE_WINDOW
    assert response.json()["error"]["code"] == "rate_limited"
    assert not SessionToken.objects.exists()
    assert attempt(good.plain_key, ip="10.0.0.2").status_code == 200  # another client is unaffected


def test_first_attempt_past_the_key_prefix_limit_gets_429(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 100, 2
    good = ApiKeyFactory()
    guess = good.plain_key[:-4] + "abcd"
    assert attempt(guess, ip="10.0.1.1").status_code == 401
    assert attempt(guess, ip="10.0.1.2").status_code == 401
    response = attempt(good.plain_key, ip="10.0.1.3")  # same prefix from a third address
    assert response.status_code == 429
    assert "Retry-After" in response
    assert attempt(ApiKeyFactory().plain_key, ip="10.0.1.4").status_code == 200  # other keys are unaffected


def test_form_login_past_the_limit_renders_the_page_with_429(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP = 1
    client = Client(REMOTE_ADDR="10.0.2.1")
    assert client.post("/auth/session", {"api_key": wrong_key()}).status_code == 401
    response = client.post("/auth/session", {"api_key": wrong_key()})
    assert response.status_code == 429
    assert b"Too many login attempts" in response.content
    assert "Retry-After" in response


def test_the_window_resets():
    for _ in range(2):
        assert ratelimit.hit("t", limit=2, window=60, now=1200.0).allowed
    refused = ratelimit.hit("t", limit=2, window=60, now=1230.5)
    assert not refused.allowed
    assert refused.retry_after == 30
    assert ratelimit.hit("t", limit=2, window=60, now=1260.0).allowed


# --- Across worker processes sharing Redis ------------------------------------------------------

REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_login(port: int, key: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/session", data=json.dumps({"api_key": key}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback test server)
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def wait_until_up(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer on port {port}: {log.read_text()[-2000:]}")


def start_servers(env: dict, directory: Path, count: int) -> list[tuple[int, subprocess.Popen, Path]]:
    """`count` separate gunicorn servers (one worker process each) on free loopback ports."""
    servers = []
    try:
        for index in range(count):
            port, log = free_port(), directory / f"gunicorn-{index}-{time.monotonic_ns()}.log"
            with log.open("w") as handle:
                process = subprocess.Popen(
                    [str(PROJECT_DIR / ".venv" / "bin" / "gunicorn"), "pki_project.wsgi:application",
                     "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                    cwd=PROJECT_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT,
                )
            servers.append((port, process, log))
        for port, process, log in servers:
            wait_until_up(port, process, log)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers) -> None:
    for _port, process, _log in servers:
        process.terminate()
    for _port, process, _log in servers:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.redis
@pytest.mark.slow
def test_limit_is_shared_by_two_worker_processes_through_redis(tmp_path):
    redis = redis_client()
    if redis is None:
        pytest.skip(f"Redis does not answer at {REDIS_URL} (set PKI_TEST_REDIS_URL)")
    for key in redis.scan_iter(match="*pki:rl:login-*"):
        redis.delete(key)
    window = 86400  # a day: the test never straddles a window boundary (checked below anyway)
    if window - time.time() % window < 120:  # do not straddle a window boundary
        time.sleep(window - time.time() % window + 1)
    env = clean_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}",
        PKI_DATA_DIR=str(tmp_path / "data"),
        CACHE_URL=REDIS_URL,
        PKI_COOKIE_SECURE="false",
        PKI_LOGIN_RATE_PER_IP="6",
        PKI_LOGIN_RATE_PER_KEY="1000",
        PKI_LOGIN_RATE_WINDOW=str(window),
    )
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    servers = []
    try:
        servers.extend(start_servers(env, tmp_path, 2))
        for attempt_number in range(6):
            port = servers[attempt_number % 2][0]
            status, _headers, body = post_login(port, wrong_key(f"{attempt_number:012x}"))
            assert status == 401, (attempt_number, body)
        status, headers, body = post_login(servers[0][0], wrong_key("ffffffffffff"))
        assert status == 429, body
        assert int(headers["Retry-After"]) >= 1
        assert body == {"error": {"code": "rate_limited", "message": "Too many login attempts; try again later."}}
        status, _headers, _body = post_login(servers[1][0], wrong_key("eeeeeeeeeeee"))
        assert status == 429
        pids = {process.pid for _port, process, _log in servers}
        assert len(pids) == 2
    finally:
        stop_servers(servers)
        for key in redis.scan_iter(match="*pki:rl:login-*"):
            redis.delete(key)
