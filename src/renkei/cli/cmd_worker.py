"""``renkei worker``: run the periodic jobs (in-process, or procrastinate workers on PostgreSQL)."""

from __future__ import annotations

from typing import Annotated

import typer

from renkei import jobs
from renkei.cli._common import JsonOpt, clock, dumps, emit, engine, handle_errors, print_table


@handle_errors
def worker(
    once: Annotated[bool, typer.Option(help="Run every job once and exit.")] = False,
    job: Annotated[list[str] | None, typer.Option("--job", help="Only this job (repeatable).")] = None,
    use_procrastinate: Annotated[
        bool, typer.Option("--procrastinate", help="Run as a procrastinate worker (PostgreSQL; run several).")
    ] = False,
    concurrency: Annotated[int, typer.Option(help="Procrastinate worker concurrency.")] = 1,
    list_jobs: Annotated[bool, typer.Option("--list", help="List the jobs and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the periodic jobs: email queue, nurture programs, the connector's cycle, …"""
    if list_jobs:
        rows = [
            {"job": j.name, "everySeconds": j.every_seconds, "description": j.description}
            for j in jobs.discover()
        ]
        emit(rows, as_json, lambda d: print_table(d, ["job", "everySeconds", "description"]))
        return
    if use_procrastinate:
        jobs.run_procrastinate_worker(engine(), clock=clock(), wait=not once, concurrency=concurrency)
        return
    runs = []
    for run in jobs.run_in_process(engine(), clock=clock(), only=set(job) if job else None, once=once):
        if once:
            runs.append(run.to_dict())
        elif as_json:
            print(dumps(run.to_dict()).replace("\n", ""), flush=True)
        else:
            status = f"error: {run.error}" if run.error else "ok"
            print(f"{run.started:%Y-%m-%d %H:%M:%S} {run.name} {status} {run.seconds:.2f}s", flush=True)
    if once:
        emit(runs, as_json, lambda d: print_table(d, ["job", "seconds", "error"]))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
