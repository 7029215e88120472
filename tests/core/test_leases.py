"""`_core.LeaseTable`: who holds a running task until when, under which fencing token."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import _core


def test_grant_renew_release() -> None:
    t = _core.LeaseTable()
    token = t.grant(7, 1, 0, 100)
    assert t.holds(7, token) and len(t) == 1
    assert t.renew(7, token, 50, 100) is True  # deadline now 150
    assert t.expire_due(149) == []
    assert t.renew(7, token + 1, 60, 100) is False
    assert t.release(7, token + 1) is False
    assert t.holds(7, token)
    assert t.release(7, token) is True
    assert len(t) == 0 and not t.holds(7, token)
    assert t.renew(7, token, 60, 100) is False
    assert t.release(7, token) is False


def test_tokens_are_fresh_for_every_grant() -> None:
    t = _core.LeaseTable()
    tokens = [t.grant(k % 3, 1, 0, 10) for k in range(20)]
    assert len(set(tokens)) == 20
    assert tokens == sorted(tokens)  # one counter: a later grant always has a larger token
    assert len(t) == 3


def test_a_new_grant_fences_the_old_token() -> None:
    t = _core.LeaseTable()
    old = t.grant(1, 1, 0, 10)
    new = t.grant(1, 2, 5, 10)
    assert new != old
    assert not t.holds(1, old)
    assert t.renew(1, old, 6, 10) is False
    assert t.release(1, old) is False
    assert t.holds(1, new)
    assert len(t) == 1
    assert t.expire_due(14) == []  # the old deadline (10) left with the old lease
    assert t.expire_due(15) == [(1, new, 2)]


def test_expire_due_takes_exactly_the_late_ones_and_removes_them() -> None:
    t = _core.LeaseTable()
    a = t.grant(1, 1, 0, 10)
    b = t.grant(2, 1, 0, 20)
    t.grant(3, 2, 0, 30)
    assert t.expire_due(9) == []
    assert sorted(t.expire_due(20)) == [(1, a, 1), (2, b, 1)]  # a deadline is inclusive
    assert len(t) == 1
    assert not t.holds(1, a) and not t.holds(2, b)
    assert t.expire_due(20) == []


def test_renewal_moves_the_deadline_both_ways() -> None:
    t = _core.LeaseTable()
    token = t.grant(1, 1, 0, 1_000)
    assert t.renew(1, token, 10, 5)  # a shorter ttl shortens the lease: deadline 15
    assert t.expire_due(15) == [(1, token, 1)]


def test_due_for_renewal_orders_by_deadline() -> None:
    t = _core.LeaseTable()
    a = t.grant(1, 1, 0, 30)
    b = t.grant(2, 1, 0, 10)
    t.grant(3, 1, 0, 100)
    assert t.due_for_renewal(0, 40) == [(2, b), (1, a)]
    assert t.due_for_renewal(0, 9) == []
    assert len(t) == 3  # only looked


def test_grant_many_returns_tokens_in_order() -> None:
    t = _core.LeaseTable()
    tokens = t.grant_many([5, 6, 7], 9, 100, 50)
    assert len(tokens) == 3 and tokens == sorted(tokens) and len(set(tokens)) == 3
    for key, token in zip([5, 6, 7], tokens, strict=True):
        assert t.holds(key, token)
    assert sorted(t.expire_due(150)) == [(5, tokens[0], 9), (6, tokens[1], 9), (7, tokens[2], 9)]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(0, 6), st.integers(1, 3), st.integers(1, 50)),
        st.tuples(st.just("renew"), st.integers(0, 6), st.booleans(), st.integers(1, 50)),
        st.tuples(st.just("release"), st.integers(0, 6), st.booleans()),
        st.tuples(st.just("expire"), st.integers(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_matches_a_reference(ops: list[tuple[Any, ...]]) -> None:
    """Against a dict key -> (token, owner, deadline). `fresh=False` replays the key's previous, fenced token."""
    t = _core.LeaseTable()
    held: dict[int, tuple[int, int, int]] = {}
    fenced: dict[int, int] = {}  # key -> a token it held before
    now = 0
    for op in ops:
        kind = op[0]
        if kind == "grant":
            _, key, owner, ttl = op
            if key in held:
                fenced[key] = held[key][0]
            token = t.grant(key, owner, now, ttl)
            assert all(token > h[0] for h in held.values()) and all(token > f for f in fenced.values())
            held[key] = (token, owner, now + ttl)
        elif kind == "renew":
            _, key, current, ttl = op
            token = held[key][0] if current and key in held else fenced.get(key, 10**9)
            ok = t.renew(key, token, now, ttl)
            assert ok is (current and key in held)
            if ok:
                held[key] = (token, held[key][1], now + ttl)
        elif kind == "release":
            _, key, current = op
            token = held[key][0] if current and key in held else fenced.get(key, 10**9)
            ok = t.release(key, token)
            assert ok is (current and key in held)
            if ok:
                fenced[key] = held.pop(key)[0]
        else:
            now += op[1]
            expected = sorted((k, tok, own) for k, (tok, own, dl) in held.items() if dl <= now)
            assert sorted(t.expire_due(now)) == expected
            for k, tok, _ in expected:
                fenced[k] = tok
                del held[k]
        assert len(t) == len(held)
        for k, (tok, _, _) in held.items():
            assert t.holds(k, tok)
        for k, tok in fenced.items():
            assert not t.holds(k, tok)
