"""Relative artifact paths: the only form in which the database refers to a file.

A relative path is part of every artifact's associated data, so it must have one
canonical spelling on every OS (POSIX separators, no ``.`` segments, no doubled
slashes) or a backup restored elsewhere would fail to decrypt. It is also an
input that may come from the database, so anything that could escape
``PKI_DATA_DIR`` (``..``, absolute paths, drive letters, backslashes, NUL) is
rejected rather than "cleaned".
"""

from __future__ import annotations

import re

from .errors import InvalidArtifactPath

__all__ = [
    "ARTIFACT_SUFFIXES",
    "PASSWORD_FILENAME",
    "TEMP_PREFIX",
    "is_artifact_name",
    "join_relpath",
    "normalize_relpath",
    "validate_artifact_relpath",
]

#: Suffixes of files that hold a sealed artifact.
ARTIFACT_SUFFIXES: tuple[str, ...] = (".pem.enc", ".p12.enc")
#: A CA's system password file (the whole basename, not a suffix).
PASSWORD_FILENAME = ".pwd.enc"  # noqa: S105 - a file name, not a password
#: Prefix of in-flight temporary files; such names are never artifacts.
TEMP_PREFIX = ".vault-tmp-"

_MAX_RELPATH_LENGTH = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def normalize_relpath(relpath: str) -> str:
    """Return the canonical POSIX spelling of a relative path, or raise ``InvalidArtifactPath``.

    Only harmless spelling variants are normalised (``./a//b`` -> ``a/b``); anything
    that could change *which* file is meant is refused.
    """
    if not isinstance(relpath, str):
        raise InvalidArtifactPath("An artifact path must be a string.")
    if not relpath or len(relpath) > _MAX_RELPATH_LENGTH:
        raise InvalidArtifactPath(f"An artifact path must have 1 to {_MAX_RELPATH_LENGTH} characters.")
    if _CONTROL_CHARS.search(relpath):
        raise InvalidArtifactPath("An artifact path must not contain NUL or control characters.")
    if "\\" in relpath:
        raise InvalidArtifactPath(f"An artifact path must use POSIX separators, not backslashes: {relpath!r}.")
    if relpath.startswith("/") or _DRIVE.match(relpath):
        raise InvalidArtifactPath(f"An artifact path must be relative: {relpath!r}.")
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArtifactPath(f"An artifact path must not contain '..': {relpath!r}.")
    if not parts:
        raise InvalidArtifactPath(f"An artifact path must name a file: {relpath!r}.")
    return "/".join(parts)


def is_artifact_name(basename: str) -> bool:
    """True for ``<name>.pem.enc``, ``<name>.p12.enc`` or exactly ``.pwd.enc`` (never a temp file)."""
    if basename.startswith(TEMP_PREFIX):
        return False
    if basename == PASSWORD_FILENAME:
        return True
    return any(basename.endswith(suffix) and len(basename) > len(suffix) for suffix in ARTIFACT_SUFFIXES)


def validate_artifact_relpath(relpath: str) -> str:
    """Normalise ``relpath`` and require an artifact file name; return the canonical form."""
    canonical = normalize_relpath(relpath)
    basename = canonical.rsplit("/", 1)[-1]
    if not is_artifact_name(basename):
        raise InvalidArtifactPath(
            f"An artifact file name must end in {' or '.join(ARTIFACT_SUFFIXES)} "
            f"or be {PASSWORD_FILENAME}: {relpath!r}."
        )
    return canonical


def join_relpath(directory: str, name: str) -> str:
    """Join a relative directory and a file name into a canonical relative path."""
    return normalize_relpath(f"{normalize_relpath(directory)}/{name}")
