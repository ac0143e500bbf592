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

The restore takes two requests (see `restore_database`): the upload answers a preview (JSON
`{"preview", "pending", "confirmation_phrase"}`, or a page with the preview and a confirmation
form), the confirmation restores (`{"restored": {...}}`, or a redirect to the toolbox with a
message). Refusals: `{"error": {"code", "message"}}` with 400/413, a message on the toolbox;
a confirmation that no longer matches the live data answers 409 with the new preview.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from backups import pending
from backups.errors import BackupError
from backups.preview import AUDIT_DIVERGED, RestorePreview
from backups.services import backup_filename, create_backup, preview_restore, restore_backup
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
    """Two steps: an upload answers a preview (nothing changes); a confirmation of that preview restores.

    Step 1, multipart field `backup`: the archive is validated completely and compared with the
    live data; the answer is the preview and a `pending` token. Step 2, fields `pending`,
    `confirmation` (the phrase the preview asked for) and, for a diverged audit trail,
    `replace_audit_trail` (a form, or a JSON body): the restore runs, refused if the live data
    changed since the preview.
    """
    refusal = _refuse_unless_global_admin(request)
    if refusal is not None:
        return refusal
    try:
        fields, upload = _read_body(request)
    except BackupError as error:
        return _error(request, error, RESULT_PAGE)
    if "pending" in fields:
        return _confirm(request, fields)
    if upload is None:
        return _error(request, BackupError(f"Send the backup archive as the multipart field '{UPLOAD_FIELD}'.",
                                           code="no_file"), RESULT_PAGE)
    return _preview_upload(request, upload)


CONFIRMATION_FIELDS = ("pending", "confirmation", "replace_audit_trail", "cancel")


def _read_body(request: HttpRequest):
    """(the confirmation fields present, the uploaded archive or None)."""
    if request.META.get("CONTENT_TYPE", "").startswith("application/json"):
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise BackupError("The body must be a JSON object with 'pending' and 'confirmation'.", code="invalid")
        return _confirmation_fields(data), None
    upload = request.FILES.get(UPLOAD_FIELD)  # already received, bounded, by pki_project.middleware.body
    return _confirmation_fields(request.POST), upload


def _confirmation_fields(data) -> dict[str, str]:
    return {name: str(data.get(name) or "") for name in CONFIRMATION_FIELDS if name in data}


def _preview_upload(request: HttpRequest, upload) -> HttpResponse:
    with _on_disk(upload) as path:
        try:
            preview = preview_restore(path, Actor.from_request(request))
        except BackupError as error:
            return _error(request, error, RESULT_PAGE)
        waiting = pending.stash(path, user_id=request.principal.user_id, digest=preview.digest,
                                confirmation_phrase=preview.confirmation_phrase, audit_trail=preview.audit_trail)
    return _preview_response(request, preview, waiting)


def _preview_response(request: HttpRequest, preview: RestorePreview, waiting: pending.PendingRestore, *,
                      error: str = "", code: str = "", status: int = 200) -> HttpResponse:
    if wants_json(request):
        body = {"preview": preview.as_dict(), "pending": waiting.token,
                "confirmation_phrase": preview.confirmation_phrase}
        if error:
            body["error"] = {"code": code, "message": error}
        return JsonResponse(body, status=status)
    from certificates.views import render_page

    return render_page(request, "pki/restore_preview.html", {
        "preview": preview, "pending": waiting.token, "diverged": preview.audit_trail == AUDIT_DIVERGED,
        "error": error}, status=status)


def _confirm(request: HttpRequest, fields: dict[str, str]) -> HttpResponse:
    try:
        waiting = pending.take(fields["pending"], user_id=request.principal.user_id)
    except BackupError as error:
        return _error(request, error, RESULT_PAGE)
    fields.setdefault("confirmation", "")
    if fields.get("cancel"):
        pending.discard(waiting)
        if wants_json(request):
            return JsonResponse({"cancelled": True})
        messages.info(request, "Restore cancelled; nothing was changed.")
        return HttpResponseRedirect(RESULT_PAGE)
    if not hmac.compare_digest(fields["confirmation"].strip(), waiting.confirmation_phrase):
        return _refused_confirmation(request, waiting)
    replace = fields.get("replace_audit_trail", "").lower() in ("1", "true", "on", "yes")
    try:
        report = restore_backup(waiting.archive, Actor.from_request(request), expected_digest=waiting.digest,
                                replace_audit_trail=replace)
    except BackupError as error:
        if error.code in ("preview_changed", "audit_trail_diverged"):
            return _preview_again(request, waiting, error)
        pending.discard(waiting)
        return _error(request, error, RESULT_PAGE)
    pending.discard(waiting)
    if wants_json(request):
        return JsonResponse({"restored": report.as_dict()})
    messages.success(request, f"Backup restored: {report.rows} rows and {report.artifacts} artifacts from the "
                              f"backup of {report.source_created_at or 'an unknown date'}; "
                              f"{report.preview.revocations_total} revocations carried forward, audit trail "
                              f"{report.audit_trail}.")
    for warning in report.warnings:
        messages.warning(request, warning)
    return HttpResponseRedirect(RESULT_PAGE)


def _refused_confirmation(request: HttpRequest, waiting: pending.PendingRestore) -> HttpResponse:
    message = f"Type exactly “{waiting.confirmation_phrase}” to confirm. Nothing was changed."
    return _preview_again(request, waiting, BackupError(message, code="confirmation_mismatch"), status=400)


def _preview_again(request: HttpRequest, waiting: pending.PendingRestore, error: BackupError, *,
                   status: int = 409) -> HttpResponse:
    """Show the preview again (recomputed: the live data may have moved on), with why it was not restored."""
    try:
        preview = preview_restore(waiting.archive, Actor.from_request(request))
    except BackupError as again:
        pending.discard(waiting)
        return _error(request, again, RESULT_PAGE)
    archive = waiting.archive.with_name(waiting.archive.name + ".again")
    waiting.archive.replace(archive)
    pending.discard(waiting)
    renewed = pending.stash(archive, user_id=request.principal.user_id, digest=preview.digest,
                            confirmation_phrase=preview.confirmation_phrase, audit_trail=preview.audit_trail)
    return _preview_response(request, preview, renewed, error=error.message, code=error.code, status=status)


@contextlib.contextmanager
def _on_disk(upload):
    """The uploaded file's path: its file in PKI_UPLOAD_DIR, or a copy there made in chunks if it was in memory."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        upload.close()
        return
    sink = new_upload_file(settings.PKI_UPLOAD_DIR)
    try:
        for chunk in upload.chunks():
            sink.write(chunk)
        sink.flush()
        yield Path(sink.name)
    finally:
        with contextlib.suppress(FileNotFoundError):  # moved aside to wait for its confirmation
            sink.close()


def _error(request: HttpRequest, error: BackupError, page: str) -> HttpResponse:
    logger.warning("Backup/restore refused (%s): %s", error.code, error.message)
    if wants_json(request):
        return json_error(getattr(error, "status", 400), error.code, error.message)
    messages.error(request, error.message if request.method == "GET" else f"{error.message} Nothing was changed.")
    return HttpResponseRedirect(page)

