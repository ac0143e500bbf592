"""gunicorn's configuration for the PKI: `make run` and the README's production command both load it.

    .venv/bin/gunicorn --config pki_project/gunicorn.conf.py --bind 127.0.0.1:8000 --workers 4

Command-line options override what is set here (`--workers`, `--threads`, `--bind`...).

* Workers that a slow client cannot hold: `pki_project.gunicorn_worker.GuardedThreadWorker`
  (gthread whose event loop gathers request heads, with header, body and idle timeouts
  from `PKI_HEADER_TIMEOUT`, `PKI_BODY_TIMEOUT`, `PKI_IDLE_TIMEOUT`; see that module).
* Upload files of a killed worker removed: the arbiter sweeps `PKI_UPLOAD_DIR` when it
  starts and removes a worker's files when it reaps it (`pki_project.tempfiles`).
* Traffic metrics shared by the workers (`pki_project.metrics`): prometheus-client's
  multiprocess mode in `PROMETHEUS_MULTIPROC_DIR`, by default a private directory per server
  (`tmp/prometheus/<arbiter pid>`, those of servers no longer running removed), emptied when the
  arbiter starts so that counters start from zero with the server.

The arbiter never imports Django: this file reads `.env` (as `manage.py` does) only for
the variables above, and checks them so a bad value stops the start with one line.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

from pki_project import tempfiles
from pki_project.config import BASE_DIR, load_dotenv
from pki_project.serving import Timeouts, max_request_bytes

load_dotenv()
try:  # a malformed PKI_*_TIMEOUT or PKI_MAX_REQUEST_BYTES stops gunicorn here, with one line naming it
    Timeouts.from_environment()
    max_request_bytes()
except ValueError as error:
    raise SystemExit(f"Configuration error: {error}") from None
_UPLOAD_DIR = tempfiles.upload_directory()
_METRICS_BASE = BASE_DIR / "tmp" / "prometheus"

wsgi_app = "pki_project.wsgi:application"
worker_class = "pki_project.gunicorn_worker.GuardedThreadWorker"
workers = 2
threads = 8  # requests served at once per worker; each thread may hold a database connection
# Connections per worker, idle and half-sent ones included (they cost a file descriptor, not a thread).
worker_connections = max(64, min(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64))
keepalive = 5  # seconds an idle connection is kept between two requests
timeout = 60  # heartbeat: a worker whose event loop is stuck this long is killed and replaced
graceful_timeout = 30
# gunicorn's own limits on the head, stated (the worker closes a head larger than they allow with 431).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
# gunicorn 25+ opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl), shared by
# every gunicorn that user runs; nothing here uses gunicornc, and signals manage the arbiter.
control_socket_disable = True


def on_starting(server) -> None:
    """Before any worker: the private upload directory exists, and nothing a dead process wrote stays in it."""
    tempfiles.ensure_private_directory(_UPLOAD_DIR)
    _prepare_metrics_directory()
    removed = tempfiles.sweep_orphans(_UPLOAD_DIR)
    if removed:
        server.log.info("Removed %d upload file(s) left by processes that no longer run", removed)


def _prepare_metrics_directory() -> None:
    """Where the workers share their counters: set in the arbiter's environment, which the workers inherit."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        tempfiles.ensure_private_directory(_METRICS_BASE)
        for old in _METRICS_BASE.iterdir():  # servers that no longer run
            if old.is_dir() and old.name.isdigit() and not tempfiles.process_alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_METRICS_BASE / str(os.getpid()))
    directory = tempfiles.ensure_private_directory(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    for stale in directory.glob("*.db"):  # a previous server's counters
        stale.unlink(missing_ok=True)


def post_worker_init(worker) -> None:
    """A new worker also sweeps (an arbiter that was itself killed never reaped its workers)."""
    tempfiles.sweep_orphans(_UPLOAD_DIR)


def child_exit(server, worker) -> None:
    """The arbiter reaped a worker, perhaps killed mid-upload: remove what it was writing."""
    removed = tempfiles.remove_files_of(worker.pid, _UPLOAD_DIR)
    if removed:
        server.log.warning("Removed %d upload file(s) of worker %s, which exited mid-request", removed, worker.pid)


def on_exit(server) -> None:
    """The server stops: its own metrics directory goes (one the operator named stays)."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if directory.parent == _METRICS_BASE and directory.name == str(os.getpid()):
        shutil.rmtree(directory, ignore_errors=True)
