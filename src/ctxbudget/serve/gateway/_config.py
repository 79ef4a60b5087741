"""``gateway.yaml``: validated once at start (pydantic at the edge), dataclasses inside.

Errors name the file and the field (``gateway.yaml: budgets[0].window: ...``)."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...budgets import Budget, Window
from ...errors import SpecError

__all__ = ["BudgetRule", "GatewayConfig", "KeyRule", "Upstream", "key_id", "load_config"]

#: The API each metered path speaks, and the upstream that serves it by default.
METERED: dict[str, tuple[str, str]] = {
    "/v1/messages": ("anthropic", "anthropic"),
    "/v1/chat/completions": ("openai-chat", "openai"),
    "/v1/responses": ("openai-responses", "openai"),
    "/v1/embeddings": ("openai-embeddings", "openai"),
}


def key_id(api_key: str) -> str:
    """The id a client key is recorded under: 16 hex digits of its SHA-256 (the key
    itself is never written anywhere)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class _Strict(BaseModel):
    # a NaN or infinite limit or timeout is a typo, never a setting
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _UpstreamModel(_Strict):
    base_url: str
    provider: str | None = None
    """Provider id for pricing (genai-prices name); default: the upstream's name."""
    prefix: str | None = None
    """Path prefix routed here (``/groq`` serves ``/groq/v1/chat/completions``)."""
    api: Literal["anthropic", "openai"] | None = None
    """Which API family the upstream speaks; default: ``anthropic`` for the upstream
    named anthropic, else ``openai``."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v.rstrip("/")


class _MatchModel(_Strict):
    key: str | None = None
    user: str | None = None
    team: str | None = None
    task: str | None = None
    type: str | None = None
    model: str | None = None
    upstream: str | None = None


class _BudgetModel(_Strict):
    name: str
    match: _MatchModel = Field(default_factory=_MatchModel)
    limit_usd: Annotated[Decimal, Field(ge=0)] | None = None
    limit_tokens: Annotated[int, Field(ge=0)] | None = None
    limit_calls: Annotated[int, Field(ge=0)] | None = None
    window: str = "day"
    timezone: str = "UTC"
    per: Literal["key", "user", "team", "task", "type", "model", "upstream"] | None = None
    """One counter per distinct value of this attribute (default: one shared counter;
    ``window: task`` implies ``per: task``)."""
    soft: bool = False


class _KeyModel(_Strict):
    match: str
    user: str | None = None
    team: str | None = None
    task_type: str | None = None


class _ConfigModel(_Strict):
    upstreams: dict[str, _UpstreamModel]
    store: str | None = None
    spool_dir: str | None = None
    budget_store: str = "memory"
    budgets: list[_BudgetModel] = Field(default_factory=list)
    keys: list[_KeyModel] = Field(default_factory=list)
    fail: Literal["open", "closed"] = "closed"
    alert_webhook: str | None = None
    record_prompts: bool = False
    max_body_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    upstream_timeout: Annotated[float, Field(gt=0)] = 600.0
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    reservation_ttl: Annotated[float, Field(gt=0)] = 900.0
    prices: list[str] = Field(default_factory=list)
    """Price override files (the same YAML format as ``ctxbudget --prices``)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str
    provider: str
    prefix: str
    api: str


@dataclass(frozen=True, slots=True)
class BudgetRule:
    budget: Budget
    match: dict[str, str]
    per: str | None


@dataclass(frozen=True, slots=True)
class KeyRule:
    pattern: str
    user: str | None
    team: str | None
    task_type: str | None

    def matches(self, key: str) -> bool:
        return fnmatch.fnmatchcase(key, self.pattern)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    upstreams: tuple[Upstream, ...]
    budgets: tuple[BudgetRule, ...] = ()
    keys: tuple[KeyRule, ...] = ()
    store: str | None = None
    spool_dir: str | None = None
    budget_store: str = "memory"
    fail: str = "closed"
    alert_webhook: str | None = None
    record_prompts: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    upstream_timeout: float = 600.0
    connect_timeout: float = 10.0
    reservation_ttl: float = 900.0
    prices: tuple[str, ...] = ()
    source: str = "<config>"

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> GatewayConfig:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a mapping at the top level")
        try:
            m = _ConfigModel.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
            raise SpecError(f"{source}: {loc.replace('.[', '[')}: {err['msg']}") from None
        ups: list[Upstream] = []
        prefixes: set[str] = set()
        for name, u in m.upstreams.items():
            api = u.api or ("anthropic" if name == "anthropic" else "openai")
            prefix = (u.prefix or "").rstrip("/")
            if prefix and not prefix.startswith("/"):
                raise SpecError(f"{source}: upstreams.{name}.prefix: must start with /")
            key = f"{api}:{prefix}"
            if key in prefixes:
                raise SpecError(f"{source}: upstreams.{name}: another {api} upstream already "
                                f"serves prefix {prefix or '/'!r} (give it a prefix:)")
            prefixes.add(key)
            ups.append(Upstream(name=name, base_url=u.base_url, provider=u.provider or name,
                                prefix=prefix, api=api))
        if not ups:
            raise SpecError(f"{source}: upstreams: configure at least one upstream")
        rules: list[BudgetRule] = []
        names: set[str] = set()
        for i, b in enumerate(m.budgets):
            where = f"{source}: budgets[{i}]"
            limits = [(k, v) for k, v in (("usd", b.limit_usd), ("tokens", b.limit_tokens),
                                          ("calls", b.limit_calls)) if v is not None]
            if len(limits) != 1:
                raise SpecError(f"{where}: set exactly one of limit_usd, limit_tokens, "
                                f"limit_calls")
            if b.name in names:
                raise SpecError(f"{where}.name: {b.name!r} is used twice")
            names.add(b.name)
            try:
                window = Window.parse(b.window, b.timezone)
                budget = Budget(name=b.name, limit=Decimal(limits[0][1]),
                                metric=limits[0][0],  # type: ignore[arg-type]
                                window=window, soft=b.soft)
            except SpecError as exc:
                raise SpecError(f"{where}.{exc}") from None
            per = "task" if window.kind == "task" else b.per
            if b.match.upstream and b.match.upstream not in m.upstreams:
                raise SpecError(f"{where}.match.upstream: no upstream named "
                                f"{b.match.upstream!r}")
            rules.append(BudgetRule(budget=budget, per=per,
                                    match={k: v for k, v in b.match.model_dump().items()
                                           if v is not None}))
        return cls(
            upstreams=tuple(ups), budgets=tuple(rules),
            keys=tuple(KeyRule(k.match, k.user, k.team, k.task_type) for k in m.keys),
            store=m.store, spool_dir=m.spool_dir, budget_store=m.budget_store, fail=m.fail,
            alert_webhook=m.alert_webhook, record_prompts=m.record_prompts,
            max_body_bytes=m.max_body_bytes, upstream_timeout=m.upstream_timeout,
            connect_timeout=m.connect_timeout, reservation_ttl=m.reservation_ttl,
            prices=tuple(m.prices), source=source)

    def route(self, path: str) -> tuple[Upstream, str, str | None] | None:
        """``(upstream, upstream path, metered API or None)`` for a request path, or
        ``None`` when no configured upstream serves it (the gateway answers 404)."""
        best: Upstream | None = None
        for u in self.upstreams:
            if u.prefix and (path == u.prefix or path.startswith(u.prefix + "/")):
                rest = path[len(u.prefix):]
                if _family(rest) == u.api and (best is None or len(u.prefix) > len(best.prefix)):
                    best = u
        if best is None:
            fam = _family(path)
            best = next((u for u in self.upstreams if not u.prefix and u.api == fam), None)
            if best is None:
                return None
        rest = path[len(best.prefix):]
        metered = METERED.get(rest)
        return best, rest, metered[0] if metered else None


def _family(path: str) -> str | None:
    if path.startswith("/v1/messages") or path.startswith("/v1/complete"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return None


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate ``gateway.yaml``; :class:`SpecError` names file and field."""
    from ..._yamlio import read_text, safe_load

    p = Path(path)
    data = safe_load(read_text(p, SpecError, "gateway config"), str(p), SpecError)
    return GatewayConfig.from_dict(data, str(p))
