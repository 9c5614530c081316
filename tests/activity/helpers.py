"""Shared pieces of the activity tests: a fixed clock, prospects, activities."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from sqlalchemy.engine import Engine

from renkei.clock import Clock, FixedClock
from renkei.marketing.service import ProspectService

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def clock() -> FixedClock:
    return FixedClock(T0)


def prospect(engine: Engine, clk: FixedClock, email: str = "yamada@example.co.jp", **values: Any) -> int:
    return int(ProspectService(engine, clock=clk).create({"email": email, **values})["id"])


def get(engine: Engine, pid: int) -> dict[str, Any]:
    return ProspectService(engine).get(pid, include_deleted=True)


@contextlib.contextmanager
def live_server(engine: Engine, clk: Clock) -> Iterator[str]:
    """The renkei web app on a free local port (real HTTP), yielding its base URL."""
    from renkei.web.app import create_app

    app = create_app(engine=engine, clock=clk)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        app.state.tracking.close()
