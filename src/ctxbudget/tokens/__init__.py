"""Token counters: tiktoken encodings, Hugging Face tokenizer.json, calibrated estimator.

``count_tokens(content, model)`` counts text, chat messages, tool definitions or
a whole request body, with the provider's framing overhead, and says whether the
figure is exact. tiktoken is imported on first count, not on import.
"""

from __future__ import annotations

from ._calibration import DEFAULT_CALIBRATIONS, Calibration, default_calibration
from ._count import clear_cache, count_many, count_tokens, count_tools
from ._framing import canonical_json
from ._models import encoding_for_model, provider_for_model
from ._result import TokenCount

__all__ = [
    "DEFAULT_CALIBRATIONS",
    "Calibration",
    "TokenCount",
    "canonical_json",
    "clear_cache",
    "count_many",
    "count_tokens",
    "count_tools",
    "default_calibration",
    "encoding_for_model",
    "provider_for_model",
]
