"""Every error skedulr raises or records, in one hierarchy.

SkedulrError
├── InvalidTaskError (ValueError)        bad input, refused at submit or at registration
│   ├── InvalidNameError                 a name, id, key or pool outside the safe alphabet
│   ├── InvalidOptionError               priority, timeout, delay, retries, payload size out of range
│   ├── InvalidCronError                 a cron spec that does not parse or never fires
│   ├── InvalidTimeZoneError             not an IANA time zone name
│   ├── UnknownJobError (LookupError)    no job registered under that name
│   ├── UnknownPoolError (LookupError)   no pool with that name
│   ├── DuplicateTaskError               a task with that id exists already
│   └── DagError
│       ├── UnknownParentError           a parent id that does not exist
│       └── CycleError                   edges that would form a cycle
├── TaskNotFoundError (LookupError)      no task with that id (never existed, or purged)
├── ScheduleNotFoundError (LookupError)
├── InvalidStateError                    the task is not in a state the operation applies to
├── SchedulerNotRunningError             the operation needs a running scheduler
├── StorageError                         the storage could not be reached or answered nonsense
└── JobError                             how an attempt failed (recorded on the task, never raised to you)
    ├── JobTimeoutError (TimeoutError)   the attempt ran past its timeout
    ├── JobBlockedError                  an async job held the event loop without yielding
    ├── LeaseLostError                   the worker lost the task's lease (another worker may run it)
    ├── ResultNotSerializableError       the job returned something that is not bytes, str or JSON
    └── PermanentError                   raise it (or a subclass) from a job: no retries, straight to dead

Jobs may raise anything; `PermanentError` and the types in `Scheduler(permanent_errors=...)` skip retries.
"""

from __future__ import annotations

__all__ = [
    "CycleError",
    "DagError",
    "DuplicateTaskError",
    "InvalidCronError",
    "InvalidNameError",
    "InvalidOptionError",
    "InvalidStateError",
    "InvalidTaskError",
    "InvalidTimeZoneError",
    "JobBlockedError",
    "JobError",
    "JobTimeoutError",
    "LeaseLostError",
    "PermanentError",
    "ResultNotSerializableError",
    "ScheduleNotFoundError",
    "SchedulerNotRunningError",
    "SkedulrError",
    "StorageError",
    "TaskNotFoundError",
    "UnknownJobError",
    "UnknownParentError",
    "UnknownPoolError",
]


class SkedulrError(Exception):
    """Base class of every skedulr error."""


class InvalidTaskError(SkedulrError, ValueError):
    """Bad input, refused before anything was stored."""


class InvalidNameError(InvalidTaskError):
    """A job name, task id, key or pool name outside the documented alphabet or length."""


class InvalidOptionError(InvalidTaskError):
    """An option out of range: priority, timeout, delay, retries, payload size."""


class InvalidCronError(InvalidTaskError):
    """A cron expression that cannot be parsed or can never fire."""


class InvalidTimeZoneError(InvalidTaskError):
    """A time zone name that is not in the IANA database."""


class UnknownJobError(InvalidTaskError, LookupError):
    """No job is registered under this name."""


class UnknownPoolError(InvalidTaskError, LookupError):
    """No pool has this name."""


class DuplicateTaskError(InvalidTaskError):
    """A task with this id already exists."""


class DagError(InvalidTaskError):
    """DAG edges that cannot be stored."""


class UnknownParentError(DagError):
    """A parent task that does not exist."""


class CycleError(DagError):
    """Edges that would make a task (indirectly) wait for itself."""


class TaskNotFoundError(SkedulrError, LookupError):
    """No task with this id: it never existed, or it ended and was purged after its retention."""


class ScheduleNotFoundError(SkedulrError, LookupError):
    """No schedule with this id."""


class InvalidStateError(SkedulrError):
    """The task is not in a state the operation applies to (e.g. resubmitting a task that is not dead)."""


class SchedulerNotRunningError(SkedulrError):
    """The operation needs a running scheduler: use `async with scheduler:` or `nursery.start(scheduler.run)`."""


class StorageError(SkedulrError):
    """The storage could not be reached, or answered something skedulr cannot read."""


class JobError(SkedulrError):
    """How an attempt failed. Recorded on the task (error text and traceback), not raised to callers."""


class JobTimeoutError(JobError, TimeoutError):
    """The attempt ran longer than the task's timeout."""


class JobBlockedError(JobError):
    """An async job ran without yielding to the event loop for too long, stalling every other job."""


class LeaseLostError(JobError):
    """This worker lost the task's lease; another worker may be running it now."""


class ResultNotSerializableError(JobError):
    """The job returned a value that is not bytes, str or JSON-serialisable."""


class PermanentError(JobError):
    """Raise from a job to fail the task without retries: it goes straight to the dead letter queue."""
