"""`JobContext`: what a job receives about the attempt it runs."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError

if TYPE_CHECKING:
    from .scheduler import Scheduler


class JobContext:
    """The task being run: id, payload, attempt number (1 for the first), and ways to report back.

    Sync jobs run in a thread and cannot be interrupted: they should check `cancelled` now and then
    and return early once it is true (after a timeout, a cancel, a shutdown, or when the lease could not
    be renewed). What a job returns after that does not count as its outcome.
    """

    __slots__ = (
        "_cancelled",
        "_deadline",
        "_handle",
        "_progress",
        "_token",
        "attempt",
        "name",
        "payload",
        "pool",
        "priority",
        "scheduler",
        "task_id",
    )  # fmt: skip

    def __init__(
        self,
        scheduler: Scheduler,
        handle: Any,
        token: int,
        task_id: str,
        name: str,
        payload: bytes,
        attempt: int,
        pool: str,
        priority: int,
        deadline: float | None,
    ) -> None:
        self.scheduler = scheduler
        self._handle = handle
        self._token = token
        self.task_id = task_id
        self.name = name
        self.payload = payload
        self.attempt = attempt
        self.pool = pool
        self.priority = priority
        self._deadline = deadline
        self._cancelled = False

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)

    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode()

    def report_progress(self, fraction: float) -> None:
        """Records progress from 0.0 to 1.0; visible in `get()` and the dashboard. Safe from threads."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
            raise InvalidOptionError(f"progress must be a number from 0 to 1, not {fraction!r}")
        self.scheduler._record_progress(self._handle, self._token, min(1.0, max(0.0, float(fraction))))

    @property
    def deadline(self) -> float | None:
        """When this attempt times out, in `time.monotonic()` seconds, or None."""
        return self._deadline

    @property
    def cancelled(self) -> bool:
        """True once the attempt was cancelled or ran past its deadline: a sync job should stop."""
        return self._cancelled or (self._deadline is not None and time.monotonic() >= self._deadline)

    def __repr__(self) -> str:
        return f"<JobContext {self.name} id={self.task_id} attempt={self.attempt} pool={self.pool}>"
