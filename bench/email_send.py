"""Benchmark: a list email to N recipients rendered and handed to a local SMTP sink.

    .venv/bin/python bench/email_send.py --recipients 100000

Prints the time to render and queue (one row per recipient, each with its own tracked links),
the time to hand every message to the SMTP server (aiosmtpd's Sink in its own process on 127.0.0.1), and
messages/s for each phase and end to end. Baseline in the same run: rendering the same template
N times with Jinja2 alone, without the store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from renkei.clock import SystemClock
from renkei.core.identity import email_key
from renkei.email.render import CompiledTemplate
from renkei.email.service import EmailService
from renkei.email.smtp import SmtpSettings
from renkei.store import migrate
from renkei.store import tables as t
from renkei.store.db import make_engine

HTML = """<html><body><p>{{ prospect.lastName }} {{ prospect.firstName | default('ご担当者', true) }} 様</p>
<p>{{ prospect.company }} のみなさまへ、新製品セミナーのご案内です。</p>
<a href="https://example.jp/seminar?utm_source=email">お申し込み</a>
<a href="https://example.jp/docs">資料ダウンロード</a>
<a href="{{ unsubscribe_url }}">配信停止</a></body></html>"""
TEXT = "{{ prospect.lastName }} 様\nhttps://example.jp/seminar\n配信停止: {{ unsubscribe_url }}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    n = args.recipients
    tmp = tempfile.mkdtemp()
    url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        list_id = conn.execute(t.list_.insert().values(name="bench", isPublic=False, isDynamic=False,
                                                       isCrmVisible=False, createdAt=now, updatedAt=now)
                               .returning(t.list_.c.id)).scalar_one()  # fmt: skip
        rows = [{"email": f"p{i}@example.jp", "emailKey": email_key(f"p{i}@example.jp"), "lastName": f"山田{i}",
                 "company": "連携商事", "score": 0, "isDeleted": False, "createdAt": now, "updatedAt": now}
                for i in range(n)]  # fmt: skip
        conn.execute(t.prospect.insert(), rows)
        ids = [r.id for r in conn.execute(sa.select(t.prospect.c.id))]
        conn.execute(t.list_membership.insert(), [{"listId": list_id, "prospectId": i, "optedOut": False,
                                                    "createdAt": now, "updatedAt": now} for i in ids])  # fmt: skip

    compiled = CompiledTemplate("{{ prospect.lastName }} 様", HTML, TEXT)
    t0 = time.perf_counter()
    for i in range(n):
        compiled.render({"prospect": {"lastName": f"山田{i}", "company": "連携商事"},
               "unsubscribe_url": "https://x/u"}, track_link=lambda k: f"https://x/c/{k}", open_pixel="https://x/o.gif")  # fmt: skip
    baseline = time.perf_counter() - t0

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the sink runs in its own process, as a real local MTA would
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                             "-l", f"127.0.0.1:{port}"])  # fmt: skip
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    svc = EmailService(engine, clock=SystemClock(), smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    tpl = svc.create_template("bench", "{{ prospect.lastName }} 様へセミナーのご案内", HTML, TEXT)
    t1 = time.perf_counter()
    summary = svc.send_list_email([list_id], tpl["id"])
    queued = time.perf_counter() - t1
    t2 = time.perf_counter()
    work = svc.work(limit=n + 10, batch=1000)
    sent = time.perf_counter() - t2
    sink.terminate()
    _, _, usage = os.wait4(sink.pid, 0)
    sink_cpu = usage.ru_utime + usage.ru_stime
    if not (summary.queued == n and work.sent == n):
        with engine.connect() as conn:
            print(conn.execute(sa.text('select "lastError" from email_message limit 1')).all())
        raise SystemExit(f"incomplete: {summary} {work}")
    print(f"recipients            {n}")
    print(f"baseline render only  {baseline:8.1f} s  {n / baseline:10.0f} msg/s")
    print(
        f"render + queue        {queued:8.1f} s  {n / queued:10.0f} msg/s  ({queued / baseline:.2f}x baseline)"
    )
    print(f"SMTP hand-off         {sent:8.1f} s  {n / sent:10.0f} msg/s")

    own = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"  CPU seconds: renkei {own.ru_utime + own.ru_stime:.1f}, SMTP sink {sink_cpu:.1f}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"end to end            {queued + sent:8.1f} s  {n / (queued + sent):10.0f} msg/s")


if __name__ == "__main__":
    main()
