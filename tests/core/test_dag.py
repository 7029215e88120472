"""`_core.Dag`: children wait on (parent, trigger) edges; parents' outcomes make them ready or skip them,
and skips cascade. The Python class remembers outcomes, so a child added after its parent ended is decided
at once."""

from __future__ import annotations

import array
import gc
import io
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import _core, errors

TRIGGERS = ("on_success", "on_failure", "on_complete")
OUTCOMES = ("succeeded", "dead", "cancelled", "skipped")


def _met(trigger: str, outcome: str) -> bool:
    """DESIGN.md §2: on_success needs succeeded, on_failure needs dead, on_complete any terminal outcome."""
    return {"on_success": outcome == "succeeded", "on_failure": outcome == "dead", "on_complete": True}[trigger]


def _resolve(dag: _core.Dag, parent: int, outcome: str) -> tuple[list[int], list[int]]:
    """`dag.resolve`, checking it returns two read-only int64 memoryviews, as lists."""
    views = dag.resolve(parent, outcome)
    assert isinstance(views, tuple) and len(views) == 2
    for view in views:
        assert isinstance(view, memoryview)
        assert (view.format, view.itemsize, view.ndim, view.readonly) == ("q", 8, 1, True)
        assert view.c_contiguous and view.nbytes == 8 * len(view)
    return views[0].tolist(), views[1].tolist()


def test_resolve_returns_int64_views_that_own_their_ids() -> None:
    dag = _core.Dag()
    big = -(1 << 62)
    dag.add_child(1 << 40, [(big, "on_success")])
    dag.add_child(-3, [(big, "on_success")])
    dag.add_child(7, [(-3, "on_success")])
    dag.add_child(8, [(big, "on_failure")])
    ready, skipped = dag.resolve(big, "succeeded")
    del dag
    gc.collect()
    assert list(ready) == [1 << 40, -3] and ready[0] == 1 << 40 and ready[-1] == -3
    assert array.array("q", ready) == array.array("q", [1 << 40, -3])
    assert bytes(skipped) == array.array("q", [8]).tobytes()
    assert skipped.tolist() == [8] and len(skipped) == 1
    assert ready != [1 << 40, -3]  # a view, not a list
    with pytest.raises(TypeError):
        ready[0] = 1  # type: ignore[index]
    for exporter in (ready, ready.obj):  # neither the view nor the object behind it can be written
        with pytest.raises(TypeError, match="read-write"):
            io.BytesIO(bytes(16)).readinto(exporter)  # type: ignore[arg-type]
    assert ready.tolist() == [1 << 40, -3]
    empty_ready, empty_skipped = _core.Dag().resolve(0, "dead")
    assert len(empty_ready) == 0 and empty_skipped.tolist() == []


def test_child_without_edges_is_ready() -> None:
    dag = _core.Dag()
    assert dag.add_child(1, []) == "ready"
    assert len(dag) == 0
    assert not dag.is_waiting(1)


@pytest.mark.parametrize(("trigger", "outcome"), list(itertools.product(TRIGGERS, OUTCOMES)))
def test_single_edge_truth_table(trigger: str, outcome: str) -> None:
    dag = _core.Dag()
    assert dag.add_child(1, [(0, trigger)]) == "waiting"
    assert dag.is_waiting(1) and len(dag) == 1
    ready, skipped = _resolve(dag, 0, outcome)
    if _met(trigger, outcome):
        assert (ready, skipped) == ([1], [])
    else:
        assert (ready, skipped) == ([], [1])
    assert not dag.is_waiting(1) and len(dag) == 0


@pytest.mark.parametrize(("trigger", "outcome"), list(itertools.product(TRIGGERS, OUTCOMES)))
def test_child_added_after_its_parent_ended(trigger: str, outcome: str) -> None:
    dag = _core.Dag()
    assert _resolve(dag, 0, outcome) == ([], [])
    assert dag.add_child(1, [(0, trigger)]) == ("ready" if _met(trigger, outcome) else "skipped")
    assert len(dag) == 0


def test_join_waits_for_every_parent() -> None:
    dag = _core.Dag()
    assert dag.add_child(9, [(0, "on_success"), (1, "on_failure"), (2, "on_complete")]) == "waiting"
    assert _resolve(dag, 1, "dead") == ([], [])
    assert _resolve(dag, 0, "succeeded") == ([], [])
    assert dag.is_waiting(9)
    assert _resolve(dag, 2, "cancelled") == ([9], [])
    assert not dag.is_waiting(9)


def test_join_is_skipped_as_soon_as_one_edge_cannot_hold() -> None:
    dag = _core.Dag()
    dag.add_child(9, [(0, "on_success"), (1, "on_success")])
    assert _resolve(dag, 0, "dead") == ([], [9])
    assert _resolve(dag, 1, "succeeded") == ([], [])  # already decided: not listed again


def test_skips_cascade_but_a_finally_child_runs() -> None:
    dag = _core.Dag()
    dag.add_child(2, [(0, "on_success"), (1, "on_success")])
    dag.add_child(3, [(2, "on_success")])
    dag.add_child(4, [(3, "on_failure")])
    dag.add_child(5, [(2, "on_complete")])  # a `finally` of 2: runs even though 2 is skipped
    dag.add_child(6, [(5, "on_success")])
    ready, skipped = _resolve(dag, 0, "dead")
    assert sorted(skipped) == [2, 3, 4]
    assert ready == [5]
    assert dag.is_waiting(6)
    assert _resolve(dag, 5, "succeeded") == ([6], [])
    assert len(dag) == 0


def test_skipped_children_are_remembered_as_skipped_parents() -> None:
    dag = _core.Dag()
    dag.add_child(1, [(0, "on_success")])
    dag.add_child(2, [(1, "on_success")])
    assert sorted(_resolve(dag, 0, "cancelled")[1]) == [1, 2]
    # Children added later see the skips: on_complete holds for a skipped parent, on_success does not.
    assert dag.add_child(3, [(2, "on_complete")]) == "ready"
    assert dag.add_child(4, [(2, "on_success")]) == "skipped"
    assert dag.add_child(5, [(4, "on_complete")]) == "ready"  # 4 was skipped at admission
    assert dag.add_child(6, [(4, "on_failure")]) == "skipped"


def test_an_unmet_edge_to_an_ended_parent_skips_at_once_even_with_live_parents() -> None:
    dag = _core.Dag()
    _resolve(dag, 0, "succeeded")
    assert dag.add_child(5, [(8, "on_success"), (0, "on_failure")]) == "skipped"
    assert len(dag) == 0
    assert _resolve(dag, 8, "succeeded") == ([], [])


def test_a_met_edge_to_an_ended_parent_is_dropped() -> None:
    dag = _core.Dag()
    _resolve(dag, 0, "succeeded")
    assert dag.add_child(4, [(0, "on_success"), (7, "on_success")]) == "waiting"
    assert _resolve(dag, 7, "succeeded") == ([4], [])


def test_two_edges_to_one_parent_that_cannot_both_hold() -> None:
    for outcome in OUTCOMES:
        dag = _core.Dag()
        dag.add_child(1, [(0, "on_success"), (0, "on_failure")])
        assert _resolve(dag, 0, outcome) == ([], [1]), outcome


def test_forget_removes_a_waiting_child() -> None:
    dag = _core.Dag()
    dag.add_child(1, [(0, "on_success")])
    dag.add_child(2, [(1, "on_complete")])
    assert dag.forget(1) is True
    assert dag.forget(1) is False
    assert not dag.is_waiting(1)
    assert _resolve(dag, 0, "succeeded") == ([], [])  # the forgotten child is ignored
    assert _resolve(dag, 1, "cancelled") == ([2], [])  # the caller resolves the cancelled child itself
    assert dag.forget(42) is False


def test_deep_cascade_does_not_recurse() -> None:
    dag = _core.Dag()
    depth = 20_000
    for child in range(1, depth + 1):
        dag.add_child(child, [(child - 1, "on_success")])
    assert len(dag) == depth
    ready, skipped = _resolve(dag, 0, "dead")
    assert ready == [] and sorted(skipped) == list(range(1, depth + 1))
    assert len(dag) == 0


def test_bad_trigger_and_outcome_names_are_refused() -> None:
    dag = _core.Dag()
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        dag.add_child(1, [(0, "on_whatever")])
    for name in TRIGGERS:
        assert name in str(excinfo.value)
    assert not dag.is_waiting(1)
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        dag.resolve(0, "failed")
    for name in OUTCOMES:
        assert name in str(excinfo.value)


GRAPHS = st.integers(2, 12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        # node i may wait on earlier nodes
        st.lists(
            st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(TRIGGERS)), max_size=3),
            min_size=n,
            max_size=n,
        ),
        st.lists(st.sampled_from(("succeeded", "dead", "cancelled")), min_size=n, max_size=n),
        st.randoms(use_true_random=False),
    )
)


@settings(max_examples=300, deadline=None)
@given(GRAPHS)
def test_matches_a_fixpoint_reference(graph: tuple[int, list[list[tuple[int, str]]], list[str], Any]) -> None:
    """Random DAGs run to the end: whatever runs gets a random outcome; every decision the Dag reports must be
    the one a brute-force fixpoint over all edges makes, and every node must end decided exactly once."""
    n, raw_edges, run_outcomes, rnd = graph
    edges = [[(p, t) for p, t in raw if p < child] for child, raw in enumerate(raw_edges)]
    dag = _core.Dag()
    outcome: dict[int, str] = {}  # decided nodes
    runnable: set[int] = set()  # ready, not yet run

    def reference_decisions() -> tuple[set[int], set[int]]:
        """Undecided, non-runnable nodes whose fate the known outcomes settle (iterated to a fixpoint)."""
        known = dict(outcome)
        ready: set[int] = set()
        skipped: set[int] = set()
        changed = True
        while changed:
            changed = False
            for child in range(n):
                if child in known or child in runnable or child in ready or not admitted[child]:
                    continue
                if any(p in known and not _met(t, known[p]) for p, t in edges[child]):
                    known[child] = "skipped"
                    skipped.add(child)
                    changed = True
                elif all(p in known for p, _ in edges[child]):
                    ready.add(child)
        return ready, skipped

    admitted = [False] * n
    for child in range(n):
        admitted[child] = True
        got = dag.add_child(child, edges[child])
        ready, skipped = reference_decisions()
        expected = "ready" if child in ready else "skipped" if child in skipped else "waiting"
        assert got == expected, (child, edges[child])
        if got == "ready":
            runnable.add(child)
        elif got == "skipped":
            outcome[child] = "skipped"
    while runnable:
        node = rnd.choice(sorted(runnable))
        runnable.discard(node)
        outcome[node] = run_outcomes[node]
        want_ready, want_skipped = reference_decisions()
        got_ready, got_skipped = _resolve(dag, node, run_outcomes[node])
        assert len(got_ready) == len(set(got_ready)) and len(got_skipped) == len(set(got_skipped))
        assert (set(got_ready), set(got_skipped)) == (want_ready, want_skipped)
        runnable |= set(got_ready)
        outcome.update(dict.fromkeys(got_skipped, "skipped"))
    assert len(outcome) == n, "a node was never decided"
    assert len(dag) == 0
