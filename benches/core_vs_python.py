"""The Rust core classes (`skedulr._core`), called from Python, against plain-Python equivalents doing
the same work, in the same run: the figures that justify (or not) keeping this code in Rust.

- Ready queue (1,000,000 entries): `ReadyQueue` against `heapq` on `(-priority, seq, key)` tuples.
- Lease table (100,000 leases): `LeaseTable` against a dict + lazy-deletion heap.
- DAG (100,000 nodes): `Dag` against a dict-based worklist with the same rules, build time apart
  from resolve time, on two on_success graphs: "tree/4" (each node waits for one parent, fan-out 4)
  and "layered/1000x2" (layers of 1000 nodes, each waiting for two nodes of the layer above).

Each figure is the best of `--repeat` timings of the same operation on freshly built state (built
untimed), with the garbage collector off while timing, as `timeit` does. Ratio = rust ops/s / python
ops/s, so above 1 means Rust is faster.

    python benches/core_vs_python.py [--queue-n N] [--lease-n N] [--dag-n N] [--repeat R] [--check]
"""

from __future__ import annotations

import argparse
import array
import gc
import heapq
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from skedulr import _core

S = TypeVar("S")

Edges = list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Row:
    section: str
    operation: str
    n: int
    python_s: float
    rust_s: float
    target: float | None  # minimum ratio, or None for figures reported without a target

    @property
    def python_rate(self) -> float:
        return self.n / self.python_s

    @property
    def rust_rate(self) -> float:
        return self.n / self.rust_s

    @property
    def ratio(self) -> float:
        return self.python_s / self.rust_s

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


def best_time(setup: Callable[[], S], op: Callable[[S], object], repeat: int) -> float:
    """Best of `repeat` timings of `op(state)`, each on a fresh `setup()`; GC off while timing."""
    best = float("inf")
    for _ in range(repeat):
        state = setup()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            op(state)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
        del state
    return best


# ----- ready queue -----------------------------------------------------------------------------------

HeapEntry = tuple[int, int, int]  # (-priority, seq, key): highest priority first, then FIFO


def bench_ready_queue(n: int, repeat: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    priorities = [rng.randrange(-10, 11) for _ in range(n)]
    keys = list(range(n))  # push_many takes keys and priorities as two lists...
    key_array, priority_array = array.array("q", keys), array.array("i", priorities)  # ...or buffers (fastest)
    pairs = list(zip(keys, priorities, strict=True))  # (key, priority), what the one-call-each loops read
    entries = [(-p, i, i) for i, p in pairs]  # what heapq holds, prebuilt as push_many's input is

    def rust_full() -> _core.ReadyQueue:
        q = _core.ReadyQueue()
        q.push_many(key_array, priority_array)
        return q

    def python_full() -> list[HeapEntry]:
        h = list(entries)
        heapq.heapify(h)
        return h

    def rust_push(q: _core.ReadyQueue) -> None:
        push = q.push
        for key, priority in pairs:
            push(key, priority)

    def python_push(h: list[HeapEntry]) -> None:
        heappush = heapq.heappush
        for key, priority in pairs:
            heappush(h, (-priority, key, key))

    def rust_pop(q: _core.ReadyQueue) -> None:
        pop = q.pop
        for _ in range(n):
            pop()

    def python_pop(h: list[HeapEntry]) -> None:
        heappop = heapq.heappop
        for _ in range(n):
            heappop(h)[2]

    def rust_push_many(q: _core.ReadyQueue) -> None:
        q.push_many(key_array, priority_array)

    def rust_push_many_lists(q: _core.ReadyQueue) -> None:
        q.push_many(keys, priorities)

    def python_heapify(h: list[HeapEntry]) -> None:
        heapq.heapify(h)

    def rust_pop_many(q: _core.ReadyQueue) -> None:
        pop_many = q.pop_many
        while pop_many(1000):
            pass

    def python_pop_batches(h: list[HeapEntry]) -> None:
        heappop = heapq.heappop
        while h:
            [heappop(h)[2] for _ in range(min(1000, len(h)))]

    held = n  # the steady state: a queue holding n entries takes one push and one pop per job
    pairs_steady = 200_000 if n >= 200_000 else n

    def rust_push_pop(q: _core.ReadyQueue) -> None:
        push, pop = q.push, q.pop
        for key in range(held, held + pairs_steady):
            push(key, priorities[key % n])
            pop()

    def python_push_pop(h: list[HeapEntry]) -> None:
        heappush, heappop = heapq.heappush, heapq.heappop
        for key in range(held, held + pairs_steady):
            heappush(h, (-priorities[key % n], key, key))
            heappop(h)[2]

    # Same order out of both: the comparison is between two implementations of one queue.
    q, h, q_lists = rust_full(), python_full(), _core.ReadyQueue()
    q_lists.push_many(keys, priorities)
    expected = [heapq.heappop(h)[2] for _ in range(n)]
    assert q.pop_many(n) == expected and q_lists.pop_many(n) == expected, "ReadyQueue and heapq disagree"
    del q, h, q_lists

    def rust_empty() -> _core.ReadyQueue:
        return _core.ReadyQueue()

    def python_empty() -> list[HeapEntry]:
        return []

    return [
        Row("ready queue", "push x n, one call each (0 -> n held)", n,
            best_time(python_empty, python_push, repeat), best_time(rust_empty, rust_push, repeat), 1.0),
        Row("ready queue", "pop x n, one call each (n -> 0 held)", n,
            best_time(python_full, python_pop, repeat), best_time(rust_full, rust_pop, repeat), 1.0),
        Row("ready queue", "push + pop pairs, n held", pairs_steady,
            best_time(python_full, python_push_pop, repeat), best_time(rust_full, rust_push_pop, repeat), 1.0),
        Row("ready queue", "batch push: push_many vs heappush loop", n,
            best_time(python_empty, python_push, repeat), best_time(rust_empty, rust_push_many, repeat), 5.0),
        Row("ready queue", "batch push: push_many vs heapify(list)", n,
            best_time(lambda: list(entries), python_heapify, repeat),
            best_time(rust_empty, rust_push_many, repeat), 5.0),
        Row("ready queue", "batch push, lists: push_many vs heappush loop", n,
            best_time(python_empty, python_push, repeat), best_time(rust_empty, rust_push_many_lists, repeat), None),
        Row("ready queue", "batch pop: pop_many(1000) vs heappop loop", n,
            best_time(python_full, python_pop_batches, repeat), best_time(rust_full, rust_pop_many, repeat), 5.0),
    ]  # fmt: skip


# ----- lease table -----------------------------------------------------------------------------------


class PyLeaseTable:
    """The plain-Python lease table: dict key -> (token, owner, deadline), and a heap of
    (deadline, key, token) from which stale entries (renewed or re-granted leases) are dropped lazily."""

    def __init__(self) -> None:
        self._leases: dict[int, tuple[int, int, int]] = {}
        self._heap: list[tuple[int, int, int]] = []
        self._next_token = 1

    def grant(self, key: int, owner: int, now_ms: int, ttl_ms: int) -> int:
        token = self._next_token
        self._next_token += 1
        deadline = now_ms + ttl_ms
        self._leases[key] = (token, owner, deadline)
        heapq.heappush(self._heap, (deadline, key, token))
        return token

    def grant_many(self, keys: list[int], owner: int, now_ms: int, ttl_ms: int) -> list[int]:
        grant = self.grant
        return [grant(k, owner, now_ms, ttl_ms) for k in keys]

    def renew(self, key: int, token: int, now_ms: int, ttl_ms: int) -> bool:
        lease = self._leases.get(key)
        if lease is None or lease[0] != token:
            return False
        deadline = now_ms + ttl_ms
        self._leases[key] = (token, lease[1], deadline)
        heapq.heappush(self._heap, (deadline, key, token))
        return True

    def expire_due(self, now_ms: int) -> list[tuple[int, int, int]]:
        heap, leases, out = self._heap, self._leases, []
        while heap and heap[0][0] <= now_ms:
            deadline, key, token = heapq.heappop(heap)
            lease = leases.get(key)
            if lease is not None and lease[0] == token and lease[2] == deadline:
                del leases[key]
                out.append((key, token, lease[1]))
        return out

    def __len__(self) -> int:
        return len(self._leases)


LeaseLike = _core.LeaseTable | PyLeaseTable
TTL_MS = 30_000


def bench_leases(n: int, repeat: int) -> list[Row]:
    keys = list(range(n))
    owner = 7

    def granted(cls: Callable[[], LeaseLike]) -> Callable[[], tuple[LeaseLike, list[int]]]:
        def setup() -> tuple[LeaseLike, list[int]]:
            table = cls()
            return table, [table.grant(k, owner, k // 100, TTL_MS) for k in keys]  # 100 grants per ms

        return setup

    def renewed(cls: Callable[[], LeaseLike]) -> Callable[[], tuple[LeaseLike, list[int]]]:
        def setup() -> tuple[LeaseLike, list[int]]:
            table, tokens = granted(cls)()
            renew_all((table, tokens))
            return table, tokens

        return setup

    def grant_all(state: tuple[LeaseLike, list[int]]) -> None:
        grant = state[0].grant
        for k in keys:
            grant(k, owner, k // 100, TTL_MS)

    def grant_batch(state: tuple[LeaseLike, list[int]]) -> None:
        state[0].grant_many(keys, owner, 0, TTL_MS)

    def renew_all(state: tuple[LeaseLike, list[int]]) -> None:
        table, tokens = state
        renew = table.renew
        for k, token in zip(keys, tokens, strict=True):
            renew(k, token, 10_000 + k // 100, TTL_MS)

    def expire_at_once(state: tuple[LeaseLike, list[int]]) -> None:
        expired = state[0].expire_due(1 << 40)
        assert len(expired) == n

    slices = 100

    def expire_in_slices(state: tuple[LeaseLike, list[int]]) -> None:
        # a reaper waking up as deadlines pass: each call expires about n / slices leases
        first, last = 10_000 + TTL_MS, 10_000 + (n - 1) // 100 + TTL_MS
        expired = 0
        for i in range(1, slices + 1):
            expired += len(state[0].expire_due(first + (last - first) * i // slices))
        assert expired == n, expired

    def empty(cls: Callable[[], LeaseLike]) -> Callable[[], tuple[LeaseLike, list[int]]]:
        return lambda: (cls(), [])

    # Same leases expire from both, in the same order, with the same tokens.
    a, b = renewed(_core.LeaseTable)(), renewed(PyLeaseTable)()
    assert a[1] == b[1] and a[0].expire_due(1 << 40) == b[0].expire_due(1 << 40), "LeaseTable and Python disagree"
    del a, b

    rows = []
    for name, setup, op in [
        ("grant x n, one call each", empty, grant_all),
        ("grant_many (python: grant loop)", empty, grant_batch),
        ("renew x n, one call each", granted, renew_all),
        ("expire_due: all n in 1 call, after renewals", renewed, expire_at_once),
        (f"expire_due: n over {slices} calls, after renewals", renewed, expire_in_slices),
    ]:
        python_s = best_time(setup(PyLeaseTable), op, repeat)
        rust_s = best_time(setup(_core.LeaseTable), op, repeat)
        rows.append(Row("lease table", name, n, python_s, rust_s, None))
    return rows


# ----- DAG ---------------------------------------------------------------------------------------------


def _met(trigger: str, outcome: str) -> bool:
    if trigger == "on_success":
        return outcome == "succeeded"
    if trigger == "on_failure":
        return outcome == "dead"
    return True  # on_complete


class PyDag:
    """The plain-Python DAG, with the rules of `_core.Dag`: live parent -> [(child, trigger)], waiting
    child -> pending edge count, outcomes of finished nodes; skips cascade through a worklist (BFS)."""

    def __init__(self) -> None:
        self._children_of: dict[int, list[tuple[int, str]]] = {}
        self._pending: dict[int, int] = {}
        self._outcomes: dict[int, str] = {}

    def add_child(self, child: int, edges: Edges) -> str:
        live = []
        for parent, trigger in edges:
            outcome = self._outcomes.get(parent)
            if outcome is None:
                live.append((parent, trigger))
            elif not _met(trigger, outcome):
                self._outcomes[child] = "skipped"
                return "skipped"
        if not live:
            return "ready"
        self._pending[child] = len(live)
        children_of = self._children_of
        for parent, trigger in live:
            if parent in children_of:
                children_of[parent].append((child, trigger))
            else:
                children_of[parent] = [(child, trigger)]
        return "waiting"

    def resolve(self, parent: int, outcome: str) -> tuple[list[int], list[int]]:
        self._outcomes[parent] = outcome
        pending, children_of, outcomes = self._pending, self._children_of, self._outcomes
        ready: list[int] = []
        skipped: list[int] = []
        finished = deque([(parent, outcome)])
        while finished:
            node, node_outcome = finished.popleft()
            children = children_of.pop(node, None)
            if children is None:
                continue
            for child, trigger in children:
                left = pending.get(child)
                if left is None:  # already decided through another edge
                    continue
                if _met(trigger, node_outcome):
                    if left == 1:
                        del pending[child]
                        ready.append(child)
                    else:
                        pending[child] = left - 1
                else:
                    del pending[child]
                    skipped.append(child)
                    outcomes[child] = "skipped"
                    finished.append((child, "skipped"))
        return ready, skipped

    def __len__(self) -> int:
        return len(self._pending)


DagLike = _core.Dag | PyDag


def tree(n: int, fan_out: int) -> list[Edges]:
    """Node 0 is the root; node i > 0 waits on_success for its parent (i - 1) // fan_out."""
    return [[]] + [[((i - 1) // fan_out, "on_success")] for i in range(1, n)]


def layered(n: int, width: int) -> list[Edges]:
    """Node 0 is the root; then layers of `width` nodes, each waiting on_success for two nodes of the
    layer above (the first layer for the root alone), so most nodes are reached by two edges."""
    graph: list[Edges] = [[]]
    for i in range(1, n):
        layer, j = divmod(i - 1, width)
        if layer == 0:
            graph.append([(0, "on_success")])
        else:
            above = 1 + (layer - 1) * width
            graph.append([(above + j, "on_success"), (above + (j + 1) % width, "on_success")])
    return graph


def bench_dag(n: int, repeat: int) -> list[Row]:
    rows = []
    for shape, graph in [("tree/4", tree(n, 4)), ("layered/1000x2", layered(n, 1000))]:
        children = graph[1:]

        def build(dag: DagLike, children: list[Edges] = children) -> None:
            add = dag.add_child
            for child, edges in enumerate(children, start=1):
                add(child, edges)

        def built(cls: Callable[[], DagLike], build: Callable[[DagLike], None] = build) -> Callable[[], DagLike]:
            def setup() -> DagLike:
                dag = cls()
                build(dag)
                return dag

            return setup

        def cascade_dead(dag: DagLike, expected: int = n - 1) -> None:
            ready, skipped = dag.resolve(0, "dead")
            assert len(skipped) == expected and not ready

        def wave_succeeded(dag: DagLike, expected: int = n - 1) -> None:
            # what the scheduler does as tasks finish: each finished node resolves, once per node
            resolve = dag.resolve
            runnable = deque([0])
            decided = 0
            while runnable:
                ready, _ = resolve(runnable.popleft(), "succeeded")
                decided += len(ready)
                runnable.extend(ready)
            assert decided == expected, decided

        # Same decisions from both, in the same order.
        for outcome in ("dead", "succeeded"):
            a, b = _core.Dag(), PyDag()
            build(a)
            build(b)
            (a_ready, a_skipped), (b_ready, b_skipped) = a.resolve(0, outcome), b.resolve(0, outcome)
            assert (a_ready.tolist(), a_skipped.tolist()) == (b_ready, b_skipped), f"{shape}: Dag and PyDag disagree"

        def py_empty() -> DagLike:
            return PyDag()

        def rust_empty() -> DagLike:
            return _core.Dag()

        rows += [
            Row("dag", f"{shape}: build, add_child x n", n - 1,
                best_time(py_empty, build, repeat), best_time(rust_empty, build, repeat), None),
            Row("dag", f"{shape}: root dead, all skipped (1 call)", n - 1,
                best_time(built(PyDag), cascade_dead, repeat), best_time(built(_core.Dag), cascade_dead, repeat), 10.0),
            Row("dag", f"{shape}: succeeded wave, resolve x n", n,
                best_time(built(PyDag), wave_succeeded, repeat), best_time(built(_core.Dag), wave_succeeded, repeat),
                None),
        ]  # fmt: skip
    return rows


# ----- report ------------------------------------------------------------------------------------------


def format_rows(rows: Sequence[Row]) -> str:
    header = ["section", "operation", "n", "python ops/s", "rust ops/s", "ratio", "target"]
    lines = [header]
    for r in rows:
        verdict = "" if r.met is None else (" met" if r.met else " MISSED")
        target = "-" if r.target is None else f">= {r.target:g}x{verdict}"
        lines.append([r.section, r.operation, f"{r.n:,}", f"{r.python_rate:,.0f}", f"{r.rust_rate:,.0f}",
                      f"{r.ratio:.2f}x", target])  # fmt: skip
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    right = {2, 3, 4, 5}
    return "\n".join(
        "  ".join(
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c]) for c, cell in enumerate(line)
        ).rstrip()
        for line in lines
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue-n", type=int, default=1_000_000)
    parser.add_argument("--lease-n", type=int, default=100_000)
    parser.add_argument("--dag-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    args = parser.parse_args(argv)

    rows: list[Row] = []
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("ready queue", lambda: bench_ready_queue(args.queue_n, args.repeat, args.seed)),
        ("lease table", lambda: bench_leases(args.lease_n, args.repeat)),
        ("dag", lambda: bench_dag(args.dag_n, args.repeat)),
    ]
    for name, run in sections:
        print(f"measuring {name}...", file=sys.stderr, flush=True)
        rows += run()
    print(f"best of {args.repeat}; ratio = rust ops/s / python ops/s (> 1: Rust faster); GC off while timing")
    print(format_rows(rows))
    missed = [r for r in rows if r.met is False]
    print(f"targets: {sum(r.met is True for r in rows)} met, {len(missed)} missed")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
