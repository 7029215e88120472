"""huey: RedisHuey, `huey_consumer peers.huey_app.huey -w 4 -k thread` (default: 1 worker thread; 4
drained about 1.5x faster than 1 here). No result is stored (the task returns None). Enqueued by calling
the task, one call per job."""

from __future__ import annotations

import shutil

from huey import RedisHuey

from peers._probe import PROBE, redis_url

DIST = "huey"
SETTINGS = "RedisHuey, huey_consumer -w 4 -k thread (default 1 thread)"
COMMAND = [shutil.which("huey_consumer") or "huey_consumer", "peers.huey_app.huey", "-w", "4", "-k", "thread"]

huey = RedisHuey("peers", url=redis_url())


@huey.task()
def noop() -> None:
    PROBE.ran()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop()
