"""Tracking ingest benchmark: page-view hits over real HTTP from concurrent clients.

    .venv/bin/python bench/tracking_ingest.py [--seconds 20] [--connections 64] [--clients 1]
        [--workers 1] [--url sqlite:///bench-tracking.db]

Starts ``uvicorn`` serving renkei (``--workers`` processes) on a free port, then ``--clients``
client processes, each keeping ``--connections`` keep-alive HTTP/1.1 connections busy with
``GET /track/pv.gif`` requests (a raw asyncio client: an HTTP library would cost more CPU than the
server under test). Every client behaves like browsers: it keeps the visitor cookie it is given,
and starts a new visitor every 20 page views. At the end it counts the 200 answers (acknowledged
hits) and compares with the page views in the database: nothing acknowledged may be missing.
Target: ≥ 5,000 hits/s sustained on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import sqlalchemy as sa

from renkei.store import migrate
from renkei.store.db import make_engine

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


async def _connection(port: int, stop_at: float, counts: list[int], idx: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cookie = ""
    n = 0
    while time.monotonic() < stop_at:
        if n % 20 == 0:
            cookie = ""
        path = f"/track/pv.gif?u=https%3A%2F%2Fexample.jp%2Fpage{n % 7}%3Futm_source%3Dbench&t=Page&c=1"
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {UA}\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        writer.write((head + "\r\n").encode())
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "set-cookie" and value.strip().startswith("renkei_vid="):
                cookie = value.strip().split(";", 1)[0]
        await reader.readexactly(length)
        if status_line.split()[1] == b"200":
            counts[0] += 1
        else:
            counts[1] += 1
        n += 1
    writer.close()


def _client(port: int, connections: int, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    counts = [0, 0]

    async def run() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_connection(port, stop_at, counts, i) for i in range(connections)))

    asyncio.run(run())
    out.put(counts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--url", default="sqlite:///bench-tracking.db")
    args = parser.parse_args()
    if args.url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            path = args.url.removeprefix("sqlite:///") + suffix
            if os.path.exists(path):
                os.remove(path)
    migrate.upgrade(args.url)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "renkei.web.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "RENKEI_DATABASE_URL": args.url},
    )  # fmt: skip
    try:
        _wait_for(port)
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        procs = [
            multiprocessing.Process(target=_client, args=(port, args.connections, args.seconds, out))
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        cpu_before = _cpu_seconds(server.pid)
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        elapsed = time.monotonic() - started
        server_cpu = _cpu_seconds(server.pid) - cpu_before
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(10)
    acked = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    engine = make_engine(args.url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM visitor_page_view")).scalar_one()
        visitors = conn.execute(sa.text("SELECT count(*) FROM visitor")).scalar_one()
        visits = conn.execute(sa.text("SELECT count(*) FROM visit")).scalar_one()
    engine.dispose()
    rate = acked / elapsed
    print(f"{args.clients} client process(es) × {args.connections} connections, {args.workers} server worker(s), "
          f"{elapsed:.1f} s on {os.cpu_count()} cores")  # fmt: skip
    print(
        f"acknowledged {acked:,} hits ({refused:,} refused) → {rate:,.0f} hits/s; target 5,000 → ratio {rate / 5000:.2f}x"
    )
    print(f"server CPU {server_cpu:.1f} s → {acked / max(server_cpu, 0.001):,.0f} hits per server CPU-second; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"stored {stored:,} page views, {visitors:,} visitors, {visits:,} visits; "
          f"lost acknowledged hits: {max(0, acked - stored)}")  # fmt: skip
    if stored < acked:
        sys.exit(1)


if __name__ == "__main__":
    main()
