"""Plan a token budget before deployment: spec, projection, allocation, caching, simulation.

Python API (mirrors ``ctxbudget plan`` / ``ctxbudget simulate``)::

    import ctxbudget
    p = ctxbudget.plan("examples/seed-example.yaml")      # -> Plan (this module is callable)
    p = ctxbudget.project("examples/seed-example.yaml")   # the same function, by name
    p.fixed_tokens, p.turns[14].context_tokens, p.session.cost_usd
    calls, tasks = ctxbudget.plan.simulate("examples/seed-example.yaml", tasks=1000, days=7)

``ctxbudget.plan`` is this subpackage; calling it calls :func:`project`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from . import simulate  # a callable submodule: ctxbudget.plan.simulate(spec, tasks=...)
from .distribution import TurnsDistribution, turns_distribution
from .presets import PRESETS
from .result import AllocationRow, CachingInfo, ModelRow, Plan, PolicyRow, project
from .spec import (
    BudgetSpec,
    LoadedSpec,
    load_spec,
    parse_spec,
    spec_from_mapping,
    spec_json_schema,
)

__all__ = [
    "PRESETS",
    "AllocationRow",
    "BudgetSpec",
    "CachingInfo",
    "LoadedSpec",
    "ModelRow",
    "Plan",
    "PolicyRow",
    "TurnsDistribution",
    "load_spec",
    "parse_spec",
    "project",
    "simulate",
    "spec_from_mapping",
    "spec_json_schema",
    "turns_distribution",
]


class _CallableModule(types.ModuleType):
    """Lets ``ctxbudget.plan(spec)`` call :func:`project` while staying a package."""

    def __call__(self, spec: Any, **kwargs: Any) -> Plan:
        return project(spec, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

#: This module itself (``ctxbudget.plan`` resolves lazily to it from ``ctxbudget._LAZY``).
MODULE = sys.modules[__name__]
