"""The LiteLLM proxy's ``callbacks`` hook: a module attribute holding the callback.

In the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: ctxbudget.integrations.litellm_proxy.handler

The proxy imports this module (which imports litellm, already loaded in the proxy)
and registers :data:`handler`, a :func:`ctxbudget.track.litellm_callback` instance.
Records go to the proxy process's spool (``$CTXBUDGET_HOME/spool``); task ids come
from the request's ``metadata={"ctxbudget_task_id": ..., "ctxbudget_task_type": ...}``.
"""

from __future__ import annotations

from typing import Any

from ..track.litellm import make_callback

__all__ = ["handler"]

handler: Any = make_callback()
