"""The dashboard's ASGI app (Starlette), built by :func:`create_app` from its dependencies.

Read-only: every route reads the :class:`~._data.Dataset`; none writes to the store.
With an access token, a request must carry it (``Authorization: Bearer TOKEN``, the
``ctxbudget_token`` cookie, or ``?token=TOKEN`` once, which sets the cookie).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import date
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ...errors import CtxBudgetError
from . import _pages as pages
from ._budgets import read_gateway_budgets
from ._data import TASK_SORTS, Dataset, TaskQuery

__all__ = ["create_app"]

_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadRequest(Exception):
    """A query parameter the page cannot use (400 with the reason)."""


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def _opt(req: Request, name: str) -> str | None:
    v = req.query_params.get(name)
    return v if v not in (None, "") else None


def _int_param(req: Request, name: str, default: int | None, lo: int = 0,
               hi: int = 10**9) -> int | None:
    v = _opt(req, name)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise BadRequest(f"{name}: {v!r} is not an integer") from None
    if not lo <= n <= hi:
        raise BadRequest(f"{name}: {n} is outside {lo}..{hi}")
    return n


def _day(v: str | None) -> str | None:
    if v is None:
        return None
    if not _DAY.match(v):
        raise BadRequest(f"day: {v!r} is not YYYY-MM-DD")
    try:
        date.fromisoformat(v)
    except ValueError:
        raise BadRequest(f"day: {v!r} is not a date") from None
    return v


def _asset(name: str) -> bytes:
    return files("ctxbudget.serve.dashboard").joinpath("static", name).read_bytes()


def create_app(ds: Dataset, *, token: str | None = None,
               gateways: Sequence[str] = ()) -> Starlette:
    """The dashboard over ``ds``; ``token`` (optional) is required on every request;
    ``gateways``: base URLs of running ``ctxbudget gateway`` processes whose budgets the
    overview shows."""
    assets = {"app.css": (_asset("app.css"), "text/css; charset=utf-8"),
              "app.js": (_asset("app.js"), "text/javascript; charset=utf-8")}

    def stale() -> str | None:
        return ds.stale_reason

    def snap() -> Any:
        s = ds.snapshot(block=ds._snap is None)
        assert s is not None
        return s

    def budgets() -> tuple[list[Any], list[str]] | None:
        return read_gateway_budgets(list(gateways)) if gateways else None

    def overview(req: Request) -> Response:
        return _html(pages.overview_page(snap(), stale(), budgets()))

    def day(req: Request) -> Response:
        d = _day(req.path_params["day"])
        assert d is not None
        return _html(pages.day_page(snap(), d, stale()))

    def task_query(req: Request) -> TaskQuery:
        sort = _opt(req, "sort") or "cost"
        if sort not in TASK_SORTS:
            raise BadRequest(f"sort: {sort!r} is not one of {', '.join(TASK_SORTS)}")
        order = _opt(req, "order") or "desc"
        if order not in ("asc", "desc"):
            raise BadRequest(f"order: {order!r} is not asc or desc")
        return TaskQuery(day=_day(_opt(req, "day")), task_type=_opt(req, "type"),
                         model=_opt(req, "model"), outcome=_opt(req, "outcome"),
                         session=_opt(req, "session"), user=_opt(req, "user"), sort=sort,
                         desc=order == "desc",
                         limit=_int_param(req, "limit", 50, 1, 1000) or 50,
                         offset=_int_param(req, "offset", 0) or 0)

    def tasks(req: Request) -> Response:
        q = task_query(req)
        s = snap()
        rows, n = ds.tasks(q)
        return _html(pages.tasks_page(s, q, rows, n, stale()))

    def task(req: Request) -> Response:
        key = req.path_params["key"]
        s = snap()
        t = ds.task(key)
        if t is None:
            return _html(pages.error_page(404, f"no task {key!r}"), 404)
        return _html(pages.task_page(s, t, ds.task_calls(key), stale()))

    def call(req: Request) -> Response:
        key = req.path_params["key"]
        s = snap()
        c, audit = ds.call(key, _opt(req, "task"))
        if c is None:
            return _html(pages.error_page(404, f"no call {key!r}"), 404)
        return _html(pages.call_page(s, c, audit, stale()))

    def whatif(req: Request) -> Response:
        s = snap()
        form = {k: v for k, v in req.query_params.items()}
        result, error = None, None
        if _opt(req, "run"):
            ttl, caching = _opt(req, "ttl"), _opt(req, "caching")
            if ttl not in (None, "5m", "1h"):
                raise BadRequest(f"ttl: {ttl!r} is not 5m or 1h")
            if caching not in (None, "on", "off"):
                raise BadRequest(f"caching: {caching!r} is not on or off")
            hw = _int_param(req, "history_window", None, 0, 10**6)
            model = _opt(req, "model")
            if not (model or ttl or caching or hw is not None):
                error = "nothing to change: pick a model, a TTL, a history window or caching"
            else:
                try:
                    result = ds.whatif(_opt(req, "type"), model=model, ttl=ttl,
                                       history_window=hw, caching=caching)
                except CtxBudgetError as exc:
                    error = str(exc)
        return _html(pages.whatif_page(s, form, result, error, stale()))

    def api_version(req: Request) -> Response:
        s = ds.snapshot(block=False)
        return JSONResponse({"version": None if s is None else s.version,
                             "built_at": None if s is None else s.built_at.isoformat(),
                             "stale": stale()}, headers={"Cache-Control": "no-store"})

    def api_overview(req: Request) -> Response:
        from ...report.json import to_jsonable

        s = snap()
        return JSONResponse(to_jsonable({
            "version": s.version, "source": s.source, "by_day": s.by_day,
            "by_type": s.by_type, "by_model": s.by_model, "day_type": s.day_type,
            "signals": list(s.signals), "pending_spool_calls": s.pending_spool_calls,
            "budgets": None if not gateways else [
                {"gateway": b.gateway, "budget": b.budget, "scope": b.scope, "unit": b.unit,
                 "remaining": b.remaining, "blocked": b.blocked} for b in (budgets() or
                                                                         ([], []))[0]]}))

    def api_tasks(req: Request) -> Response:
        from ...report.json import to_jsonable

        q = task_query(req)
        rows, n = ds.tasks(q)
        return JSONResponse(to_jsonable({"count": n, "tasks": rows}))

    def healthz(req: Request) -> Response:
        return JSONResponse({"ok": True})

    def static(req: Request) -> Response:
        item = assets.get(req.path_params["name"])
        if item is None:
            return Response("not found", 404)
        return Response(item[0], media_type=item[1],
                        headers={"Cache-Control": "public, max-age=3600"})

    routes = [
        Route("/", overview), Route("/day/{day}", day), Route("/tasks", tasks),
        Route("/task/{key:path}", task), Route("/call/{key:path}", call),
        Route("/whatif", whatif), Route("/api/version", api_version),
        Route("/api/overview", api_overview), Route("/api/tasks", api_tasks),
        Route("/healthz", healthz), Route("/static/{name}", static),
    ]

    async def bad_request(req: Request, exc: Exception) -> Response:
        return _html(pages.error_page(400, str(exc)), 400)

    async def user_error(req: Request, exc: Exception) -> Response:
        return _html(pages.error_page(503, f"the data cannot be read: {exc}"), 503)

    app = Starlette(routes=routes, exception_handlers={
        BadRequest: bad_request, CtxBudgetError: user_error})
    if token:
        app.add_middleware(_TokenMiddleware, token=token)
    return app


class _TokenMiddleware:
    """Require the access token (header, cookie or a one-time ``?token=``)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        auth = req.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        if self._ok(bearer) or self._ok(req.cookies.get("ctxbudget_token")):
            await self.app(scope, receive, send)
            return
        if self._ok(req.query_params.get("token")):
            rest = [(k, v) for k, v in req.query_params.multi_items() if k != "token"]
            from urllib.parse import urlencode

            url = scope["path"] + ("?" + urlencode(rest) if rest else "")
            resp: Response = RedirectResponse(url, status_code=303)
            resp.set_cookie("ctxbudget_token", self.token, httponly=True, samesite="strict")
            await resp(scope, receive, send)
            return
        resp = Response("an access token is required (?token=... once, or "
                        "Authorization: Bearer ...)\n", status_code=401,
                        media_type="text/plain")
        await resp(scope, receive, send)
