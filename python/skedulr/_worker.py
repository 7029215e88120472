"""`skedulr worker module:attribute`: runs the `Scheduler` a user module defines, until a signal.

The first SIGINT or SIGTERM shuts down gracefully (stop claiming, let running jobs finish within the
grace period, hand the rest back); a second one cancels at once (running tasks are handed back too).
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import trio

from .errors import InvalidOptionError
from .scheduler import Scheduler

log = logging.getLogger("skedulr")


def load_scheduler(target: str) -> Scheduler:
    """Imports `module:attribute` (the attribute may be dotted) and checks that it is a Scheduler."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidOptionError(f"expected module:attribute (e.g. myapp.tasks:scheduler), not {target!r}")
    sys.path.insert(0, ".")
    try:
        obj: object = importlib.import_module(module_name)
    finally:
        sys.path.remove(".")
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Scheduler):
        obj = obj()  # a factory
    if not isinstance(obj, Scheduler):
        raise InvalidOptionError(f"{target} is a {type(obj).__name__}, not a skedulr.Scheduler")
    return obj


async def serve(scheduler: Scheduler) -> None:
    finished = trio.Event()

    async def run(task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await scheduler.run(task_status=task_status)
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        print(f"skedulr worker ready: {scheduler!r}", file=sys.stderr, flush=True)
        nursery.start_soon(_relay_signals, scheduler, nursery.cancel_scope)
        await finished.wait()  # a graceful shutdown is done
        nursery.cancel_scope.cancel()


async def _relay_signals(scheduler: Scheduler, cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        graceful = True
        async for signum in signals:
            name = signal.Signals(signum).name
            if graceful:
                log.warning("%s: shutting down gracefully (send it again to stop at once)", name)
                scheduler.stop()
                graceful = False
            else:
                log.warning("%s again: cancelling running jobs; their tasks go back to the queue", name)
                cancel_scope.cancel()
                return


def run_worker(target: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheduler = load_scheduler(target)
    trio.run(serve, scheduler)
    return 0
