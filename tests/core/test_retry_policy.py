"""Retry delays: `skedulr.ExponentialBackoff` / `LinearBackoff` / `ConstantBackoff` / `NoRetry` over the Rust
`_core.RetryPolicy`. Delays are in ms; jitter is a pure function of (seed, task id, retry)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skedulr import ConstantBackoff, ExponentialBackoff, LinearBackoff, NoRetry, RetryPolicy, _core, errors

IDS = [f"task-{i}" for i in range(200)]


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    policy = ExponentialBackoff(max_retries=8, base=1.0, cap=10.0, jitter=0)
    assert [policy.delay_ms(r, "t") for r in range(1, 8)] == [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
    assert policy.max_retries == 8


def test_exponential_with_fractional_seconds() -> None:
    policy = ExponentialBackoff(base=0.25, cap=1.5, jitter=0)
    assert [policy.delay_ms(r, "t") for r in range(1, 5)] == [250, 500, 1000, 1500]


def test_retry_zero_counts_as_the_first_and_huge_retries_stay_at_the_cap() -> None:
    policy = ExponentialBackoff(base=1.0, cap=30.0, jitter=0)
    assert policy.delay_ms(0, "t") == policy.delay_ms(1, "t") == 1000
    assert policy.delay_ms(2**32 - 1, "t") == 30_000


@pytest.mark.parametrize("jitter", [0.1, 0.5, 1.0])
def test_jitter_stays_within_its_band(jitter: float) -> None:
    policy = ExponentialBackoff(base=1.0, cap=600.0, jitter=jitter)
    for retry in (1, 2, 3, 6):
        nominal = 1000 * 2 ** (retry - 1)
        spread = nominal * jitter
        delays = [policy.delay_ms(retry, task_id) for task_id in IDS]
        assert all(nominal - spread - 1 <= d <= nominal + spread + 1 for d in delays), (retry, min(delays), max(delays))
        # ±jitter: tasks that failed together spread out on both sides of the nominal delay
        assert min(delays) < nominal < max(delays)
        assert len(set(delays)) > len(IDS) // 2


@pytest.mark.parametrize("jitter", [0.2, 1.0])
def test_jitter_never_passes_the_cap(jitter: float) -> None:
    policy = ExponentialBackoff(base=1.0, cap=5.0, jitter=jitter)
    for retry in (3, 4, 10, 1000):  # nominal 4 s (below the cap) and then the cap itself
        nominal = min(1000 * 2 ** min(retry - 1, 20), 5000)
        delays = [policy.delay_ms(retry, task_id) for task_id in IDS]
        assert max(delays) <= 5000
        assert min(delays) >= nominal * (1 - jitter) - 1
    at_cap = [policy.delay_ms(10, task_id) for task_id in IDS]
    assert min(at_cap) < 5000  # jitter still spreads capped delays, downwards


def test_jitter_is_deterministic_per_task_and_seed() -> None:
    a = ExponentialBackoff(jitter=0.5, seed=1)
    b = ExponentialBackoff(jitter=0.5, seed=1)
    c = ExponentialBackoff(jitter=0.5, seed=2)
    first = [a.delay_ms(2, task_id) for task_id in IDS]
    assert first == [b.delay_ms(2, task_id) for task_id in IDS]
    assert first == [a.delay_ms(2, task_id) for task_id in IDS]
    assert first != [c.delay_ms(2, task_id) for task_id in IDS]


def test_jitter_is_salted_by_the_task_id() -> None:
    policy = ExponentialBackoff(jitter=0.5)
    assert policy.delay_ms(3, "x") == policy._policy.delay_ms(3, _core.salt_of("x"))
    assert _core.salt_of("x") == _core.salt_of("x")
    assert len({_core.salt_of(task_id) for task_id in IDS}) == len(IDS)


def test_constant() -> None:
    policy = ConstantBackoff(max_retries=5, delay=2.5)
    assert {policy.delay_ms(r, task_id) for r in range(1, 20) for task_id in IDS[:5]} == {2500}
    assert policy.max_retries == 5
    assert ConstantBackoff(delay=0).delay_ms(3, "t") == 0


def test_linear_grows_by_step_up_to_the_cap() -> None:
    policy = LinearBackoff(base=1.0, step=2.0, cap=6.0)
    assert [policy.delay_ms(r, "t") for r in range(1, 6)] == [1000, 3000, 5000, 6000, 6000]
    assert policy.delay_ms(2**32 - 1, "t") == 6000


def test_no_retry() -> None:
    policy = NoRetry()
    assert isinstance(policy, RetryPolicy)
    assert policy.max_retries == 0


def test_policies_are_frozen_values() -> None:
    assert ExponentialBackoff(base=2.0) == ExponentialBackoff(base=2.0)
    assert ExponentialBackoff(base=2.0) != ExponentialBackoff(base=3.0)
    with pytest.raises(AttributeError):
        ExponentialBackoff().base = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: ExponentialBackoff(jitter=1.5), "from 0 to 1"),
        (lambda: ExponentialBackoff(jitter=-0.1), "from 0 to 1"),
        (lambda: ExponentialBackoff(jitter=float("nan")), "from 0 to 1"),
        (lambda: ExponentialBackoff(base=10.0, cap=1.0), "at least base_ms"),
        (lambda: LinearBackoff(base=10.0, cap=1.0), "at least base_ms"),
        (lambda: ExponentialBackoff(base=-1.0), "must not be negative"),
        (lambda: ExponentialBackoff(cap=float("inf")), "finite number of seconds"),
        (lambda: ConstantBackoff(delay=-1.0), "must not be negative"),
        (lambda: ConstantBackoff(delay="1"), "finite number of seconds"),
        (lambda: LinearBackoff(step=float("nan")), "finite number of seconds"),
        (lambda: ExponentialBackoff(max_retries=-1), "max_retries must be an int >= 0"),
        (lambda: ExponentialBackoff(max_retries=True), "max_retries must be an int >= 0"),
        (lambda: ConstantBackoff(max_retries=_core.MAX_RETRIES + 1), f"use 0 to {_core.MAX_RETRIES}"),
    ],
)
def test_bad_policies_are_refused(make: Any, fragment: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as excinfo:
        make()
    assert fragment in str(excinfo.value)


def test_core_policy_directly() -> None:
    exponential = _core.RetryPolicy.exponential(100, 1_000, 0.0)
    assert [exponential.delay_ms(r) for r in range(1, 6)] == [100, 200, 400, 800, 1_000]
    assert _core.RetryPolicy.constant(7).delay_ms(99, 5) == 7
    assert [_core.RetryPolicy.linear(10, 5, 22).delay_ms(r) for r in range(1, 5)] == [10, 15, 20, 22]
    with pytest.raises(errors.InvalidOptionError):
        _core.RetryPolicy.exponential(100, 10, 0.0)
    with pytest.raises(errors.InvalidOptionError):
        _core.RetryPolicy.linear(100, 1, 10)
    assert "Exponential" in repr(exponential)


@settings(max_examples=500, deadline=None)
@given(
    base=st.integers(0, 10**7),
    extra=st.integers(0, 10**8),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**64 - 1),
    retry=st.integers(0, 2**32 - 1),
    salt=st.integers(0, 2**64 - 1),
)
def test_exponential_delay_is_near_nominal_and_within_the_cap(
    base: int, extra: int, jitter: float, seed: int, retry: int, salt: int
) -> None:
    cap = base + extra
    policy = _core.RetryPolicy.exponential(base, cap, jitter, seed)
    nominal = min(base * 2 ** min(max(retry, 1) - 1, 64), cap)
    delay = policy.delay_ms(retry, salt)
    assert 0 <= delay <= cap
    assert abs(delay - nominal) <= nominal * jitter + 1
    assert policy.delay_ms(retry, salt) == delay  # deterministic


@settings(max_examples=300, deadline=None)
@given(base=st.integers(0, 10**7), step=st.integers(0, 10**7), extra=st.integers(0, 10**8), retry=st.integers(0, 10**6))
def test_linear_delay_matches_its_formula(base: int, step: int, extra: int, retry: int) -> None:
    cap = base + extra
    assert _core.RetryPolicy.linear(base, step, cap).delay_ms(retry) == min(base + step * (max(retry, 1) - 1), cap)
