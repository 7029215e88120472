"""The job registry: names mapped to user functions, with the per-job defaults they were registered with."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _core, _validate
from .errors import InvalidOptionError, UnknownJobError
from .retry import RetryPolicy

JobFunction = Callable[..., Any]


def _is_async(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)  # an async callable object


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    fn: JobFunction
    is_async: bool
    retry: RetryPolicy | None
    timeout: float | None


class JobRegistry:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(self, name: str, fn: JobFunction, retry: RetryPolicy | None, timeout: float | None) -> Job:
        _core.validate_name("job name", name)
        if not callable(fn):
            raise InvalidOptionError(f"job {name!r} must be a function, not {type(fn).__name__}")
        timeout = _validate.optional_seconds(f"job {name!r}: timeout", timeout, allow_zero=False)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidOptionError(f"job {name!r}: retry must be a skedulr retry policy, not {retry!r}")
        job = Job(name, fn, _is_async(fn), retry, timeout)
        self._jobs[name] = job
        return job

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def require(self, name: str) -> Job:
        job = self._jobs.get(name)
        if job is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise UnknownJobError(f"no job registered as {name!r} (registered: {known}); use @scheduler.job({name!r})")
        return job

    def __len__(self) -> int:
        return len(self._jobs)
