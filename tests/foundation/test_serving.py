"""The serving pieces that need no running server: upload files and their sweeps, the timeouts'
configuration, how the worker decides what to gather before a thread sees a request, and the deadline on
reads (on a real socket pair). The live behaviour is in tests/trust/test_server.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pki_project import serving, tempfiles
from pki_project.gunicorn_worker import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNBUFFERED,
    Arrival,
    DeadlineSocket,
    RequestTimeout,
    plan_body,
)

# --- upload files ----------------------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    return int(process.stdout)


def upload_file(directory: Path, pid: int, host: str | None = None) -> Path:
    host = host or tempfiles.host_tag()
    path = directory / f"{tempfiles.UPLOAD_PREFIX}{host}-{pid}-abc123{tempfiles.UPLOAD_SUFFIX}"
    path.write_bytes(b"partial upload")
    return path


def test_an_upload_file_is_private_and_says_whose_it_is(tmp_path: Path):
    directory = tmp_path / "uploads"
    with tempfiles.new_upload_file(directory) as handle:
        path = Path(handle.name)
        assert directory.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_mode & 0o777 == 0o600
        assert tempfiles.owner_of(path.name) == os.getpid()
    assert not path.exists()  # removed when closed


def test_a_shared_directory_is_made_private(tmp_path: Path):
    directory = tmp_path / "uploads"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    tempfiles.ensure_private_directory(directory)
    assert directory.stat().st_mode & 0o777 == 0o700


def test_the_sweep_removes_only_this_hosts_files_of_processes_that_are_gone(tmp_path: Path):
    gone, alive = dead_pid(), os.getpid()
    orphan = upload_file(tmp_path, gone)
    in_flight = upload_file(tmp_path, alive)
    other_host = upload_file(tmp_path, gone, host="another-host")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("not an upload")
    assert tempfiles.sweep_orphans(tmp_path) == 1
    assert not orphan.exists()
    assert in_flight.exists()
    assert other_host.exists()
    assert unrelated.exists()


def test_a_reaped_workers_files_are_removed(tmp_path: Path):
    worker, other = dead_pid(), os.getpid()
    mine = [upload_file(tmp_path, worker), tmp_path / f"{tempfiles.owner_prefix(worker)}second.part"]
    mine[1].write_bytes(b"x")
    kept = upload_file(tmp_path, other)
    assert tempfiles.remove_files_of(worker, tmp_path) == 2
    assert not any(path.exists() for path in mine)
    assert kept.exists()


def test_the_upload_directory_comes_from_the_environment(tmp_path: Path):
    assert tempfiles.upload_directory({"PKI_UPLOAD_DIR": str(tmp_path)}) == tmp_path
    assert tempfiles.upload_directory({}).parts[-2:] == ("tmp", "uploads")
    assert tempfiles.upload_directory({"PKI_UPLOAD_DIR": "spool"}).is_absolute()


# --- configuration -------------------------------------------------------------------------------


def test_timeouts_have_defaults_and_refuse_nonsense():
    assert serving.Timeouts.from_environment({}) == serving.Timeouts(header=10.0, body=30.0, idle=60.0)
    assert serving.Timeouts.from_environment({"PKI_HEADER_TIMEOUT": "2.5"}).header == 2.5
    for value in ("abc", "0", "-1", "7200"):
        with pytest.raises(ValueError, match="PKI_BODY_TIMEOUT"):
            serving.Timeouts.from_environment({"PKI_BODY_TIMEOUT": value})


def test_the_body_limit_has_a_default_and_refuses_nonsense():
    assert serving.max_request_bytes({}) == 256 * 1024
    assert serving.max_request_bytes({"PKI_MAX_REQUEST_BYTES": "1048576"}) == 1048576
    for value in ("1k", "12", "-5", str(2**40)):
        with pytest.raises(ValueError, match="PKI_MAX_REQUEST_BYTES"):
            serving.max_request_bytes({"PKI_MAX_REQUEST_BYTES": value})


def test_a_bad_timeout_stops_gunicorn_with_one_line(tmp_path: Path):
    from tests.helpers import PROJECT_DIR, clean_environment

    env = clean_environment(PKI_HEADER_TIMEOUT="soon", PKI_ENV_FILE=str(tmp_path / "none.env"),
                            PKI_UPLOAD_DIR=str(tmp_path / "uploads"))
    result = subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "--config",
                             str(PROJECT_DIR / "pki_project" / "gunicorn.conf.py"), "--check-config"],
                            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "Configuration error: PKI_HEADER_TIMEOUT must be a number of seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_worker_the_application_asks_nothing_of_the_server():
    serving.lift_body_deadline()  # Django's test client, runserver: no control bound, nothing happens
    serving.close_after_response()

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def lift_body_deadline(self) -> None:
            self.calls.append("lift")

        def close_after_response(self) -> None:
            self.calls.append("close")

    recorder = Recorder()
    with serving.bound(recorder):
        serving.lift_body_deadline()
        serving.close_after_response()
    serving.close_after_response()  # unbound again
    assert recorder.calls == ["lift", "close"]


# --- what the worker's event loop gathers --------------------------------------------------------

LIMIT = 256 * 1024


def request_head(*headers: str) -> bytes:
    return ("\r\n".join(["POST /auth/session HTTP/1.1", "Host: x", *headers])).encode()


@pytest.mark.parametrize(("headers", "kind", "length"), [
    ((), NO_BODY, 0),
    (("Content-Length: 0",), NO_BODY, 0),
    (("Content-Length: 120",), LENGTH, 120),
    ((f"content-length:  {LIMIT} ",), LENGTH, LIMIT),
    ((f"Content-Length: {LIMIT + 1}",), UNBUFFERED, 0),  # the restore's upload, or an early 413
    (("Content-Length: 5", "Content-Length: 6"), UNBUFFERED, 0),  # gunicorn refuses it with 400
    (("Content-Length: 1e3",), UNBUFFERED, 0),
    (("Transfer-Encoding: chunked",), CHUNKED, 0),
    (("Transfer-Encoding: gzip, chunked",), CHUNKED, 0),
    (("Transfer-Encoding: chunked", "Content-Length: 5"), UNBUFFERED, 0),  # RFC 9112 section 6.3: refused
    (("Transfer-Encoding: gzip",), UNBUFFERED, 0),
])
def test_the_body_plan_follows_the_declared_framing(headers, kind: str, length: int):
    plan = plan_body(request_head(*headers), LIMIT)
    assert (plan.kind, plan.length) == (kind, length)


def test_expect_continue_is_noticed():
    assert plan_body(request_head("Content-Length: 10", "Expect: 100-continue"), LIMIT).expects_continue


def arrival_of(head: bytes, body: bytes, plan) -> Arrival:
    data = head + b"\r\n\r\n" + body
    end = len(head) + 4
    return Arrival(bytearray(data), 0.0, head_end=end, plan=plan, scanned=end)


def test_a_body_is_complete_once_its_length_or_its_last_chunk_arrived():
    length = plan_body(request_head("Content-Length: 10"), LIMIT)
    assert not arrival_of(request_head(), b"123456789", length).body_complete()
    assert arrival_of(request_head(), b"1234567890", length).body_complete()
    chunked = plan_body(request_head("Transfer-Encoding: chunked"), LIMIT)
    assert not arrival_of(request_head(), b"5\r\nhello\r\n", chunked).body_complete()
    assert arrival_of(request_head(), b"5\r\nhello\r\n0\r\n\r\n", chunked).body_complete()
    assert arrival_of(request_head(), b"0\r\n\r\n", chunked).body_complete()


# --- the deadline on reads, on a real socket pair ------------------------------------------------


def test_a_read_past_its_deadline_raises_request_timeout():
    server, client = socket.socketpair()
    with server, client:
        reader = DeadlineSocket(server, idle=30)
        reader.deadline = time.monotonic() + 0.3
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            reader.recv(100)
        assert 0.2 < time.monotonic() - started < 2
        with pytest.raises(RequestTimeout):  # the deadline has passed: no wait at all
            reader.recv(100)
        assert server.gettimeout() is None  # the socket's own timeout is left as it was


def test_a_read_with_no_progress_for_the_idle_time_raises_request_timeout():
    server, client = socket.socketpair()
    with server, client:
        reader = DeadlineSocket(server, idle=0.3)  # no overall deadline: an authorized upload
        threading.Timer(0.1, client.sendall, [b"first"]).start()
        assert reader.recv(100) == b"first"
        with pytest.raises(RequestTimeout):
            reader.recv(100)
