"""API key format, generation and hashing. No database, no Django settings.

A key reads `pki_<prefix>_<secret>`:

* `prefix`: 12 lower-case hex characters (48 random bits), unique, stored in clear
  and shown in the admin and the audit log. It is a lookup id, not a secret.
* `secret`: 43 URL-safe characters carrying 256 random bits.

Only the SHA-256 of the whole key is stored. A slow password KDF (PBKDF2, scrypt)
exists to make guessing *low-entropy* passwords expensive; a 256-bit random secret
cannot be guessed at any hash speed, so a fast hash loses nothing and keeps every
API request cheap. Comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_SCHEME = "pki"
PREFIX_BYTES = 6
SECRET_BYTES = 32
_KEY_PATTERN = re.compile(r"^pki_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
# A hash of nothing in particular, compared against when no key has the prefix, so an
# unknown prefix costs the same work as a wrong secret.
DUMMY_HASH = hashlib.sha256(b"pki-dummy-key").hexdigest()


@dataclass(frozen=True)
class GeneratedKey:
    prefix: str
    key: str  # the full key: shown once, never stored
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> GeneratedKey:
    prefix = secrets.token_hex(PREFIX_BYTES)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return GeneratedKey(prefix=prefix, key=key, key_hash=hash_key(key))


def looks_like_api_key(value: str) -> bool:
    """True for anything shaped like an API key (as opposed to a JWT)."""
    return value.startswith(f"{KEY_SCHEME}_")


def parse_prefix(value: str) -> str | None:
    """The prefix of a well-formed key, or None. Never raises."""
    match = _KEY_PATTERN.match(value or "")
    return match.group("prefix") if match else None


def hash_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
