from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.core.identity import email_key
from renkei.store import tables as t
from renkei.web.app import create_app

T0 = dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC)  # Tuesday 09:00 in Tokyo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sink:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def web(engine: Engine, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real renkei server on 127.0.0.1 sharing the test's clock; tracking links point to it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("RENKEI_PUBLIC_URL", base)
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, clock), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    yield base
    server.should_exit = True
    thread.join(5)


def add_prospect(engine: Engine, email: str, **values: Any) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                t.prospect.insert()
                .values({"email": email, "emailKey": email_key(email), "score": 0, "createdAt": T0,
                         "updatedAt": T0, "isDeleted": False, **values})
                .returning(t.prospect.c.id)
            ).scalar_one()
        )  # fmt: skip


def add_list(engine: Engine, name: str, members: list[int], *, public: bool = False) -> int:
    with engine.begin() as conn:
        list_id = int(
            conn.execute(
                t.list_.insert()
                .values(name=name, title=name, isPublic=public, isDynamic=False, isCrmVisible=False,
                        createdAt=T0, updatedAt=T0)
                .returning(t.list_.c.id)
            ).scalar_one()
        )  # fmt: skip
        for pid in members:
            conn.execute(t.list_membership.insert().values(listId=list_id, prospectId=pid, optedOut=False,
                                                           createdAt=T0, updatedAt=T0))  # fmt: skip
    return list_id


def activities(engine: Engine, prospect_id: int) -> list[tuple[int, str]]:
    va = t.visitor_activity
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(va.c.type, va.c.typeName).where(va.c.prospectId == prospect_id).order_by(va.c.id)
        )
        return [(r.type, r.typeName) for r in rows]
