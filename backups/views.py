"""The two staff routes: `GET /admin/backup/database` and `POST /admin/restore/database`.

Thin: they stream bytes to and from temporary files and call `backups.services`.
RBAC (`rbac.json`) lets only the admin role in; on top of that a backup holds every
organization's data, so only a *global* admin (no organization) may take or restore
one: an organization's admin gets 403.

* The backup is written to an anonymous temporary file (created, then unlinked while
  open) and streamed from it with `FileResponse`, so memory stays flat whatever the
  size and nothing is left on disk, even if the client goes away.
* The upload is received by `pki_project.middleware.body` before anything parses it
  (`@takes_upload`): only for a global admin, only with a declared length within
  `PKI_BACKUP_MAX_UPLOAD_BYTES` (5 GB by default), streamed by `BoundedUploadHandler` to
  the private `PKI_UPLOAD_DIR` and cut at the bound (413); anyone else's body is never read.

Answers: JSON for API clients (`{"restored": {...}}`, or `{"error": {"code",
"message"}}` with 400/413), a redirect to the toolbox with a message for the form.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from backups.errors import BackupError
from backups.services import backup_filename, create_backup, restore_backup
from backups.validation import limit
from pki_project.actor import Actor
from pki_project.errors import json_error, page_error, wants_json
from pki_project.tempfiles import new_upload_file
from pki_project.uploads import PrivateUploadHandler, takes_upload

logger = logging.getLogger(__name__)
UPLOAD_FIELD = "backup"
RESULT_PAGE = "/toolbox"
GLOBAL_ADMIN_ONLY = "Only a global administrator may back up or restore the whole PKI."


def _is_global_admin(principal) -> bool:
    return principal is not None and principal.is_global_admin


def _refuse_unless_global_admin(request: HttpRequest) -> HttpResponse | None:
    if _is_global_admin(getattr(request, "principal", None)):
        return None
    if wants_json(request):
        return json_error(403, "permission_denied", GLOBAL_ADMIN_ONLY)
    return page_error(request, 403, GLOBAL_ADMIN_ONLY)


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


class BoundedUploadHandler(PrivateUploadHandler):
    """Streams the archive to PKI_UPLOAD_DIR and stops it once it exceeds PKI_BACKUP_MAX_UPLOAD_BYTES."""

    @classmethod
    def maximum_bytes(cls) -> int:
        return limit("PKI_BACKUP_MAX_UPLOAD_BYTES")


@takes_upload(handler=BoundedUploadHandler, may_upload=_is_global_admin, refusal=GLOBAL_ADMIN_ONLY)
@require_POST
def restore_database(request: HttpRequest) -> HttpResponse:
    refusal = _refuse_unless_global_admin(request)
    if refusal is not None:
        return refusal
    upload = request.FILES.get(UPLOAD_FIELD)  # already received, bounded, by pki_project.middleware.body
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


@contextlib.contextmanager
def _on_disk(upload):
    """The uploaded file's path: its file in PKI_UPLOAD_DIR, or a copy there made in chunks if it was in memory."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        upload.close()
        return
    with new_upload_file(settings.PKI_UPLOAD_DIR) as sink:
        for chunk in upload.chunks():
            sink.write(chunk)
        sink.flush()
        yield Path(sink.name)


def _error(request: HttpRequest, error: BackupError, page: str) -> HttpResponse:
    logger.warning("Backup/restore refused (%s): %s", error.code, error.message)
    if wants_json(request):
        return json_error(getattr(error, "status", 400), error.code, error.message)
    messages.error(request, error.message if request.method == "GET" else f"{error.message} Nothing was changed.")
    return HttpResponseRedirect(page)

