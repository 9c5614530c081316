"""``renkei email``: templates, list / one-to-one / test sends, the send queue, bounces."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, print_table
from renkei.email import bounces
from renkei.email.service import EmailService
from renkei.errors import InputError

email_app = typer.Typer(help="Email: templates, sends, the send queue, bounces.", no_args_is_help=True)
template_app = typer.Typer(help="Email templates.", no_args_is_help=True)
email_app.add_typer(template_app, name="template")


def _service() -> EmailService:
    return EmailService(engine(), clock=clock())


def _read(path: Path | None, what: str) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path}: {exc.strerror}", code="INVALID_ARGUMENT") from None


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--at expects an ISO-8601 time such as 2026-12-01T09:00+09:00, got {value!r}",
                         code="INVALID_ARGUMENT") from None  # fmt: skip
    if when.tzinfo is None:
        raise InputError("--at needs a time zone offset (e.g. +09:00)", code="INVALID_ARGUMENT")
    return when.astimezone(dt.UTC)


@template_app.command("create")
@handle_errors
def template_create(
    name: Annotated[str, typer.Option(help="Template name.")],
    subject: Annotated[str, typer.Option(help="Subject (Jinja2; e.g. '{{ prospect.company }}様へ').")],
    html_file: Annotated[Path | None, typer.Option("--html-file", help="HTML part (Jinja2).")] = None,
    text_file: Annotated[Path | None, typer.Option("--text-file", help="Text part (Jinja2).")] = None,
    operational: Annotated[
        bool, typer.Option(help="Operational email (ignores opt-out where allowed).")
    ] = False,
    from_address: Annotated[str | None, typer.Option("--from", help="Sender address.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an email template from HTML and text files."""
    html = _read(html_file, "HTML")
    text = _read(text_file, "text")
    if not html and not text:
        raise InputError("give --html-file and/or --text-file", code="REQUIRED_FIELD_MISSING")
    tpl = _service().create_template(name, subject, html or f"<pre>{text}</pre>", text or html, operational=operational,
                                     from_address=from_address)  # fmt: skip
    emit(tpl, as_json, lambda d: print(f"template {d['id']} created: {d['name']}"))


@template_app.command("list")
@handle_errors
def template_list(as_json: JsonOpt = False) -> None:
    """List email templates."""
    rows = _service().list_templates()
    emit(rows, as_json, lambda d: print_table(d, ["id", "name", "subject", "isOperational"]))


@email_app.command("send-test")
@handle_errors
def send_test(
    template_id: Annotated[int, typer.Argument(help="Template id.")],
    to: Annotated[str, typer.Option("--to", help="Recipient address for the test.")],
    prospect: Annotated[
        int | None, typer.Option("--prospect", help="Render with this prospect's data.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a test of a template now (subject prefixed [TEST], links untracked)."""
    emit(_service().send_test(template_id, to, prospect_id=prospect), as_json,
         lambda d: print(f"test sent to {d['to']}: {d['subject']}"))  # fmt: skip


@email_app.command("send")
@handle_errors
def send(
    list_id: Annotated[int, typer.Argument(help="Recipient list id.")],
    template_id: Annotated[int, typer.Argument(help="Template id.")],
    at: Annotated[str | None, typer.Option("--at", help="Schedule: ISO-8601 time with offset.")] = None,
    suppress: Annotated[
        list[int] | None, typer.Option("--suppress", help="Suppression list id (repeatable).")
    ] = None,
    also: Annotated[
        list[int] | None, typer.Option("--list", help="Another recipient list (repeatable).")
    ] = None,
    operational: Annotated[bool, typer.Option(help="Send as operational email.")] = False,
    work: Annotated[bool, typer.Option(help="Work the queue now (in-process) after queueing.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Send a list email now (queued and worked in-process) or schedule it with --at."""
    svc = _service()
    summary = svc.send_list_email([list_id, *(also or [])], template_id, suppression_ids=suppress or [],
                                  at=_parse_time(at), operational=operational)  # fmt: skip
    out = summary.to_dict()
    if work and summary.status == "queued":
        out["delivery"] = svc.work(limit=max(summary.queued, 1) * 2).to_dict()
    emit(out, as_json, lambda d: print(f"list email {d['listEmailId']}: {d['status']}, {d['queued']} queued, "
                                       f"{d['skipped']} skipped"))  # fmt: skip


@email_app.command("one-to-one")
@handle_errors
def one_to_one(
    prospect_id: Annotated[int, typer.Argument(help="Prospect id.")],
    template_id: Annotated[int, typer.Argument(help="Template id.")],
    as_json: JsonOpt = False,
) -> None:
    """Send one tracked email to one prospect (queued and worked at once)."""
    svc = _service()
    out = svc.send_one_to_one(prospect_id, template_id)
    out["delivery"] = svc.work(limit=10).to_dict()
    emit(out, as_json, lambda d: print(f"email to prospect {d['prospectId']} sent"))


@email_app.command("work")
@handle_errors
def work(
    limit: Annotated[int, typer.Option(help="At most this many messages.")] = 10000,
    rate: Annotated[float | None, typer.Option(help="At most this many messages per second.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Work the send queue once: queue due scheduled emails, send due messages, retry failures later."""
    emit(_service().work(limit=limit, rate_per_second=rate).to_dict(), as_json,
         lambda d: print(f"sent {d['sent']}, failed {d['failed']}, retry later {d['retried']}, "
                         f"{d['remaining']} still queued"))  # fmt: skip


@email_app.command("queue")
@handle_errors
def queue(as_json: JsonOpt = False) -> None:
    """Show the send queue: queued, sent, failed messages and scheduled list emails."""
    emit(_service().queue_status(), as_json, lambda d: print_table([d], list(d)))


@email_app.command("bounces")
@handle_errors
def process_bounces(
    path: Annotated[Path, typer.Argument(help="Maildir, mbox, directory of .eml files or one .eml file.")],
    as_json: JsonOpt = False,
) -> None:
    """Process bounce (DSN) and complaint (ARF) messages from a bounce mailbox."""
    svc = _service()
    results = []
    with svc.engine.begin() as conn:
        for key, raw in bounces.read_messages(path):
            for item in bounces.parse(raw):
                if isinstance(item, bounces.Bounce):
                    applied = svc.apply_bounce(conn, item.message_id, item.address, item.hard, item.reason)
                    results.append({"message": key, "kind": "hard_bounce" if item.hard else "soft_bounce",
                                    "address": item.address, "status": item.status, "applied": applied})  # fmt: skip
                else:
                    applied = svc.apply_complaint(conn, item.message_id, item.address)
                    results.append(
                        {"message": key, "kind": "complaint", "address": item.address, "applied": applied}
                    )
    emit({"processed": len(results), "results": results}, as_json,
         lambda d: print_table(d["results"], ["message", "kind", "address"]))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(email_app, name="email")
