"""`_core.pack_command`: one Redis command in RESP, byte for byte what hiredis packs (the Trio-native
connections of `skedulr.storage` send it), for every kind of argument they pass."""

from __future__ import annotations

import enum

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skedulr import _core

ARGS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(st.lists(ARGS, min_size=1, max_size=20))
def test_packs_what_hiredis_packs(args: list[bytes | str | int | float]) -> None:
    assert _core.pack_command(tuple(args)) == hiredis.pack_command(tuple(args))


def test_the_layout_of_one_command() -> None:
    assert _core.pack_command(("EVALSHA", b"a\r\nb", 2, "ü")) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$4\r\na\r\nb\r\n$1\r\n2\r\n$2\r\n\xc3\xbc\r\n"
    )


def test_buffers_are_packed_as_their_bytes() -> None:
    assert _core.pack_command(("SET", memoryview(b"key"), bytearray(b"v\x00"))) == hiredis.pack_command(
        ("SET", b"key", b"v\x00")
    )


class Level(enum.IntEnum):
    HIGH = 1


@pytest.mark.parametrize("bad", [None, object(), ["a"], {"a": 1}, True, Level.HIGH])
def test_another_type_is_a_type_error_naming_it(bad: object) -> None:
    """A bool or an enum too, as hiredis (a flag slipping into a script's arguments is a bug)."""
    with pytest.raises(TypeError):
        hiredis.pack_command(("SET", "key", bad))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=type(bad).__name__):
        _core.pack_command(("SET", "key", bad))  # type: ignore[arg-type]
