"""`_core.ReadyQueue`: higher priority first, FIFO within a priority, delayed entries released at their time."""

from __future__ import annotations

import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import _core


def test_higher_priority_first_then_push_order() -> None:
    q = _core.ReadyQueue()
    for key, priority in [(1, 0), (2, 5), (3, 0), (4, 5), (5, -3), (6, 0)]:
        q.push(key, priority)
    assert len(q) == 6
    assert q.pop_many(10) == [2, 4, 1, 3, 6, 5]
    assert len(q) == 0
    assert q.pop() is None
    assert q.pop_many(3) == []


def test_push_many_keeps_list_order_within_a_priority() -> None:
    q = _core.ReadyQueue()
    q.push_many([(10, 1), (11, 1), (12, 2), (13, 1)], now_ms=100)
    assert [q.pop(100), q.pop(100)] == [12, 10]
    assert q.pop_many(5, 100) == [11, 13]


@pytest.mark.parametrize("priority_code", ["i", "q", "l"])
def test_push_many_takes_buffers_like_lists(priority_code: str) -> None:
    keys = [5, -(1 << 62), 7, 1 << 40, 5, 9]  # 5 pushed twice: moved, as with push
    priorities = [1, 3, -(1 << 31), (1 << 31) - 1, 2, 3]
    from_lists, from_arrays = _core.ReadyQueue(), _core.ReadyQueue()
    from_lists.push_many(keys, priorities, now_ms=10)
    from_arrays.push_many(array.array("q", keys), array.array(priority_code, priorities), now_ms=10)
    assert len(from_arrays) == len(from_lists) == 5
    expected = [1 << 40, -(1 << 62), 9, 5, 7]
    assert from_lists.pop_many(10, now_ms=10) == expected
    assert from_arrays.pop_many(10, now_ms=10) == expected


def test_push_many_buffers_are_checked() -> None:
    q = _core.ReadyQueue()
    with pytest.raises(ValueError, match="2 keys and 1 priorities"):
        q.push_many(array.array("q", [1, 2]), array.array("i", [0]))
    with pytest.raises(OverflowError):
        q.push_many(array.array("q", [1, 2]), array.array("q", [0, 1 << 31]))
    assert len(q) == 0, "a refused batch pushes nothing"
    # Other buffers and mixes go through the general path: same result.
    q.push_many(array.array("i", [3, 4]), [1, 2])
    q.push_many(memoryview(array.array("q", [5, 0, 6, 0]))[::2], array.array("b", [3, 0]))
    q.push_many([7], array.array("q", [9]))
    assert q.pop_many(10) == [7, 5, 4, 3, 6]
    with pytest.raises(TypeError):
        q.push_many(array.array("d", [1.0]), array.array("i", [1]))


def test_extreme_priorities() -> None:
    q = _core.ReadyQueue()
    q.push(1, _core.MIN_PRIORITY)
    q.push(2, _core.MAX_PRIORITY)
    q.push(3, 0)
    q.push(4, -(2**31))
    q.push(5, 2**31 - 1)
    assert q.pop_many(5) == [5, 2, 3, 1, 4]


def test_pop_many_takes_at_most_max_best_first() -> None:
    q = _core.ReadyQueue()
    for key in range(10):
        q.push(key, key % 3)
    assert q.pop_many(0) == []
    assert q.pop_many(4) == [2, 5, 8, 1]
    assert len(q) == 6
    assert q.pop_many(100) == [4, 7, 0, 3, 6, 9]


def test_delayed_entry_waits_for_its_time_exactly() -> None:
    q = _core.ReadyQueue()
    q.push(1, 9, ready_at_ms=1_000, now_ms=0)
    q.push(2, 0, ready_at_ms=0, now_ms=0)
    assert 1 in q and 2 in q
    assert q.next_ready_at() == 1_000
    assert q.pop(500) == 2  # the delayed entry's higher priority does not count before its time
    assert q.pop(999) is None
    assert len(q) == 1
    assert q.pop(1_000) == 1  # eligible from ready_at_ms on, inclusive
    assert q.next_ready_at() is None
    assert len(q) == 0


def test_next_ready_at_is_the_earliest_delayed_entry() -> None:
    q = _core.ReadyQueue()
    assert q.next_ready_at() is None
    q.push(1, 0, ready_at_ms=300, now_ms=0)
    q.push(2, 0, ready_at_ms=200, now_ms=0)
    q.push(3, 0, ready_at_ms=0, now_ms=0)  # ready now: not delayed
    assert q.next_ready_at() == 200
    assert q.pop_many(10, 250) == [3, 2]
    assert q.next_ready_at() == 300
    assert "delayed=1" in repr(q) and "len=1" in repr(q)


def test_a_late_promoted_entry_keeps_its_place_by_ready_time() -> None:
    q = _core.ReadyQueue()
    q.push(1, 0, ready_at_ms=10, now_ms=0)  # ready at 10, only promoted by the pop at 30
    q.push(2, 0, ready_at_ms=20, now_ms=20)  # ready at 20, pushed ready
    assert q.pop_many(2, 30) == [1, 2]


def test_delayed_entries_released_together_follow_priority_then_time() -> None:
    q = _core.ReadyQueue()
    q.push(1, 0, ready_at_ms=100, now_ms=0)
    q.push(2, 1, ready_at_ms=300, now_ms=0)
    q.push(3, 0, ready_at_ms=50, now_ms=0)
    q.push(4, 1, ready_at_ms=200, now_ms=0)
    assert q.pop_many(10, 1_000) == [4, 2, 3, 1]


def test_remove_from_ready_and_from_delayed() -> None:
    q = _core.ReadyQueue()
    q.push(1, 0)
    q.push(2, 0, ready_at_ms=50, now_ms=0)
    q.push(3, 0)
    assert q.remove(1) is True
    assert q.remove(2) is True
    assert q.remove(2) is False
    assert q.remove(99) is False
    assert 1 not in q and 2 not in q and 3 in q
    assert q.next_ready_at() is None
    assert q.pop_many(10, 100) == [3]


def test_pushing_a_present_key_moves_it() -> None:
    q = _core.ReadyQueue()
    q.push(1, 0)
    q.push(2, 1)
    q.push(1, 5)  # re-prioritised
    assert len(q) == 2
    assert q.pop_many(5) == [1, 2]
    q.push(7, 0)
    q.push(7, 0, ready_at_ms=100, now_ms=0)  # moved from ready to delayed
    assert q.pop(50) is None
    assert q.pop(100) == 7


def test_push_without_ready_at_is_ready_from_now() -> None:
    assert "defaults to `now_ms`" in (_core.ReadyQueue.push.__doc__ or "")
    q = _core.ReadyQueue()
    q.push(1, 0, now_ms=100)  # documented: ready from 100
    q.push(2, 0, ready_at_ms=50, now_ms=100)  # ready from 50: earlier, so first among equals
    assert q.pop_many(2, 100) == [2, 1]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 15), st.integers(-3, 3), st.integers(0, 60)),
        st.tuples(st.just("remove"), st.integers(0, 15)),
        st.tuples(st.just("pop_many"), st.integers(0, 4)),
        st.tuples(st.just("tick"), st.integers(0, 20)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_matches_a_sorted_reference(ops: list[tuple[Any, ...]]) -> None:
    """Against a dict sorted by (priority desc, ready time, push order) with time moving forward."""
    q = _core.ReadyQueue()
    ref: dict[int, tuple[int, int, int]] = {}  # key -> (-priority, ready_at, push number)
    now = 0
    pushes = 0
    for op in ops:
        if op[0] == "push":
            _, key, priority, delay = op
            q.push(key, priority, ready_at_ms=now + delay, now_ms=now)
            ref[key] = (-priority, now + delay, pushes)
            pushes += 1
        elif op[0] == "remove":
            assert q.remove(op[1]) is (op[1] in ref)
            ref.pop(op[1], None)
        elif op[0] == "pop_many":
            eligible = sorted((v, k) for k, v in ref.items() if v[1] <= now)
            expected = [k for _, k in eligible[: op[1]]]
            assert q.pop_many(op[1], now) == expected
            for key in expected:
                del ref[key]
        else:
            now += op[1]
        assert len(q) == len(ref)
        delayed = [v[1] for v in ref.values() if v[1] > now]
        # next_ready_at may still report an entry that became due since the last pop (it is promoted lazily)
        nra = q.next_ready_at()
        if delayed:
            assert nra is not None and nra <= min(delayed)
        if nra is not None:
            assert nra in {v[1] for v in ref.values()}
        for key in range(16):
            assert (key in q) is (key in ref)
