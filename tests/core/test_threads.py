"""The Rust classes may be freed from any thread: a Scheduler and its pools refer to each other, so its
storage is freed by the cyclic garbage collector, which runs in whichever thread happens to allocate
(often a `to_thread` worker or the watchdog)."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from skedulr import MemoryStorage, _core

FACTORIES: dict[str, Callable[[], object]] = {
    "ReadyQueue": _core.ReadyQueue,
    "LeaseTable": _core.LeaseTable,
    "Dag": _core.Dag,
    "MemoryStorage": MemoryStorage,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_can_be_freed_from_any_thread(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    problems: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", problems.append)
    gc.collect()
    gc.disable()
    try:
        cycle: list[Any] = [FACTORIES[name]()]
        cycle.append(cycle)  # only the cyclic collector can free it
        del cycle
        collector = threading.Thread(target=gc.collect)
        collector.start()
        collector.join()
    finally:
        gc.enable()
    assert [str(p.exc_value) for p in problems] == []
