"""Middleware: code that runs around every attempt (logging, metrics, tracing).

Subclass `Middleware` and override what you need; register with `scheduler.use(m)`. The first
registered is the outermost: its `before_attempt` runs first and its `after_attempt` last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .context import JobContext


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How an attempt ended: `status` is "succeeded", "failed" or "cancelled"."""

    status: str
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0


class Middleware:
    """Base class of middleware; override `before_attempt` and/or `after_attempt`."""

    async def before_attempt(self, ctx: JobContext) -> None:
        """Runs before the job. Raising here fails the attempt with that error."""

    async def after_attempt(self, ctx: JobContext, outcome: AttemptOutcome) -> None:
        """Runs after the job, whatever happened. Errors here are logged and otherwise ignored."""
