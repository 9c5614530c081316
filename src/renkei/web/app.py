"""The FastAPI application. Route modules in ``renkei.web.routes`` are discovered: each exposes
``router`` (an ``APIRouter``) and may expose ``setup(app)`` for anything else it needs."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from renkei import __version__
from renkei.clock import Clock, SystemClock
from renkei.errors import RenkeiError
from renkei.store.db import get_engine


def create_app(engine: Engine | None = None, clock: Clock | None = None, **settings: Any) -> FastAPI:
    app = FastAPI(title="renkei", version=__version__, description="renkei web app and APIs")
    app.state.engine = engine or get_engine()
    app.state.clock = clock or SystemClock()
    app.state.settings = settings

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(RenkeiError)
    async def renkei_error(_request: Request, exc: RenkeiError) -> JSONResponse:
        return JSONResponse({"errorCode": exc.code, "message": exc.message}, status_code=exc.http_status)

    import renkei.web.routes as routes

    for mod in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes.__name__}.{mod.name}")
        if hasattr(module, "setup"):
            module.setup(app)
        if hasattr(module, "router"):
            app.include_router(module.router)
    return app
