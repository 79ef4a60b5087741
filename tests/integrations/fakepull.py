"""Local fakes of the Langfuse public API (observations list) and the LiteLLM proxy's spend
logs API, serving the rows of ``data/`` page by page (see data/README.md)."""

from __future__ import annotations

import base64
import json
import math
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).parent / "data"

__all__ = ["FakePull"]


def _ts(v: str) -> datetime:
    t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class FakePull:
    """Serves ``/api/public/observations`` (Basic auth) and ``/spend/logs/v2`` (Bearer)."""

    def __init__(self, *, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test",
                 litellm_key: str = "sk-litellm-test") -> None:
        self.observations: list[dict[str, Any]] = json.loads(
            (DATA / "langfuse-observations.json").read_text())
        self.spend_logs: list[dict[str, Any]] = json.loads(
            (DATA / "litellm-spend-logs.json").read_text())
        self.basic = "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.bearer = f"Bearer {litellm_key}"
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_next: int | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakePull:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = fake._handle(self.path, dict(self.headers.items()))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        parts = urlsplit(path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.requests.append((parts.path, q))
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return status, {"message": "injected failure"}
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if parts.path == "/api/public/observations":
            if auth != self.basic:
                return 401, {"message": "Invalid credentials"}
            rows = [o for o in self.observations if "fromStartTime" not in q
                    or _ts(o["startTime"]) >= _ts(q["fromStartTime"])]
            if q.get("type"):
                rows = [o for o in rows if o["type"] == q["type"]]
            rows.sort(key=lambda o: _ts(o["startTime"]), reverse=True)  # newest first
            page, limit = int(q.get("page", 1)), int(q.get("limit", 50))
            return 200, {"data": rows[(page - 1) * limit: page * limit],
                         "meta": {"page": page, "limit": limit, "totalItems": len(rows),
                                  "totalPages": math.ceil(len(rows) / limit)}}
        if parts.path == "/spend/logs/v2":
            if auth != self.bearer:
                return 401, {"error": {"message": "Authentication Error", "type": "auth_error"}}
            if "start_date" not in q or "end_date" not in q:
                return 400, {"error": {"message": "Start date and end date are required"}}
            lo = datetime.strptime(q["start_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            hi = datetime.strptime(q["end_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            rows = [r for r in self.spend_logs if lo <= _ts(r["startTime"]) <= hi]
            rows.sort(key=lambda r: _ts(r["startTime"]),
                      reverse=q.get("sort_order", "desc") == "desc")
            page, size = int(q.get("page", 1)), int(q.get("page_size", 50))
            return 200, {"data": rows[(page - 1) * size: page * size], "total": len(rows),
                         "page": page, "page_size": size,
                         "total_pages": math.ceil(len(rows) / size)}
        return 404, {"message": f"no route {parts.path}"}
