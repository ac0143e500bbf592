"""Session JWTs: HS256 only, signed with `PKI_JWT_SECRET`.

Claims: `sub` (user id, a string), `role`, `org` (organization id or null for a global
admin), `iat`, `nbf`, `exp`, `jti`. Nothing secret goes into a token. Decoding accepts
HS256 and nothing else: `alg: none`, RS/ES/PS algorithms, an expired or not-yet-valid
token, a wrong signature or a missing claim all raise `InvalidToken`.
"""

from __future__ import annotations

from datetime import datetime

import jwt
from django.conf import settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "role", "iat", "nbf", "exp", "jti"]


class InvalidToken(Exception):
    """The token is not one this installation issued, or it is no longer valid."""


def encode_session_token(
    *, user_id: int, role: str, organization_id: int | None, jti: str, issued_at: datetime, expires_at: datetime
) -> str:
    issued = int(issued_at.timestamp())
    claims = {
        "sub": str(user_id),
        "role": role,
        "org": organization_id,
        "iat": issued,
        "nbf": issued,
        "exp": int(expires_at.timestamp()),
        "jti": jti,
    }
    return jwt.encode(claims, settings.PKI_JWT_SECRET, algorithm=ALGORITHM)


def decode_session_token(token: str) -> dict:
    """Verify signature, algorithm and times; return the claims or raise `InvalidToken`."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        claims = jwt.decode(
            token,
            settings.PKI_JWT_SECRET,
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(type(error).__name__) from None
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise InvalidToken("bad jti")
    if not str(claims.get("sub", "")).isdigit():
        raise InvalidToken("bad sub")
    return claims
