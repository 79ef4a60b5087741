"""Caching results against hand-computed provider bills.

Prices (test overrides, USD per M): test-sonnet input 3, cache read 0.30, 5m write 3.75,
1h write 6, output 15; test-gpt input 1.25, cached 0.125, output 10.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from ctxbudget.plan import project
from ctxbudget.plan.caching import PromptCall, min_cacheable_tokens, replay
from ctxbudget.usage import Usage

ANTHROPIC = """\
prices: prices.yaml
models: [{{model: test-sonnet, provider: anthropic}}]
fixed:
  system_prompt: {{tokens: 2000}}
variable:
  user_message: {{tokens: 100}}
  output: {{tokens: 50}}
  history: {{tokens_per_turn: {hist}}}
session: {{turns: 3, seconds_between_calls: {gap}}}
caching: {{ttl: {ttl}, history: {history}}}
"""


def _anthropic(write_spec: Callable[[str], Path], *, gap: float, ttl: str = "5m",
               hist: int = 0, history: bool = False) -> object:
    text = ANTHROPIC.format(gap=gap, ttl=ttl, hist=hist, history=str(history).lower())
    return project(write_spec(text))


def test_anthropic_5m_within_ttl(write_spec: Callable[[str], Path]) -> None:
    p = _anthropic(write_spec, gap=30)
    u = [t.usage for t in p.turns]
    assert u[0] == Usage(input_tokens=100, cache_write_5m_tokens=2000, output_tokens=50)
    assert u[1] == u[2] == Usage(input_tokens=100, cache_read_tokens=2000, output_tokens=50)
    # 2000 x 3.75 + 300 x 3 + 4000 x 0.30 + 150 x 15 = 11,850 micro-dollars
    assert p.session.cost_usd == Decimal("0.011850")
    # without caching: 6300 x 3 + 150 x 15 = 21,150
    assert p.session.cost_uncached_usd == Decimal("0.021150")


def test_anthropic_5m_expires_between_calls(write_spec: Callable[[str], Path]) -> None:
    p = _anthropic(write_spec, gap=400)  # > 300 s: every call re-writes the prefix
    assert all(t.usage.cache_write_5m_tokens == 2000 and t.usage.cache_read_tokens == 0
               for t in p.turns)
    # 6000 x 3.75 + 300 x 3 + 150 x 15 = 25,650: caching costs more than not caching
    assert p.session.cost_usd == Decimal("0.025650")
    assert p.session.savings_pct < 0


def test_anthropic_1h_survives_400s_gaps(write_spec: Callable[[str], Path]) -> None:
    p = _anthropic(write_spec, gap=400, ttl="1h")
    u = [t.usage for t in p.turns]
    assert u[0].cache_write_1h_tokens == 2000 and u[0].cache_write_5m_tokens == 0
    assert u[1].cache_read_tokens == u[2].cache_read_tokens == 2000
    # 2000 x 6 + 300 x 3 + 4000 x 0.30 + 150 x 15 = 16,350
    assert p.session.cost_usd == Decimal("0.016350")
    assert p.caching.break_even_reuses == 2  # (6 - 3) / (3 - 0.3) = 1.11 -> 2 reads


def test_anthropic_5m_hit_refreshes_ttl(write_spec: Callable[[str], Path]) -> None:
    # 250 s gaps: call 3 is 500 s after the write but 250 s after the last read
    p = _anthropic(write_spec, gap=250)
    assert [t.usage.cache_read_tokens for t in p.turns] == [0, 2000, 2000]
    assert p.caching.break_even_reuses == 1  # 0.75 / 2.7 -> 1


def test_rolling_history_breakpoint(write_spec: Callable[[str], Path]) -> None:
    p = _anthropic(write_spec, gap=30, hist=300, history=True)
    u = [t.usage for t in p.turns]
    assert u[0] == Usage(input_tokens=100, cache_write_5m_tokens=2000, output_tokens=50)
    # turn 2: reads the fixed prefix, writes the first history turn
    assert u[1] == Usage(input_tokens=100, cache_read_tokens=2000, cache_write_5m_tokens=300,
                         output_tokens=50)
    # turn 3: reads fixed + turn-1 history, writes turn-2 history
    assert u[2] == Usage(input_tokens=100, cache_read_tokens=2300, cache_write_5m_tokens=300,
                         output_tokens=50)


def test_default_caches_only_fixed(write_spec: Callable[[str], Path]) -> None:
    p = _anthropic(write_spec, gap=30, hist=300)
    assert [t.usage.cache_read_tokens for t in p.turns] == [0, 2000, 2000]
    assert [t.usage.input_tokens for t in p.turns] == [100, 400, 700]


OPENAI = """\
prices: prices.yaml
models: [{{model: test-gpt, provider: openai}}]
fixed:
  system_prompt: {{tokens: {fixed}}}
variable:
  user_message: {{tokens: 100}}
  output: {{tokens: 50}}
  history: {{tokens_per_turn: 300}}
session: {{turns: 3, seconds_between_calls: {gap}}}
"""


def test_openai_automatic_caching_128_increments(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec(OPENAI.format(fixed=2000, gap=30)))
    u = [t.usage for t in p.turns]
    # turn 1: 2,100 prompt tokens, nothing cached yet, no write premium
    assert u[0] == Usage(input_tokens=2100, output_tokens=50)
    # turn 2: prompt 2,400; shares 2,000 (fixed) with turn 1 -> 1024 + 128 x 7 = 1,920
    assert u[1] == Usage(input_tokens=480, cache_read_tokens=1920, output_tokens=50)
    # turn 3: prompt 2,700; shares fixed + turn-1 history = 2,300 -> 1024 + 128 x 9 = 2,176
    assert u[2] == Usage(input_tokens=524, cache_read_tokens=2176, output_tokens=50)
    # (2100 + 480 + 524) x 1.25 + (1920 + 2176) x 0.125 + 150 x 10 = 5,892 micro-dollars
    assert p.session.cost_usd == Decimal("0.005892")
    assert p.caching.mode == "automatic" and p.caching.break_even_reuses == 0


def test_openai_idle_expiry_and_minimum(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec(OPENAI.format(fixed=2000, gap=600)))  # idle > 5 min
    assert [t.usage.cache_read_tokens for t in p.turns] == [0, 0, 0]
    p = project(write_spec(OPENAI.format(fixed=700, gap=30)))
    # turn 2 shares 700 < 1024 -> nothing; turn 3 shares 1000 < 1024 -> nothing
    assert [t.usage.cache_read_tokens for t in p.turns] == [0, 0, 0]
    assert p.caching.below_minimum


def test_model_change_changes_caching(write_spec: Callable[[str], Path]) -> None:
    text = ANTHROPIC.format(gap=30, ttl="5m", hist=0, history="false").replace(
        "models: [{model: test-sonnet, provider: anthropic}]",
        "models: [{model: test-sonnet, provider: anthropic}, "
        "{model: test-haiku-4-5, provider: anthropic}]")
    p = project(write_spec(text))
    sonnet, haiku = p.models
    assert sonnet.caching.min_cacheable_tokens == 1024 and not sonnet.caching.below_minimum
    assert haiku.caching.min_cacheable_tokens == 4096 and haiku.caching.below_minimum
    assert haiku.session.usage.cache_read_tokens == 0
    assert haiku.session.usage.cache_write_tokens == 0
    assert any("test-haiku-4-5" in w and "nothing would be cached" in w for w in p.warnings)


def test_min_cacheable_table() -> None:
    assert min_cacheable_tokens("anthropic", "claude-sonnet-4-6") == 1024
    assert min_cacheable_tokens("anthropic", "claude-opus-4-5-20251101") == 4096
    assert min_cacheable_tokens("anthropic", "claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("anthropic", "claude-3-5-haiku-latest") == 2048
    assert min_cacheable_tokens("openai", "gpt-5") == 1024
    assert min_cacheable_tokens("google", "gemini-2.5-flash") == 2048
    assert min_cacheable_tokens("mistral", "mistral-large") == 0


def test_replay_explicit_below_minimum_breakpoint_not_written() -> None:
    calls = [PromptCall(at=i * 10.0, segments=(("sys", 500), (("u", i), 50)),
                        breakpoints=(1,)) for i in range(3)]
    usages = replay(calls, mode="explicit", min_tokens=1024)
    assert all(u == Usage(input_tokens=550) for u in usages)


POLICY = """\
prices: prices.yaml
models: [{{model: test-sonnet, provider: anthropic}}]
fixed: {{system_prompt: {{tokens: 2000}}}}
variable:
  history: {{tokens_per_turn: 400}}
  user_message: {{tokens: 100}}
  output: {{tokens: 50}}
session: {{turns: 6, calls_per_turn: {k}}}
history_policies: [{policy}]
"""


def test_sliding_window_by_tokens(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec(POLICY.format(k=1, policy="{sliding_window: {tokens: 1000}}")))
    # whole turns within 1,000 tokens: at most 2 turns of 400
    assert [t.components["history"] for t in p.turns] == [0, 400, 800, 800, 800, 800]


def test_summarize_policy_bills_summary_call(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec(POLICY.format(
        k=1, policy="{summarize: {at_tokens: 1000, to_tokens: 300}}")))
    # history 0, 400, 800, then 1,200 > 1,000 -> summary of 300; 700; 1,100 -> 300 again
    assert [t.components["history"] for t in p.turns] == [0, 400, 800, 300, 700, 300]
    assert [t.calls for t in p.turns] == [1, 1, 1, 2, 1, 2]
    t4 = p.turns[3]
    # turn 4 = the summary call (1,200 in, 300 out, no cache) + the turn's call
    assert t4.usage == Usage(input_tokens=1200 + 400, cache_read_tokens=2000,
                             output_tokens=300 + 50)


def test_calls_per_turn_repeat_context(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec(POLICY.format(k=3, policy="none")))
    t1, t2 = p.turns[0], p.turns[1]
    assert t1.calls == 3 and t1.context_tokens == 2100
    # first call writes 2,000, the next two read it
    assert t1.usage == Usage(input_tokens=300, cache_write_5m_tokens=2000,
                             cache_read_tokens=4000, output_tokens=150)
    assert t2.usage.cache_read_tokens == 6000 and t2.usage.input_tokens == 3 * 500


def test_gemini_implicit_caching(write_spec: Callable[[str], Path]) -> None:
    p = project(write_spec("""\
prices: prices.yaml
models: [{model: test-gemini-2.5-flash, provider: google}]
fixed: {system_prompt: {tokens: 3000}}
variable: {user_message: {tokens: 100}}
session: {turns: 2}
"""))
    assert p.caching.mode == "automatic" and p.caching.min_cacheable_tokens == 2048
    # no 128-token rounding: the whole 3,000-token shared prefix is read
    assert [t.usage.cache_read_tokens for t in p.turns] == [0, 3000]
