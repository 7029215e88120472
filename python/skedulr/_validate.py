"""Checks of user-given durations and counts, shared by every public entry point, so the same bad value
gets the same `InvalidOptionError` wherever it is passed."""

from __future__ import annotations

import math

from .errors import InvalidOptionError

# Longest duration anywhere (timeouts, delays, intervals): ten years, far inside the storage's ms range.
MAX_SECONDS = 10 * 365 * 24 * 3600


def seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """A finite, non-negative (or positive) number of seconds up to MAX_SECONDS."""
    wanted = "a number of seconds >= 0" if allow_zero else "a positive number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be {wanted}, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidOptionError(f"{name} must be {wanted}, not {value!r}")
    if value > MAX_SECONDS:
        raise InvalidOptionError(f"{name} of {value} s is over the {MAX_SECONDS} s (ten years) limit")
    return float(value)


def optional_seconds(name: str, value: object, *, allow_zero: bool = True) -> float | None:
    return None if value is None else seconds(name, value, allow_zero=allow_zero)


def count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOptionError(f"{name} must be an int from {low} to {high}, not {value!r}")
    return value


def text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidOptionError(f"{name} must be a str, not {type(value).__name__}")
    return value
