"""What a scheduler reports about itself and its storage: pool and scheduler statistics, stored
schedules, and the instances that heartbeat into the storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One pool: its size, attempts running here, whether it is paused, and its tasks by status."""

    name: str
    size: int
    running: int
    paused: bool
    counts: dict[str, int]  # status -> tasks of this pool in the storage
    prefetched: int = 0  # tasks claimed here ahead of a free runner (while the pool's jobs are short)


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Everything `Scheduler.stats()` reports: per pool, totals by status, and this scheduler's counters."""

    pools: dict[str, PoolStats]
    counts: dict[str, int]  # status -> tasks in the storage, all pools
    running: int  # attempts running in this scheduler
    succeeded: int  # attempts that succeeded in this scheduler since it was created
    failed: int  # attempts that failed (each retry counts)
    paused: bool


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """A scheduler process that heartbeats into the storage (`Scheduler.instances()`)."""

    id: str
    host: str
    pid: int
    pools: dict[str, int]  # pool -> size
    running: int
    started_at: datetime
    last_beat: datetime

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> InstanceInfo:
        pools = dict(p.rsplit(":", 1) for p in f.get("pools", "").split(",") if ":" in p)

        def when(field: str) -> datetime:
            return datetime.fromtimestamp(int(f.get(field, "0")) / 1000, tz=UTC)

        return cls(f["id"], f.get("host", "?"), int(f.get("pid", "0")), {k: int(v) for k, v in pools.items()},
                   int(f.get("running", "0")), when("started_ms"), when("beat_ms"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A stored recurring schedule and what it has done (`Scheduler.list_schedules()`)."""

    id: str
    kind: str  # "cron" or "every"
    every: str  # "spec|tz" for cron, milliseconds for every
    name: str
    pool: str
    skip_if_running: bool
    next_fire_ms: int | None
    last_fire_ms: int | None
    last_task: str | None
    fired: int
    skipped: int
