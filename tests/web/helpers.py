"""Shared pieces of the web tests: a live server on a free port, users, sign-in over HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.web.auth import AuthService

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"


@contextlib.contextmanager
def live_server(engine: Engine, clock: Clock, **settings: Any) -> Iterator[str]:
    """The renkei web app on a free local port (real HTTP), yielding its base URL."""
    from renkei.web.app import create_app

    app = create_app(engine=engine, clock=clock, **settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
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
        sock.close()
        tracking = getattr(app.state, "tracking", None)
        if tracking is not None:
            tracking.close()


def make_user(engine: Engine, email: str = "admin@example.com", role: str = "admin") -> dict[str, Any]:
    return AuthService(engine).create_user(email, role=role, password=PASSWORD)


class Browser:
    """An HTTP client that keeps renkei's cookies by hand: they are ``Secure``, and httpx's
    cookie jar (rightly) does not send those over plain http, which browsers allow on 127.0.0.1."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if (
                "expires=thu, 01 jan 1970" in header.lower()
                or "max-age=0" in header.lower()
                or value in ("", '""')
            ):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        return {**headers, **(extra or {})}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self._keep(self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw))

    def post(self, path: str, data: dict[str, Any], *, csrf: bool = True, **kw: Any) -> httpx.Response:
        body = {**data, "csrf_token": self.csrf} if csrf else data
        return self._keep(
            self.client.post(path, data=body, headers=self._headers(kw.pop("headers", None)), **kw)
        )

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        self.get("/app/login")
        response = self.post("/app/login", {"email": email, "password": password})
        if response.status_code == 303:
            self.get("/app")  # picks up the session's CSRF token from the page's forms
        return response

    def close(self) -> None:
        self.client.close()
