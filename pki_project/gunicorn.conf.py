"""gunicorn's configuration for the PKI: `make run` and the README's production command both load it.

    .venv/bin/gunicorn --config pki_project/gunicorn.conf.py --bind 127.0.0.1:8000 --workers 4

Command-line options override what is set here (`--workers`, `--threads`, `--bind`...).

* Workers that a slow client cannot hold: `pki_project.gunicorn_worker.GuardedThreadWorker`
  (gthread whose event loop gathers request heads, with header, body and idle timeouts
  from `PKI_HEADER_TIMEOUT`, `PKI_BODY_TIMEOUT`, `PKI_IDLE_TIMEOUT`; see that module).
* Upload files of a killed worker removed: the arbiter sweeps `PKI_UPLOAD_DIR` when it
  starts and removes a worker's files when it reaps it (`pki_project.tempfiles`).

The arbiter never imports Django: this file reads `.env` (as `manage.py` does) only for
the variables above, and checks them so a bad value stops the start with one line.
"""

from __future__ import annotations

import resource

from pki_project import tempfiles
from pki_project.config import load_dotenv
from pki_project.serving import Timeouts, max_request_bytes

load_dotenv()
try:  # a malformed PKI_*_TIMEOUT or PKI_MAX_REQUEST_BYTES stops gunicorn here, with one line naming it
    Timeouts.from_environment()
    max_request_bytes()
except ValueError as error:
    raise SystemExit(f"Configuration error: {error}") from None
_UPLOAD_DIR = tempfiles.upload_directory()

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
    removed = tempfiles.sweep_orphans(_UPLOAD_DIR)
    if removed:
        server.log.info("Removed %d upload file(s) left by processes that no longer run", removed)


def post_worker_init(worker) -> None:
    """A new worker also sweeps (an arbiter that was itself killed never reaped its workers)."""
    tempfiles.sweep_orphans(_UPLOAD_DIR)


def child_exit(server, worker) -> None:
    """The arbiter reaped a worker, perhaps killed mid-upload: remove what it was writing."""
    removed = tempfiles.remove_files_of(worker.pid, _UPLOAD_DIR)
    if removed:
        server.log.warning("Removed %d upload file(s) of worker %s, which exited mid-request", removed, worker.pid)
