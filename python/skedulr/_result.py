"""A job's return value as stored bytes, and back. One tag byte says how to read the rest; never pickle."""

from __future__ import annotations

import json
from typing import Any

from .errors import ResultNotSerializableError

_BYTES, _TEXT, _JSON = b"b", b"s", b"j"


def encode_result(value: object) -> bytes | None:
    """None stays None (no result); bytes and str are kept as they are; anything else must be JSON."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _BYTES + bytes(value)
    if isinstance(value, str):
        return _TEXT + value.encode()
    try:
        return _JSON + json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise ResultNotSerializableError(
            f"job returned a {type(value).__name__}, which is not bytes, str or JSON-serialisable: {e}"
        ) from None


def decode_result(stored: bytes | None) -> Any:
    if not stored:
        return None
    tag, body = stored[:1], stored[1:]
    if tag == _BYTES:
        return body
    if tag == _TEXT:
        return body.decode()
    if tag == _JSON:
        return json.loads(body)
    raise ValueError(f"unknown result encoding {tag!r}")
