"""The bare ASGI baseline for bench/http_load.py: the same stack (uvicorn, Litestar, msgspec),
one route that decodes the event and answers, and nothing else."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post
from litestar.params import JSONBody


@post("/v1/events", status_code=200)
async def events(data: JSONBody[dict[str, Any]]) -> dict[str, bool]:
    return {"ok": isinstance(data, dict)}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[events, healthz], logging_config=None)
