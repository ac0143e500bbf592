"""The two staff routes: `GET /admin/backup/database` and `POST /admin/restore/database`.

Thin: they stream bytes to and from temporary files and call `backups.services`.
RBAC (`rbac.json`) lets only the admin role in; on top of that a backup holds every
organization's data, so only a *global* admin (no organization) may take or restore
one: an organization's admin gets 403.

* The backup is written to an anonymous temporary file (created, then unlinked while
  open) and streamed from it with `FileResponse`, so memory stays flat whatever the
  size and nothing is left on disk, even if the client goes away.
* The upload streams to disk through a bounded `TemporaryFileUploadHandler`
  (never into memory; `PKI_BACKUP_MAX_UPLOAD_BYTES`, 5 GiB by default). A cookie-
  authenticated form post whose CSRF token is checked from the body is parsed by the
  CSRF middleware first, with Django's default handlers (memory up to
  `FILE_UPLOAD_MAX_MEMORY_SIZE`, disk beyond); the size bound then applies afterwards.

Answers: JSON for API clients (`{"restored": {...}}`, or `{"error": {"code",
"message"}}` with 400/413), a redirect to the toolbox with a message for the form.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from backups.errors import BackupError
from backups.services import backup_filename, create_backup, restore_backup
from backups.validation import limit
from pki_project.actor import Actor
from pki_project.errors import json_error, page_error, wants_json

logger = logging.getLogger(__name__)
UPLOAD_FIELD = "backup"
RESULT_PAGE = "/toolbox"


def _refuse_unless_global_admin(request: HttpRequest) -> HttpResponse | None:
    principal = getattr(request, "principal", None)
    if principal is not None and principal.is_global_admin:
        return None
    message = "Only a global administrator may back up or restore the whole PKI."
    if wants_json(request):
        return json_error(403, "permission_denied", message)
    return page_error(request, 403, message)


@require_GET
def backup_database(request: HttpRequest) -> HttpResponse:
    refusal = _refuse_unless_global_admin(request)
    if refusal is not None:
        return refusal
    handle = tempfile.TemporaryFile(prefix="pki-backup-", dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None))  # noqa: SIM115 - FileResponse closes it
    try:
        create_backup(handle, Actor.from_request(request))
        handle.seek(0)
    except BackupError as error:
        handle.close()
        return _error(request, error, RESULT_PAGE)
    except BaseException:
        handle.close()
        raise
    return FileResponse(handle, as_attachment=True, filename=backup_filename(), content_type="application/zip")


class BoundedUploadHandler(TemporaryFileUploadHandler):
    """Streams the upload to a temporary file and stops it once it exceeds the configured bound."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.maximum = limit("PKI_BACKUP_MAX_UPLOAD_BYTES")
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.maximum:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)


@require_POST
def restore_database(request: HttpRequest) -> HttpResponse:
    refusal = _refuse_unless_global_admin(request)
    if refusal is not None:
        return refusal
    too_large = BackupError(f"The backup is too large (at most {limit('PKI_BACKUP_MAX_UPLOAD_BYTES')} bytes are "
                            "accepted).", code="too_large")
    too_large.status = 413
    if _declared_length(request) > limit("PKI_BACKUP_MAX_UPLOAD_BYTES"):
        return _error(request, too_large, RESULT_PAGE)
    handler = BoundedUploadHandler(request)
    if not hasattr(request, "_files"):  # not parsed yet (Bearer and script clients): stream to disk, bounded
        request.upload_handlers = [handler]
    upload = request.FILES.get(UPLOAD_FIELD)
    if handler.exceeded:
        return _error(request, too_large, RESULT_PAGE)
    if upload is None:
        return _error(request, BackupError(f"Send the backup archive as the multipart field '{UPLOAD_FIELD}'.",
                                           code="no_file"), RESULT_PAGE)
    with _on_disk(upload) as path:
        try:
            report = restore_backup(path, Actor.from_request(request))
        except BackupError as error:
            return _error(request, error, RESULT_PAGE)
    if wants_json(request):
        return JsonResponse({"restored": report.as_dict()})
    messages.success(request, f"Backup restored: {report.rows} rows and {report.artifacts} artifacts from the "
                              f"backup of {report.source_created_at or 'an unknown date'}.")
    return HttpResponseRedirect(RESULT_PAGE)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


@contextlib.contextmanager
def _on_disk(upload):
    """The uploaded file's path: Django's own temporary file, or a copy made in chunks if it was in memory."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        upload.close()
        return
    fd, name = tempfile.mkstemp(prefix="pki-restore-", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as sink:
            for chunk in upload.chunks():
                sink.write(chunk)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _error(request: HttpRequest, error: BackupError, page: str) -> HttpResponse:
    logger.warning("Backup/restore refused (%s): %s", error.code, error.message)
    if wants_json(request):
        return json_error(getattr(error, "status", 400), error.code, error.message)
    messages.error(request, error.message if request.method == "GET" else f"{error.message} Nothing was changed.")
    return HttpResponseRedirect(page)

