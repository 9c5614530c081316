from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei import jobs
from renkei.clock import FixedClock
from renkei.email.service import EmailService
from renkei.email.smtp import SmtpSettings
from renkei.store.db import make_engine
from renkei.store.tables_email import email_message

from .conftest import Sink, add_list, add_prospect


def _queue_one(engine: Engine, clock: FixedClock, port: int) -> None:
    svc = EmailService(engine, clock=clock, smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    pid = add_prospect(engine, "job@example.jp")
    lst = add_list(engine, "l", [pid])
    tpl = svc.create_template("t", "s", "<p>x</p>", "x")
    assert svc.send_list_email([lst], tpl["id"]).queued == 1


def _statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r.status for r in conn.execute(sa.select(email_message.c.status))]


def test_jobs_are_discovered() -> None:
    names = {j.name for j in jobs.discover()}
    assert {"email.work", "program.run"} <= names


def test_in_process_worker_sends_the_queue(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int], monkeypatch: object
) -> None:
    sink, port = smtp_sink
    _queue_one(engine, clock, port)
    import os

    os.environ["RENKEI_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    try:
        runs = list(jobs.run_in_process(engine, clock=clock, only={"email.work"}, once=True))
    finally:
        del os.environ["RENKEI_SMTP_URL"]
    assert [(r.name, r.error, r.result) for r in runs] == [
        ("email.work", None, {"sent": 1, "failed": 0, "retried": 0, "remaining": 0})
    ]
    assert _statuses(engine) == ["sent"] and len(sink.messages) == 1


def test_procrastinate_worker_on_postgresql(
    pg_url: str, clock: FixedClock, smtp_sink: tuple[Sink, int], monkeypatch: object
) -> None:
    sink, port = smtp_sink
    engine = make_engine(pg_url)
    try:
        _queue_one(engine, clock, port)
        import os

        os.environ["RENKEI_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        try:
            assert jobs.install_procrastinate_schema(engine) is True
            assert jobs.install_procrastinate_schema(engine) is False
            app = jobs.procrastinate_app(engine, clock=clock)
            with app.open():
                app.tasks["email.work"].defer()
                app.run_worker(wait=False, install_signal_handlers=False)
        finally:
            del os.environ["RENKEI_SMTP_URL"]
        assert _statuses(engine) == ["sent"] and len(sink.messages) == 1
    finally:
        engine.dispose()
