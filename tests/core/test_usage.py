"""Usage: disjoint buckets that add up, derived figures, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctxbudget.errors import UsageError
from ctxbudget.usage import BUCKETS, Call, Task, Usage

COUNT = st.integers(min_value=0, max_value=10**9)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    out = draw(COUNT)
    return Usage(
        input_tokens=draw(COUNT),
        cache_read_tokens=draw(COUNT),
        cache_write_5m_tokens=draw(COUNT),
        cache_write_1h_tokens=draw(COUNT),
        output_tokens=out,
        reasoning_tokens=draw(st.integers(min_value=0, max_value=out)),
    )


def test_derived_figures() -> None:
    u = Usage(input_tokens=20_000, cache_read_tokens=60_000, cache_write_5m_tokens=15_000,
              cache_write_1h_tokens=5_000, output_tokens=5_000, reasoning_tokens=1_000)
    assert u.prompt_tokens == 100_000
    assert u.cache_write_tokens == 20_000
    assert u.total_tokens == 105_000
    assert u.cache_hit_rate == 0.6
    assert Usage().cache_hit_rate is None
    assert not Usage()
    assert Usage(output_tokens=1)


def test_addition_and_sum() -> None:
    a = Usage(input_tokens=3, cache_read_tokens=1111, output_tokens=406)
    b = Usage(input_tokens=3, cache_read_tokens=1111, cache_write_5m_tokens=418, output_tokens=33,
              reasoning_tokens=10)
    assert a + b == Usage(input_tokens=6, cache_read_tokens=2222, cache_write_5m_tokens=418,
                          output_tokens=439, reasoning_tokens=10)
    assert sum([a, b]) == a + b
    assert sum([], Usage()) == Usage()
    with pytest.raises(TypeError):
        _ = a + 1


def test_as_dict_round_trip() -> None:
    u = Usage(input_tokens=1, cache_read_tokens=2, cache_write_5m_tokens=3,
              cache_write_1h_tokens=4, output_tokens=5, reasoning_tokens=5)
    d = u.as_dict()
    assert list(d) == [*BUCKETS, "reasoning_tokens"]
    assert Usage.from_dict(d) == u
    with pytest.raises(UsageError) as ei:
        Usage.from_dict({"input_tokens": 1, "prompt_tokens": 2})
    assert ei.value.field == "prompt_tokens"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"cache_read_tokens": -5}, "cache_read_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"cache_write_1h_tokens": "3"}, "cache_write_1h_tokens"),
        ({"cache_write_5m_tokens": True}, "cache_write_5m_tokens"),
        ({"output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens"),
    ],
)
def test_invalid_usage_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError) as ei:
        Usage(**kwargs)  # type: ignore[arg-type]
    assert ei.value.field == field
    assert field in str(ei.value)


def test_call_timestamps_are_utc() -> None:
    naive = Call(ts=datetime(2026, 1, 2, 3, 4), provider="anthropic", model="m", usage=Usage())
    assert naive.ts == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    c = Call(ts=datetime(2026, 1, 2, 3, 4, tzinfo=plus2), provider="x", model="m", usage=Usage())
    assert c.ts.tzinfo == UTC
    assert c.ts.hour == 1
    assert c.with_(status="error").status == "error"


def test_task_usage_sums_calls() -> None:
    u1 = Usage(input_tokens=10, output_tokens=1)
    u2 = Usage(cache_read_tokens=7, output_tokens=2)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    t = Task(task_id="t1", calls=(Call(ts=ts, provider="p", model="m", usage=u1),
                                  Call(ts=ts, provider="p", model="m", usage=u2)))
    assert t.usage == u1 + u2
    assert Task(task_id="empty").usage == Usage()


# --------------------------------------------------------------------------- invariants


@given(usages())
def test_buckets_add_up(u: Usage) -> None:
    assert u.prompt_tokens == (u.input_tokens + u.cache_read_tokens + u.cache_write_5m_tokens
                               + u.cache_write_1h_tokens)
    assert u.total_tokens == sum(getattr(u, b) for b in BUCKETS)
    assert u.cache_write_tokens == u.cache_write_5m_tokens + u.cache_write_1h_tokens
    assert u.reasoning_tokens <= u.output_tokens
    rate = u.cache_hit_rate
    if u.prompt_tokens:
        assert rate is not None
        assert 0.0 <= rate <= 1.0
    else:
        assert rate is None


@given(usages(), usages())
def test_addition_is_commutative_and_bucketwise(a: Usage, b: Usage) -> None:
    s = a + b
    assert s == b + a
    for name, v in s.as_dict().items():
        assert v == getattr(a, name) + getattr(b, name)
    assert s.prompt_tokens == a.prompt_tokens + b.prompt_tokens
    assert s.total_tokens == a.total_tokens + b.total_tokens


@given(usages(), usages(), usages())
def test_addition_is_associative(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)
    assert sum([a, b, c]) == a + b + c


@given(usages())
def test_zero_is_identity(u: Usage) -> None:
    assert u + Usage() == u
    assert Usage() + u == u
    assert sum([u]) == u


# --------------------------------------------------------------------------- check_sane

def _call(**kw: object) -> Call:
    base: dict[str, object] = {"ts": datetime(2025, 6, 1, tzinfo=UTC), "provider": "openai",
                               "model": "gpt-4o", "usage": Usage(input_tokens=10)}
    base.update(kw)
    return Call(**base)  # type: ignore[arg-type]


def test_check_sane_accepts_a_real_call() -> None:
    from ctxbudget.usage import MAX_TOKENS, check_sane

    check_sane(_call(latency_ms=812.5, turn=3,
                     usage=Usage(input_tokens=MAX_TOKENS, output_tokens=5)))
    check_sane(_call(ts=datetime.now(UTC) + timedelta(hours=23)))


@pytest.mark.parametrize(("changes", "field"), [
    ({"usage": Usage(input_tokens=10**12 + 1)}, "input_tokens"),
    ({"usage": Usage(output_tokens=2**63, reasoning_tokens=1)}, "output_tokens"),
    ({"usage": Usage(cache_write_1h_tokens=10**13)}, "cache_write_1h_tokens"),
    ({"usage": Usage(web_search_requests=10**15)}, "web_search_requests"),
    ({"ts": datetime(1970, 1, 1, tzinfo=UTC)}, "ts"),
    ({"ts": datetime(2019, 12, 31, 23, 59, tzinfo=UTC)}, "ts"),
    ({"ts": datetime(9999, 1, 1, tzinfo=UTC)}, "ts"),
    ({"ts": datetime.now(UTC) + timedelta(days=2)}, "ts"),
    ({"latency_ms": float("nan")}, "latency_ms"),
    ({"latency_ms": float("inf")}, "latency_ms"),
    ({"latency_ms": -1.0}, "latency_ms"),
    ({"latency_ms": 1e9 + 1}, "latency_ms"),
    ({"turn": -1}, "turn"),
    ({"turn": 2**31}, "turn"),
    ({"expected_cache_read_tokens": 10**13}, "expected_cache_read_tokens"),
    ({"components": {"history": -5}}, "components"),
])
def test_check_sane_names_the_field(changes: dict[str, object], field: str) -> None:
    from ctxbudget.usage import check_sane

    with pytest.raises(UsageError) as ei:
        check_sane(_call(**changes))
    assert ei.value.field == field
    assert isinstance(ei.value, ValueError)
    assert field in str(ei.value)


def test_one_max_tokens() -> None:
    """The spool's range checks use the usage module's limits (one definition)."""
    from ctxbudget import usage
    from ctxbudget.store import _spoolfast, spool

    assert spool.MAX_TOKENS is usage.MAX_TOKENS and _spoolfast.MAX_TOKENS is usage.MAX_TOKENS
    assert spool.MIN_TS is usage.MIN_TS
    assert "check_sane" in usage.__all__ and "MAX_TOKENS" in usage.__all__


@pytest.mark.parametrize("field", ["model", "task_id", "session_id", "request_id"])
def test_check_sane_refuses_lone_surrogates(field: str) -> None:
    from ctxbudget.usage import check_sane

    with pytest.raises(UsageError) as ei:
        check_sane(_call(**{field: "ab\ud800c"}))
    assert ei.value.field == field
    check_sane(_call(**{field: "caf\u00e9 \U0001f600"}))
