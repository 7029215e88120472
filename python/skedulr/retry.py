"""Retry policies: how many retries a task gets and how long each waits. Delays come from the Rust core."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import _core
from .errors import InvalidOptionError


def _ms(name: str, seconds: float) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise InvalidOptionError(f"{name} must be a finite number of seconds, not {seconds!r}")
    if seconds < 0:
        raise InvalidOptionError(f"{name} must not be negative (got {seconds})")
    return round(seconds * 1000)


def _retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidOptionError(f"max_retries must be an int >= 0, not {max_retries!r}")
    if max_retries > _core.MAX_RETRIES:
        raise InvalidOptionError(f"max_retries {max_retries} is too large: use 0 to {_core.MAX_RETRIES}")
    return max_retries


@dataclass(frozen=True)
class RetryPolicy:
    """Base of the policies: `max_retries` retries after the first attempt, spaced by `delay_ms`."""

    max_retries: int
    _policy: _core.RetryPolicy = field(init=False, repr=False, compare=False)

    def delay_ms(self, retry: int, task_id: str) -> int:
        """Delay before retry number `retry` (1 = the first retry); jitter is salted by the task id."""
        return self._policy.delay_ms(retry, _core.salt_of(task_id))


@dataclass(frozen=True)
class ExponentialBackoff(RetryPolicy):
    """base * 2**(retry-1) seconds, at most `cap`; `jitter` (0..1) spreads each delay by ±jitter
    without ever passing the cap. `seed` makes the jitter reproducible."""

    max_retries: int = 3
    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        _retries(self.max_retries)
        policy = _core.RetryPolicy.exponential(_ms("base", self.base), _ms("cap", self.cap), self.jitter, self.seed)
        object.__setattr__(self, "_policy", policy)


@dataclass(frozen=True)
class ConstantBackoff(RetryPolicy):
    """The same `delay` seconds before every retry."""

    max_retries: int = 3
    delay: float = 1.0

    def __post_init__(self) -> None:
        _retries(self.max_retries)
        object.__setattr__(self, "_policy", _core.RetryPolicy.constant(_ms("delay", self.delay)))


@dataclass(frozen=True)
class LinearBackoff(RetryPolicy):
    """base + step*(retry-1) seconds, at most `cap`."""

    max_retries: int = 3
    base: float = 1.0
    step: float = 1.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        _retries(self.max_retries)
        policy = _core.RetryPolicy.linear(_ms("base", self.base), _ms("step", self.step), _ms("cap", self.cap))
        object.__setattr__(self, "_policy", policy)


def NoRetry() -> ConstantBackoff:  # noqa: N802 - reads as a policy name
    """A policy that never retries: the first failure makes the task dead."""
    return ConstantBackoff(max_retries=0, delay=0)
