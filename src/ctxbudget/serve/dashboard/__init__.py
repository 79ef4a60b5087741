"""``ctxbudget serve``: a live, read-only dashboard over the usage store.

Build the ASGI app with :func:`create_app` over a :class:`Dataset`; the CLI runs it on
uvicorn. Needs the ``serve`` extra (starlette, uvicorn).
"""

from ._app import create_app
from ._data import CallRow, Dataset, Snapshot, TaskQuery

__all__ = ["CallRow", "Dataset", "Snapshot", "TaskQuery", "create_app"]
