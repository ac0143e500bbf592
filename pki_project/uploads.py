"""Which views take files, and how an authorized upload reaches the disk.

Views say what bodies they take; `pki_project.middleware.body` enforces it before anything
parses a body:

* no mark: no multipart/form-data at all (415), and a body of at most
  `PKI_MAX_REQUEST_BYTES`, read into memory;
* `@takes_files`: a form with a small file field (the issuance page's CSR, the decoder's
  certificate): multipart accepted, within the same bound, parsed in memory;
* `@answers_oversized_bodies(n)`: the view refuses a body over `n` bytes itself, unread, in
  its own protocol (the OCSP responder's malformedRequest);
* `@takes_upload(...)`: the one view that receives a large file (the restore). Its body is
  read only for a caller the policy admits (an authenticated global admin), after
  authentication and RBAC, and streamed by the policy's handler to `PKI_UPLOAD_DIR`
  (0700) under its own bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, MemoryFileUploadHandler, StopUpload

from organizations.principal import Principal
from pki_project.tempfiles import new_upload_file

View = TypeVar("View", bound=Callable)


@dataclass(frozen=True)
class UploadPolicy:
    handler: type[PrivateUploadHandler]  # streams the files of the body to disk, bounded
    may_upload: Callable[[Principal | None], bool]  # decided before a byte of the body is read
    refusal: str  # what a caller the policy does not admit reads (403)


def takes_files(view: View) -> View:
    """The view's form has a small file field: multipart is fine, within PKI_MAX_REQUEST_BYTES."""
    view.takes_files = True
    return view


def takes_upload(*, handler: type[PrivateUploadHandler], may_upload: Callable[[Principal | None], bool],
                 refusal: str) -> Callable[[View], View]:
    """The view receives a large file: read only for callers `may_upload` admits, streamed by `handler`."""
    def mark(view: View) -> View:
        view.upload_policy = UploadPolicy(handler=handler, may_upload=may_upload, refusal=refusal)
        return view

    return mark


def answers_oversized_bodies(max_bytes: int) -> Callable[[View], View]:
    """The view refuses a body over `max_bytes` itself, by its declared length and without reading it, in its own
    protocol: the OCSP responder answers malformedRequest (RFC 6960 section 2.3), not an HTTP error page. The
    middleware then hands it such a body unread (and closes the connection after the answer)."""
    def mark(view: View) -> View:
        view.own_body_limit = max_bytes
        return view

    return mark


def own_body_limit_of(view: Callable) -> int | None:
    return getattr(view, "own_body_limit", None)


def upload_policy_of(view: Callable) -> UploadPolicy | None:
    return getattr(view, "upload_policy", None)


def view_takes_files(view: Callable) -> bool:
    return bool(getattr(view, "takes_files", False)) or upload_policy_of(view) is not None


class PrivateUploadedFile(UploadedFile):
    """An uploaded file in PKI_UPLOAD_DIR, named after the process writing it; removed when closed."""

    def __init__(self, name: str, content_type: str, size: int, charset: str | None,
                 content_type_extra: dict | None = None) -> None:
        file = new_upload_file(settings.PKI_UPLOAD_DIR)
        super().__init__(file, name, content_type, size, charset, content_type_extra)

    def temporary_file_path(self) -> str:
        return self.file.name

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):  # moved or removed meanwhile
            self.file.close()


class PrivateUploadHandler(FileUploadHandler):
    """Streams every file of the body to PKI_UPLOAD_DIR and stops the upload past `maximum_bytes()`.

    The body middleware already refused a declared length over the bound; this counts what
    actually arrives, so no file on disk ever grows past it.
    """

    limit_setting = "PKI_MAX_REQUEST_BYTES"

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.maximum = self.maximum_bytes()
        self.received = 0
        self.exceeded = False

    @classmethod
    def maximum_bytes(cls) -> int:
        return int(getattr(settings, cls.limit_setting))

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.file = PrivateUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.maximum:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            self.file.close()  # a NamedTemporaryFile: closing removes it


class InMemoryUploadHandler(MemoryFileUploadHandler):
    """The files of a small form: the whole body is already in memory (at most PKI_MAX_REQUEST_BYTES),
    so its files stay there too, whatever FILE_UPLOAD_MAX_MEMORY_SIZE says; nothing touches the disk."""

    def handle_raw_input(self, input_data, meta, content_length, boundary, encoding=None) -> None:
        self.activated = True
