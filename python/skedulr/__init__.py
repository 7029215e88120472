"""skedulr: a Rust-accelerated background task scheduler for Trio programs.

Priorities, named worker pools, retries with backoff and a dead letter queue, idempotency keys, DAG
triggers, delayed and cron tasks, graceful shutdown; embedded (`MemoryStorage`) or shared through Redis.
"""

from . import errors
from .client import Client
from .context import JobContext
from .middleware import AttemptOutcome, Middleware
from .retry import ConstantBackoff, ExponentialBackoff, LinearBackoff, NoRetry, RetryPolicy
from .scheduler import Scheduler
from .stats import InstanceInfo, PoolStats, ScheduleInfo, SchedulerStats
from .storage import MemoryStorage, Storage
from .storage.redis import RedisStorage
from .task import Task, TaskInfo, TaskPage, TaskStatus

__version__ = "0.1.0"

__all__ = [
    "AttemptOutcome",
    "Client",
    "ConstantBackoff",
    "ExponentialBackoff",
    "InstanceInfo",
    "JobContext",
    "LinearBackoff",
    "MemoryStorage",
    "Middleware",
    "NoRetry",
    "PoolStats",
    "RedisStorage",
    "RetryPolicy",
    "ScheduleInfo",
    "Scheduler",
    "SchedulerStats",
    "Storage",
    "Task",
    "TaskInfo",
    "TaskPage",
    "TaskStatus",
    "__version__",
    "errors",
]
