"""`python -m peers._enqueue PEER`: imports `peers.<PEER>_app`, enqueues the jobs, prints one JSON line.

Run by `benches/peers.py` in a process of its own, so a peer that cannot be imported or hangs cannot
take the benchmark down. The line: the seconds `enqueue()` took, the worker command to start, the
settings chosen and the peer's version.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
import time

from peers._probe import jobs


def main() -> None:
    peer = sys.argv[1]
    module = importlib.import_module(f"peers.{peer}_app")
    t0 = time.perf_counter()
    module.enqueue(jobs())
    seconds = time.perf_counter() - t0
    version = importlib.metadata.version(module.DIST)
    print(json.dumps({"submit_s": seconds, "command": module.COMMAND, "settings": module.SETTINGS,
                      "version": version}))  # fmt: skip


if __name__ == "__main__":
    main()
