"""Certificate serial numbers (RFC 5280 4.1.2.2, CA/B Forum BR 7.1)."""

from __future__ import annotations

import re
import secrets

from .errors import InvalidRequestError

#: Bits of randomness in a serial: 159, so that the positive INTEGER always
#: DER-encodes in at most 20 octets (RFC 5280 4.1.2.2) while comfortably
#: exceeding the 64 bits of CSPRNG output BR 7.1 requires.
SERIAL_BITS = 159
MAX_SERIAL = (1 << SERIAL_BITS) - 1

_HEX_RE = re.compile(r"[0-9a-f]+")


def random_serial() -> int:
    """Return a random positive serial of up to 159 bits (never zero)."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial


def serial_to_hex(serial: int) -> str:
    """Format ``serial`` as lowercase hex of even length without separators."""
    if serial <= 0:
        raise ValueError("serial numbers are positive integers")
    text = format(serial, "x")
    return text if len(text) % 2 == 0 else f"0{text}"


def serial_from_hex(text: str) -> int:
    """Parse a hex serial as shown by browsers or OpenSSL (colons, any case).

    Raises :class:`InvalidRequestError` (code ``serial_invalid``) for anything
    but 1 to 20 octets of hex digits encoding a positive number.
    """
    if not isinstance(text, str):
        raise InvalidRequestError("serial must be a hex string", code="serial_invalid")
    cleaned = text.strip().replace(":", "").replace(" ", "").lower()
    if not _HEX_RE.fullmatch(cleaned) or len(cleaned) > 42:
        raise InvalidRequestError("serial must be hexadecimal (up to 20 octets)", code="serial_invalid")
    serial = int(cleaned, 16)
    if serial == 0 or serial.bit_length() > 160:
        raise InvalidRequestError("serial must be a positive number of at most 20 octets", code="serial_invalid")
    return serial
