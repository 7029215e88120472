"""`_core.parse_hand_off`: the message lua/_hand_off.lua publishes to an idle instance, read into claim rows;
anything else is a ValueError (the subscription then logs and ignores it: its tasks come by claim)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skedulr import _core

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-:", min_size=1, max_size=30)
TASKS = st.tuples(
    NAMES,  # id
    st.integers(min_value=1, max_value=2**53),  # token
    NAMES,  # job name
    st.integers(min_value=0, max_value=10**9),  # timeout_ms
    st.integers(min_value=-1000, max_value=1000),  # priority
    st.binary(max_size=200),  # payload: anything, newlines and spaces included
)


def _message(pool: str, lease_until: int, tasks: list[tuple[str, int, str, int, int, bytes]]) -> bytes:
    """As lua/_hand_off.lua writes it."""
    out = f"{pool} {lease_until}\n".encode()
    for task_id, token, name, timeout_ms, priority, payload in tasks:
        spec = f"{name} {timeout_ms} {priority}\n".encode() + payload
        out += f"{task_id} {token} {len(spec)}\n".encode() + spec
    return out


@given(NAMES, st.integers(min_value=0, max_value=2**53), st.lists(TASKS, max_size=5))
def test_rows_come_out_in_order_as_a_claim_returns_them(
    pool: str, lease_until: int, tasks: list[tuple[str, int, str, int, int, bytes]]
) -> None:
    assert _core.parse_hand_off(_message(pool, lease_until, tasks)) == (
        pool,
        lease_until,
        [(i, token, i, name, payload, 1, prio, timeout_ms) for i, token, name, timeout_ms, prio, payload in tasks],
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"default",  # no line end
        b"default 12 13\n",  # three words in the head
        b"default soon\n",  # not a number
        b"default 12\nt1 5\n",  # a task line of two words
        b"default 12\nt1 5 99\nj 0 0\nshort",  # a spec shorter than its size
        b"default 12\nt1 5 -3\nj 0 0\n",  # a negative size
        b"default 12\nt1 5 5\nj 0 0",  # a spec without its line end
        b"default 12\nt1 5 6\nj x 0\n",  # a timeout that is not a number
        b"\xff\xfe 12\n",  # not UTF-8
    ],
)
def test_anything_else_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a hand-off message"):
        _core.parse_hand_off(data)
