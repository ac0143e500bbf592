"""Upload files on disk: a private directory of the installation, and names that say whose they are.

Only one request body ever goes to disk: the archive of a restore (every other body is
read into memory, bounded by `PKI_MAX_REQUEST_BYTES`). It is written to `PKI_UPLOAD_DIR`
(default `tmp/uploads` in the project directory; created 0700, files 0600) as
`pki-upload-<host>-<pid>-<random>.part`, so whoever finds a file knows which process on
which host wrote it.

The process that writes a file removes it when the request ends. A worker killed in the
middle of an upload (gunicorn's timeout, the OOM killer, `kill -9`) cannot, so the gunicorn
arbiter removes a dead worker's files when it reaps it (`child_exit` in
`pki_project/gunicorn.conf.py`), and every start of the server and of each worker sweeps
the files whose process no longer runs on this host. Files of other hosts (a directory on
shared storage) and of live processes are never touched.

Django-free: the gunicorn configuration imports it in the arbiter, which never loads Django.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from pki_project.config import BASE_DIR

UPLOAD_PREFIX = "pki-upload-"
UPLOAD_SUFFIX = ".part"
DEFAULT_UPLOAD_DIR = "tmp/uploads"


def upload_directory(environ: Mapping[str, str] | None = None) -> Path:
    """`PKI_UPLOAD_DIR`, relative to the project directory when it is not absolute."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get("PKI_UPLOAD_DIR") or DEFAULT_UPLOAD_DIR)
    return path if path.is_absolute() else (BASE_DIR / path).resolve()


def ensure_private_directory(path: Path) -> Path:
    """Create `path` (and its parents) if needed and make it 0700: only the service's user may look in."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
    return path


def host_tag() -> str:
    """This host's name as it appears in upload file names (letters, digits and hyphens)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:48] or "host"


def owner_prefix(pid: int | None = None) -> str:
    """The file-name prefix of the uploads of process `pid` (this one by default) on this host."""
    return f"{UPLOAD_PREFIX}{host_tag()}-{os.getpid() if pid is None else pid}-"


def new_upload_file(directory: Path) -> tempfile._TemporaryFileWrapper:
    """A temporary file in `directory` whose name says who wrote it (0600, removed when closed)."""
    ensure_private_directory(directory)
    return tempfile.NamedTemporaryFile(prefix=owner_prefix(), suffix=UPLOAD_SUFFIX, dir=directory)


def remove_files_of(pid: int, directory: Path) -> int:
    """Remove the upload files process `pid` of this host left behind; how many there were."""
    return _remove(directory, lambda owner: owner == pid)


def sweep_orphans(directory: Path) -> int:
    """Remove the upload files of this host whose process is gone; how many there were."""
    return _remove(directory, lambda owner: not process_alive(owner))


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_of(name: str) -> int | None:
    """The pid in an upload file name of this host, or None for any other name."""
    ours = f"{UPLOAD_PREFIX}{host_tag()}-"
    if not name.startswith(ours) or not name.endswith(UPLOAD_SUFFIX):
        return None
    pid, separator, _ = name[len(ours):].partition("-")
    return int(pid) if separator and pid.isdigit() else None


def _remove(directory: Path, condemned: Callable[[int], bool]) -> int:
    removed = 0
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        owner = owner_of(entry.name)
        if owner is None or not condemned(owner) or not entry.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed += 1
    return removed
