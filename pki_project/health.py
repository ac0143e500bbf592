"""Liveness and readiness probes: `GET /health` and `GET /ready`."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def database_problem() -> str | None:
    """Return a short reason when the database does not answer a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("Readiness: database check failed")
        return "database unavailable"
    return None


def storage_problem(data_dir: Path) -> str | None:
    """Return a short reason unless the data directory exists and accepts a file."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".ready-", dir=data_dir)
        os.close(descriptor)
        os.unlink(probe)
    except OSError:
        logger.exception("Readiness: data directory check failed")
        return "data directory not writable"
    return None


def rotation_problem(data_dir: Path) -> str | None:
    """While an encryption key rotation is half done, artifacts are under two keys: serve nothing."""
    from certificates.vault.errors import VaultError
    from certificates.vault.rotation import read_rotation_journal

    try:
        in_progress = read_rotation_journal(data_dir) is not None
    except (OSError, VaultError):
        logger.exception("Readiness: the rotation journal is unreadable")
        return "encryption key rotation journal unreadable"
    return "encryption key rotation in progress" if in_progress else None


def readiness_problems(data_dir: Path) -> list[str]:
    storage = storage_problem(data_dir)
    checks = [database_problem(), storage, None if storage else rotation_problem(data_dir)]
    return [problem for problem in checks if problem]


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Ready: the database answers, `PKI_DATA_DIR` is writable and no key rotation is half done; else 503."""
    problems = readiness_problems(Path(settings.PKI_DATA_DIR))
    if problems:
        return JsonResponse({"status": "unavailable", "reasons": problems}, status=503)
    return JsonResponse({"status": "ready"})
