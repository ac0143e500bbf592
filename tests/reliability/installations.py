"""Real installations driven from outside: a SQLite file or a throw-away PostgreSQL database, a data
directory, `manage.py` and the worker (`tests.reliability.worker`) in real OS processes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PROJECT_DIR, clean_environment, run_manage

POSTGRES_URL = os.environ.get("PKI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT_PASSWORD = "reliability root password 0123"
PROCESS_TIMEOUT = 240  # seconds; the machine may be loaded, but nothing here may hang for ever


@dataclass
class Installation:
    engine: str
    database_url: str
    data_dir: Path
    env: dict[str, str]

    def manage(self, *args: str, timeout: int = PROCESS_TIMEOUT, **env: str) -> subprocess.CompletedProcess[str]:
        return run_manage(*args, env={**self.env, **env}, timeout=timeout)

    def ok(self, *args: str, **env: str) -> str:
        result = self.manage(*args, **env)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start the worker without waiting for it."""
        return subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.worker", *args], cwd=PROJECT_DIR, env={**self.env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def worker(self, *args: str, timeout: int = PROCESS_TIMEOUT) -> list[dict]:
        """Run the worker to the end; its JSON lines."""
        return finish(self.spawn(*args), timeout=timeout)

    def consistency(self, *args: str, **env: str) -> tuple[int, dict]:
        result = self.manage("check_consistency", "--json", "--grace-seconds", "0", *args, **env)
        assert result.stdout.strip(), result.stderr
        return result.returncode, json.loads(result.stdout)


def finish(process: subprocess.Popen[str], timeout: int = PROCESS_TIMEOUT) -> list[dict]:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, f"worker exited {process.returncode}:\n{stderr}"
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


class StartingLine:
    """Workers started with `--go-file` report ready, then wait; `release()` lets them all go at once."""

    def __init__(self, directory: Path) -> None:
        self.go_file = directory / f"go-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self, installation: Installation, *args: str) -> subprocess.Popen[str]:
        process = installation.spawn(*args, "--go-file", str(self.go_file))
        self.processes.append(process)
        return process

    def release(self) -> None:
        for process in self.processes:
            line = _readline(process, PROCESS_TIMEOUT)
            assert json.loads(line) == {"ready": True}, line
        self.go_file.touch()


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """The worker's next line, waiting at most `timeout` seconds (a hung worker is killed)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        process.kill()
        raise AssertionError(f"the worker said nothing for {timeout} s")
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=30)
        raise AssertionError(f"worker exited {process.returncode}: {process.stderr.read()}")
    return line


def environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = clean_environment(
        DATABASE_URL=database_url, PKI_DATA_DIR=str(data_dir), PKI_ROOT_KDF_LOG2_N="12",
        PKI_ENV_FILE=str(data_dir.parent / "no.env"), ROOT_PASSWORD=ROOT_PASSWORD,
        PKI_COOKIE_SECURE="false", PKI_BASE_URL="http://127.0.0.1:8000", **extra,
    )
    env["DJANGO_SETTINGS_MODULE"] = "pki_project.settings"
    return env


def new_installation(engine: str, database_url: str, directory: Path) -> Installation:
    data_dir = directory / "data"
    instance = Installation(engine, database_url, data_dir, environment(database_url, data_dir))
    instance.ok("migrate", "--noinput", "-v", "0")
    return instance


def sqlite_installation(directory: Path) -> Installation:
    return new_installation("sqlite", f"sqlite:///{directory / 'pki.db'}", directory)


def postgres_answers() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception:
        return False
    return True


def redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the test server (dropped afterwards); skips with a message when none answers."""
    if not postgres_answers():
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL} (PKI_TEST_POSTGRES_URL): test skipped")
    import psycopg

    name = f"pki_reliability_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def installation_for(engine: str, directory: Path) -> Iterator[Installation]:
    if engine == "sqlite":
        yield sqlite_installation(directory)
        return
    with postgres_database() as url:
        yield new_installation("postgres", url, directory)


# --- a real server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def wait_until_up(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, "gunicorn exited"
        with contextlib.suppress(OSError):
            if request(port, "/health")[0] == 200:
                return
        time.sleep(0.3)
    raise AssertionError("gunicorn did not answer /health in time")


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int = 1,
             extra: list[str] | None = None) -> Iterator[subprocess.Popen]:
    """A real gunicorn serving the project on 127.0.0.1:`port`, stopped afterwards."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "pki_project.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120", *(extra or [])],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until_up(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
