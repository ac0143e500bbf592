"""Sign-in limits: a correct key always passes; wrong ones (form, JSON, Bearer) are limited and audited.

In-process tests count in the test database (`DatabaseStore`, the default without a shared
cache); the multi-process tests start two gunicorn servers sharing one database (SQLite, then
PostgreSQL) or one Redis and show the limit holds its stated number across processes.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client

from audit.models import AuditEvent
from organizations.models import SessionToken
from pki_project import ratelimit
from ratelimits.models import Counter
from tests.factories import ApiKeyFactory
from tests.helpers import PROJECT_DIR, clean_environment, run_manage

pytestmark = pytest.mark.django_db


def attempt(key: str, ip: str = "10.0.0.1", **extra):
    return Client(REMOTE_ADDR=ip).post("/auth/session", {"api_key": key}, content_type="application/json", **extra)


def bearer(credential: str, ip: str = "10.0.0.1", path: str = "/api/v1/certificates/"):
    return Client(REMOTE_ADDR=ip, headers={"Authorization": f"Bearer {credential}"}).get(path)


def wrong_key(prefix: str = "0123456789ab") -> str:
    return f"pki_{prefix}_{'x' * 43}"


def wrong_secret_for(key: str) -> str:
    """Another user's prefix with a wrong secret: what an insider can type after reading the audit trail."""
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


def failed_logins() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="auth.login", outcome="failure").order_by("seq"))


@pytest.fixture
def mid_window(monkeypatch, settings) -> None:
    """The limiter's clock held in the middle of a window: a test's attempts never straddle two windows."""
    window = settings.PKI_LOGIN_RATE_WINDOW
    held = (time.time() // window) * window + window / 2
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: held))


# --- A correct key always signs in ---------------------------------------------------------------


def test_ten_wrong_secrets_with_a_users_prefix_do_not_lock_that_user_out(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 100, 5
    victim = ApiKeyFactory()
    guess = wrong_secret_for(victim.plain_key)
    statuses = [attempt(guess, ip=f"10.0.1.{n}").status_code for n in range(10)]  # ten addresses
    assert statuses == [401] * 5 + [429] * 5  # the prefix limit slows the guesses ...
    for ip in ("10.0.1.0", "10.0.1.9", "10.0.1.77"):  # ... and the owner signs in from anywhere
        assert attempt(victim.plain_key, ip=ip).status_code == 200
    assert SessionToken.objects.filter(api_key=victim).count() == 3
    assert attempt(guess, ip="10.0.1.78").status_code == 429  # the guesses stay limited


def test_a_correct_key_signs_in_from_an_address_past_its_limit(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 3, 100
    good = ApiKeyFactory()
    for n in range(3):
        assert attempt(wrong_key(f"{n:012x}")).status_code == 401
    response = attempt(wrong_key("ffffffffffff"))  # the first wrong attempt past the limit
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= settings.PKI_LOGIN_RATE_WINDOW
    assert response.json()["error"] == {"code": "rate_limited", "message": "Too many login attempts; try again later."}
    assert not SessionToken.objects.exists()
    assert attempt(good.plain_key).status_code == 200  # a NAT or proxy address is shared: the owner still gets in
    assert attempt(wrong_key("eeeeeeeeeeee"), ip="10.0.0.2").status_code == 401  # another address has its own count


def test_correct_keys_are_not_counted(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 2, 2
    good = ApiKeyFactory()
    for _ in range(6):
        assert attempt(good.plain_key).status_code == 200
    assert not Counter.objects.exists()
    assert [attempt(wrong_secret_for(good.plain_key)).status_code for _ in range(3)] == [401, 401, 429]


def test_form_login_past_the_limit_renders_the_page_with_429(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP = 1
    client = Client(REMOTE_ADDR="10.0.2.1")
    assert client.post("/auth/session", {"api_key": wrong_key()}).status_code == 401
    response = client.post("/auth/session", {"api_key": wrong_key()})
    assert response.status_code == 429
    assert b"Too many login attempts" in response.content
    assert "Retry-After" in response


def test_bad_input_is_refused_without_counting(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP = 1
    client = Client(REMOTE_ADDR="10.0.2.2")
    assert client.post("/auth/session", b"not json", content_type="application/json").status_code == 400
    assert client.post("/auth/session", {}, content_type="application/json").status_code == 400
    assert not Counter.objects.exists()
    assert attempt(wrong_key(), ip="10.0.2.2").status_code == 401  # the first counted attempt


# --- What the trail says ------------------------------------------------------------------------------


def test_refused_logins_are_audited_up_to_the_limit_then_as_bounded_refusals(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 4, 100
    settings.PKI_AUDIT_DENIALS_PER_WINDOW = 2
    victim = ApiKeyFactory()
    guess = wrong_secret_for(victim.plain_key)
    statuses = [attempt(guess, ip="10.0.3.1").status_code for _ in range(30)]
    assert statuses == [401] * 4 + [429] * 26
    failures = failed_logins()
    assert len(failures) == 4
    assert {event.actor_label for event in failures} == {victim.prefix}
    assert all(event.details == {"reason": "wrong secret", "via": "login"} for event in failures)
    assert all(event.source_ip == "10.0.3.1" for event in failures)
    refusals = list(AuditEvent.objects.filter(action__startswith="access.").order_by("seq"))
    assert [event.action for event in refusals] == ["access.deny", "access.deny", "access.deny_suppressed"]
    assert refusals[0].target_id == "POST /auth/session"
    assert refusals[0].actor_label == victim.prefix  # the attacked key, never its secret
    assert refusals[0].details["status"] == 429
    assert refusals[2].details["phase"] == "started"
    secret = victim.plain_key.rsplit("_", 1)[1]
    for event in AuditEvent.objects.all():
        assert secret not in json.dumps(event.details) + event.actor_label + event.target_id


# --- Bearer credentials: the same limits and the same trail -------------------------------------------


def test_failed_bearer_keys_are_limited_per_ip_and_audited(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP, settings.PKI_LOGIN_RATE_PER_KEY = 3, 100
    good = ApiKeyFactory()
    guess = wrong_secret_for(good.plain_key)
    responses = [bearer(guess, ip="10.0.4.1") for _ in range(5)]
    assert [response.status_code for response in responses] == [401, 401, 401, 429, 429]
    assert responses[0].json()["error"]["code"] == "not_authenticated"
    assert responses[3].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(responses[3]["Retry-After"]) <= settings.PKI_LOGIN_RATE_WINDOW
    failures = failed_logins()
    assert len(failures) == 3
    assert {(event.actor_label, event.details["via"]) for event in failures} == {(good.prefix, "bearer")}
    assert bearer(good.plain_key, ip="10.0.4.1").status_code == 200  # the right key from the same address
    assert attempt(wrong_key(), ip="10.0.4.1").status_code == 429  # one count per address, whichever door


def test_failed_bearer_jwts_and_other_schemes_count_in_the_same_bucket(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP = 2
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert bearer(forged, ip="10.0.4.2").status_code == 401
    basic = Client(REMOTE_ADDR="10.0.4.2", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.get("/api/v1/certificates/").status_code == 401
    assert bearer(forged, ip="10.0.4.2").status_code == 429
    reasons = [event.details["reason"] for event in failed_logins()]
    assert reasons[1] == "unsupported Authorization scheme"
    assert reasons[0].startswith("invalid token")
    assert all(event.actor_label == "" for event in failed_logins())


def test_a_refused_cookie_is_not_counted(settings, mid_window):
    settings.PKI_LOGIN_RATE_PER_IP = 1
    client = Client(REMOTE_ADDR="10.0.4.3")
    client.cookies["pki_session"] = "expired.or.logged-out"
    for _ in range(3):
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 302  # to the login page
    assert not Counter.objects.exists()
    assert not failed_logins()


# --- The counting itself --------------------------------------------------------------------------------


def stores() -> list:
    return [pytest.param(ratelimit.DatabaseStore(), id="database"), pytest.param(ratelimit.CacheStore(), id="cache")]


@pytest.fixture
def no_pruning(monkeypatch):
    """These tests count at fixed times of 1970: the once-a-minute prune (real time) would forget them."""
    monkeypatch.setattr(ratelimit, "_last_pruned", float("inf"))


@pytest.mark.usefixtures("no_pruning")
@pytest.mark.parametrize("store", stores())
def test_the_window_resets(store):
    bucket = f"t-{uuid.uuid4().hex}"
    for _ in range(2):
        assert ratelimit.hit(bucket, limit=2, window=60, now=1200.0, store=store).allowed
    refused = ratelimit.hit(bucket, limit=2, window=60, now=1230.5, store=store)
    assert not refused.allowed
    assert refused.retry_after == 30
    assert ratelimit.hit(bucket, limit=2, window=60, now=1260.0, store=store).allowed


@pytest.mark.usefixtures("no_pruning")
@pytest.mark.parametrize("store", stores())
def test_a_new_window_reports_the_last_one(store):
    bucket = f"t-{uuid.uuid4().hex}"
    for _ in range(7):
        ratelimit.count(bucket, window=60, keep=3600, now=1210.0, store=store)
    first = ratelimit.count(bucket, window=60, keep=3600, now=1500.0, store=store)  # four windows later
    assert (first.count, first.window_start, first.previous_window_start, first.previous_count) == (1, 1500, 1200, 7)
    second = ratelimit.count(bucket, window=60, keep=3600, now=1501.0, store=store)
    assert (second.count, second.previous_window_start) == (2, None)


@pytest.mark.usefixtures("no_pruning")
def test_a_lagging_clock_counts_in_the_current_window():
    store, bucket = ratelimit.DatabaseStore(), f"t-{uuid.uuid4().hex}"
    ratelimit.count(bucket, window=60, now=1260.0, store=store)
    late = ratelimit.count(bucket, window=60, now=1259.0, store=store)  # another worker, a second behind
    assert (late.count, late.window_start) == (2, 1260)


def test_old_database_counters_are_pruned(monkeypatch):
    store = ratelimit.DatabaseStore()
    monkeypatch.setattr(ratelimit, "_last_pruned", 0.0)
    ratelimit.count("t-old", window=60, now=1200.0, store=store)  # pruned at once: its window ended long ago
    assert not Counter.objects.filter(bucket="t-old").exists()
    ratelimit.count("t-now", window=60, store=store)
    assert Counter.objects.filter(bucket="t-now").exists()


def test_the_default_configuration_counts_in_the_database(settings):
    assert isinstance(ratelimit.shared_store(), ratelimit.DatabaseStore)  # tests run with local memory
    assert isinstance(ratelimit.cache_store(), ratelimit.CacheStore)  # the public routes' limit


# --- Across worker processes ---------------------------------------------------------------------------

REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


@pytest.mark.redis
def test_redis_counts_with_incr_and_expiry(settings):
    client = redis_client()
    if client is None:
        pytest.skip(f"Redis does not answer at {REDIS_URL} (set PKI_TEST_REDIS_URL)")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    store = ratelimit.shared_store()
    assert isinstance(store, ratelimit.RedisStore)
    bucket = f"t-{uuid.uuid4().hex}"
    try:
        counts = [ratelimit.count(bucket, window=60, keep=600, now=1210.0, store=store).count for _ in range(3)]
        assert counts == [1, 2, 3]
        keys = list(client.scan_iter(match=f"*pki:rl:{bucket}:*"))
        assert len(keys) == 1
        assert 0 < client.ttl(keys[0]) <= 60 + 600 + ratelimit.EXPIRY_SLACK
        later = ratelimit.count(bucket, window=60, keep=600, now=1330.0, store=store)
        assert (later.count, later.previous_window_start, later.previous_count) == (1, 1200, 3)
    finally:
        for key in client.scan_iter(match=f"*{bucket}*"):
            client.delete(key)


def test_a_redis_outage_counts_in_the_database_instead(settings, mid_window):
    """A wrong credential is still limited, and never a 500, while Redis does not answer."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # nobody listens there
    settings.PKI_LOGIN_RATE_PER_IP = 2
    assert [attempt(wrong_key(), ip="10.0.5.1").status_code for _ in range(3)] == [401, 401, 429]
    assert Counter.objects.filter(bucket="login-ip:10.0.5.1", count=3).exists()


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
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback test server)
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def wait_until_up(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
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


def a_long_window() -> int:
    """A window of some days, of a length no other run is likely to use, that does not end in the next minutes."""
    while True:
        window = random.randint(10**6, 2 * 10**6)
        if window - time.time() % window > 600:
            return window


LIMIT, ATTEMPTS = 8, 24


def flood_two_servers(env: dict, directory: Path, good_key: str) -> None:
    """24 concurrent wrong attempts over two servers: exactly LIMIT answered 401; the right key still 200."""
    servers = start_servers(env, directory, 2)
    try:
        ports = [port for port, _process, _log in servers]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda n: post_login(ports[n % 2], wrong_key(f"{n:012x}")), range(ATTEMPTS)))
        statuses = sorted(status for status, _headers, _body in results)
        assert statuses == [401] * LIMIT + [429] * (ATTEMPTS - LIMIT), statuses
        for port in ports:
            status, _headers, body = post_login(port, good_key)
            assert status == 200, body
        assert len({process.pid for _port, process, _log in servers}) == 2
    finally:
        stop_servers(servers)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_limit_holds_across_processes_with_the_default_configuration(tmp_path, engine):
    """No CACHE_URL: the two servers count in the database they share."""
    from tests.reliability.installations import installation_for
    from tests.trust.live import query

    with installation_for(engine, tmp_path) as installation:
        env = {**installation.env, "PKI_LOGIN_RATE_PER_IP": str(LIMIT), "PKI_LOGIN_RATE_PER_KEY": "1000",
               "PKI_LOGIN_RATE_WINDOW": str(a_long_window())}
        env.pop("CACHE_URL", None)
        created = json.loads(run_manage("create_api_key", "--user", "flood-owner", "--role", "admin", "--json",
                                        env=env).stdout)
        flood_two_servers(env, tmp_path, created["key"])
        rows = query(installation.database_url, "SELECT count(*) FROM audit_auditevent WHERE action = %s AND "
                     "outcome = %s", ["auth.login", "failure"])
        assert rows[0][0] == LIMIT


@pytest.mark.redis
@pytest.mark.slow
def test_the_limit_holds_across_processes_sharing_redis(tmp_path):
    redis = redis_client()
    if redis is None:
        pytest.skip(f"Redis does not answer at {REDIS_URL} (set PKI_TEST_REDIS_URL)")
    window = a_long_window()
    env = clean_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}",
        PKI_DATA_DIR=str(tmp_path / "data"),
        PKI_ENV_FILE=str(tmp_path / "no.env"),
        CACHE_URL=REDIS_URL,
        PKI_COOKIE_SECURE="false",
        PKI_LOGIN_RATE_PER_IP=str(LIMIT),
        PKI_LOGIN_RATE_PER_KEY="1000",
        PKI_LOGIN_RATE_WINDOW=str(window),
    )
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = json.loads(run_manage("create_api_key", "--user", "flood-owner", "--role", "admin", "--json",
                                    env=env).stdout)
    try:
        flood_two_servers(env, tmp_path, created["key"])
    finally:  # this run's counters only (their window is this run's own length)
        for key in redis.scan_iter(match=f"*pki:rl:login-*:{int(time.time() // window) * window}"):
            redis.delete(key)
    counters = run_manage("shell", "-c", "from ratelimits.models import Counter; print(Counter.objects.count())",
                          env=env)
    assert counters.stdout.split()[-1] == "0", counters.stderr  # Redis counted; the database was not written
