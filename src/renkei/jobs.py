"""The job system: periodic jobs of every feature, run in-process or by workers on PostgreSQL.

Each feature declares its periodic work in a ``jobs`` module (``renkei/<feature>/jobs.py``) as
``JOBS: list[PeriodicJob]`` — e.g. the email send queue, nurture programs, the connector's sync
cycle. They are discovered here.

- **In-process** (SQLite, or one machine): ``renkei worker`` runs every due job in a loop.
- **Workers on PostgreSQL**: ``renkei worker --procrastinate`` runs a procrastinate worker
  (procrastinate is a PostgreSQL job library): each job is a procrastinate task deferred by a
  periodic schedule, each deferral is taken by exactly one worker however many run, and a queueing
  lock keeps at most one waiting run per job. The jobs themselves claim their rows with
  ``FOR UPDATE SKIP LOCKED`` where several may run at once (the send queue).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import pkgutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

import renkei
from renkei.clock import Clock, SystemClock
from renkei.errors import ConfigError, RenkeiError


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every_seconds: int
    run: Callable[[Engine, Clock], dict[str, Any]]
    description: str = ""


def discover() -> list[PeriodicJob]:
    """Every feature's periodic jobs, by name."""
    jobs: dict[str, PeriodicJob] = {}
    for mod in pkgutil.iter_modules(renkei.__path__):
        if not mod.ispkg:
            continue
        try:
            module = importlib.import_module(f"renkei.{mod.name}.jobs")
        except ModuleNotFoundError as exc:
            if exc.name != f"renkei.{mod.name}.jobs":
                raise
            continue
        for job in getattr(module, "JOBS", []):
            jobs[job.name] = job
    return sorted(jobs.values(), key=lambda j: j.name)


@dataclass(frozen=True, slots=True)
class JobRun:
    name: str
    started: dt.datetime
    seconds: float
    result: dict[str, Any] | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.name, "started": self.started, "seconds": round(self.seconds, 3),
                "result": self.result, "error": self.error}  # fmt: skip


def run_job(job: PeriodicJob, engine: Engine, clock: Clock) -> JobRun:
    """Run one job; renkei errors are reported in the run (the loop goes on), bugs propagate."""
    started = clock.now()
    t0 = time.perf_counter()
    try:
        result = job.run(engine, clock)
    except RenkeiError as exc:
        return JobRun(job.name, started, time.perf_counter() - t0, None, str(exc))
    return JobRun(job.name, started, time.perf_counter() - t0, result, None)


def run_in_process(
    engine: Engine, *, clock: Clock | None = None, only: set[str] | None = None, once: bool = False,
    tick: float = 1.0, stop: Callable[[], bool] = lambda: False,
) -> Iterator[JobRun]:  # fmt: skip
    """Run due jobs in this process; with ``once`` every selected job runs exactly once."""
    clock = clock or SystemClock()
    jobs = [j for j in discover() if only is None or j.name in only]
    if only and only - {j.name for j in jobs}:
        raise ConfigError(f"unknown job(s): {', '.join(sorted(only - {j.name for j in jobs}))}")
    last: dict[str, float] = {}
    while True:
        for job in jobs:
            now = time.monotonic()
            if once or now - last.get(job.name, -1e18) >= job.every_seconds:
                last[job.name] = now
                yield run_job(job, engine, clock)
        if once or stop():
            return
        time.sleep(tick)


# -- PostgreSQL workers (procrastinate) -----------------------------------------------------


def _conninfo(engine: Engine) -> str:
    if engine.dialect.name != "postgresql":
        raise ConfigError(
            "procrastinate workers need PostgreSQL (RENKEI_DATABASE_URL=postgresql+psycopg://…)"
        )
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def procrastinate_app(engine: Engine, *, clock: Clock | None = None) -> Any:
    """A procrastinate App with one task and one periodic schedule per renkei job."""
    import procrastinate

    clock = clock or SystemClock()
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=_conninfo(engine)))
    for job in discover():
        app.periodic(cron=_cron(job.every_seconds), periodic_id=job.name)(
            app.task(name=job.name, queueing_lock=job.name, pass_context=False)(
                _task_body(job, engine, clock)
            )
        )
    return app


def _task_body(job: PeriodicJob, engine: Engine, clock: Clock) -> Callable[..., None]:
    def body(timestamp: int | None = None) -> None:
        run = run_job(job, engine, clock)
        if run.error:
            raise RuntimeError(run.error)

    body.__name__ = job.name.replace(".", "_")
    return body


def _cron(every_seconds: int) -> str:
    """croniter syntax with seconds as the sixth field."""
    if every_seconds < 60:
        return f"* * * * * */{max(every_seconds, 1)}"
    minutes = max(every_seconds // 60, 1)
    return f"*/{minutes} * * * *"


def install_procrastinate_schema(engine: Engine) -> bool:
    """Apply procrastinate's schema once (idempotent: skipped when already there)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        exists = conn.execute(text("select to_regclass('procrastinate_jobs')")).scalar()
    if exists:
        return False
    app = procrastinate_app(engine)
    with app.open():
        app.schema_manager.apply_schema()
    return True


def run_procrastinate_worker(engine: Engine, *, clock: Clock | None = None, wait: bool = True,
                             concurrency: int = 1) -> None:  # fmt: skip
    install_procrastinate_schema(engine)
    app = procrastinate_app(engine, clock=clock)
    with app.open(), contextlib.suppress(KeyboardInterrupt):
        app.run_worker(wait=wait, concurrency=concurrency, install_signal_handlers=wait)
