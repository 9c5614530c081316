"""Email service: templates, list / operational / one-to-one / test sends, the send queue,
tracking (opens, clicks, unsubscribes, preferences) and bounces.

Who may be mailed: never a deleted, opted-out (``optedOut``), do-not-email (``isDoNotEmail``) or
undeliverable (``isEmailHardBounced``) prospect, nor one on a suppression list or opted out of the
list. Operational emails ignore ``optedOut`` (marketing consent) — only when the account setting
``allow_operational_email`` is on — but still respect do-not-email and undeliverable.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock
from renkei.email import activity
from renkei.email.render import CompiledTemplate, Rendered, check_template, render
from renkei.email.smtp import OutgoingMessage, RecipientRefused, SmtpConnection, SmtpSettings
from renkei.errors import InputError, NotFoundError, RetriableError
from renkei.store import tables as t
from renkei.store.tables_email import email_message, email_template, list_email

MAX_ATTEMPTS = 5
#: Soft bounces before a prospect is undeliverable (AE: the fifth).
SOFT_BOUNCE_LIMIT = 5


def public_url() -> str:
    return os.environ.get("RENKEI_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")


def _signing_key(conn: Connection, now: dt.datetime) -> str:
    env = os.environ.get("RENKEI_SECRET_KEY")
    if env:
        return env
    row = conn.execute(sa.select(t.setting.c.value).where(t.setting.c.key == "email_signing_key")).first()
    if row is not None:
        return str(row.value)
    key = secrets.token_hex(32)
    conn.execute(
        t.setting.insert().values(key="email_signing_key", value=key, updatedAt=now, updatedBy="system")
    )
    return key


@dataclass(frozen=True, slots=True)
class SendSummary:
    list_email_id: int | None
    status: str
    queued: int
    skipped: int
    scheduled_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "listEmailId": self.list_email_id,
            "status": self.status,
            "queued": self.queued,
            "skipped": self.skipped,
            "scheduledAt": self.scheduled_at,
        }


@dataclass(frozen=True, slots=True)
class WorkSummary:
    sent: int
    failed: int
    retried: int
    remaining: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
            "remaining": self.remaining,
        }


class EmailService:
    def __init__(
        self, engine: Engine, *, clock: Clock | None = None, smtp: SmtpSettings | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._smtp = smtp

    @property
    def smtp(self) -> SmtpSettings:
        if self._smtp is None:
            self._smtp = SmtpSettings.from_url()
        return self._smtp

    # -- templates ---------------------------------------------------------------------------

    def create_template(
        self, name: str, subject: str, html: str, text: str, *, operational: bool = False,
        from_address: str | None = None, from_name: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        if not name.strip():
            raise InputError("email template needs a name", code="REQUIRED_FIELD_MISSING")
        check_template(subject, html, text)
        now = self.clock.now()
        with self.engine.begin() as conn:
            new_id = conn.execute(
                email_template.insert().values(
                    name=name, subject=subject, htmlBody=html, textBody=text, isOperational=operational,
                    fromAddress=from_address, fromName=from_name, createdAt=now, updatedAt=now,
                ).returning(email_template.c.id)
            ).scalar_one()  # fmt: skip
        return self.get_template(new_id)

    def get_template(self, template_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(email_template).where(email_template.c.id == template_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"email template {template_id} does not exist")
        return dict(row)

    def list_templates(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(email_template).order_by(email_template.c.id)).mappings().all()
        return [dict(r) for r in rows]

    # -- recipients --------------------------------------------------------------------------

    def _allowed_operational(self, conn: Connection) -> bool:
        row = conn.execute(
            sa.select(t.setting.c.value).where(t.setting.c.key == "allow_operational_email")
        ).first()
        return bool(row and row.value)

    def recipients(
        self, conn: Connection, list_ids: Sequence[int], suppression_ids: Sequence[int], *, operational: bool
    ) -> tuple[list[int], int]:
        """Prospect ids to mail, and how many list members were excluded."""
        p, lm = t.prospect, t.list_membership
        members = sa.select(lm.c.prospectId).where(lm.c.listId.in_(list_ids), lm.c.optedOut.is_(False))
        all_members = sa.select(sa.func.count(sa.distinct(lm.c.prospectId))).where(lm.c.listId.in_(list_ids))
        q = sa.select(p.c.id).where(p.c.id.in_(members), *_mailable_conditions(operational))
        if suppression_ids:
            q = q.where(p.c.id.not_in(sa.select(lm.c.prospectId).where(lm.c.listId.in_(suppression_ids))))
        ids = [r.id for r in conn.execute(q.order_by(p.c.id))]
        total = conn.execute(all_members).scalar_one()
        return ids, int(total) - len(ids)

    def _check_lists(self, conn: Connection, ids: Iterable[int]) -> None:
        for list_id in ids:
            if conn.execute(sa.select(t.list_.c.id).where(t.list_.c.id == list_id)).first() is None:
                raise NotFoundError(f"list {list_id} does not exist")

    # -- sending -----------------------------------------------------------------------------

    def send_list_email(
        self, list_ids: Sequence[int], template_id: int, *, suppression_ids: Sequence[int] = (),
        at: dt.datetime | None = None, operational: bool = False, name: str | None = None,
        campaign_id: int | None = None,
    ) -> SendSummary:  # fmt: skip
        """Send (queue now) or schedule a list email."""
        if not list_ids:
            raise InputError("a list email needs at least one list", code="REQUIRED_FIELD_MISSING")
        template = self.get_template(template_id)
        operational = operational or bool(template["isOperational"])
        now = self.clock.now()
        with self.engine.begin() as conn:
            self._check_lists(conn, [*list_ids, *suppression_ids])
            if operational and not self._allowed_operational(conn):
                raise InputError(
                    "operational emails are not allowed on this account (setting allow_operational_email)",
                    code="OPERATIONAL_EMAIL_NOT_ALLOWED",
                )
            scheduled = at is not None and at > now
            le_id = conn.execute(
                list_email.insert().values(
                    name=name or template["name"], templateId=template_id, listIds=list(list_ids),
                    suppressionListIds=list(suppression_ids), isOperational=operational, campaignId=campaign_id,
                    status="scheduled" if scheduled else "queued", scheduledAt=at, recipientCount=0,
                    skippedCount=0, createdAt=now, updatedAt=now,
                ).returning(list_email.c.id)
            ).scalar_one()  # fmt: skip
            if scheduled:
                return SendSummary(le_id, "scheduled", 0, 0, at)
            queued, skipped = self._enqueue_list_email(conn, le_id, now)
        return SendSummary(le_id, "queued", queued, skipped)

    def _enqueue_list_email(self, conn: Connection, list_email_id: int, now: dt.datetime) -> tuple[int, int]:
        le = conn.execute(sa.select(list_email).where(list_email.c.id == list_email_id)).mappings().one()
        template = dict(
            conn.execute(sa.select(email_template).where(email_template.c.id == le["templateId"]))
            .mappings()
            .one()
        )
        ids, skipped = self.recipients(
            conn, le["listIds"], le["suppressionListIds"], operational=le["isOperational"]
        )
        kind = "operational" if le["isOperational"] else "list"
        key = _signing_key(conn, now)
        contexts = self._contexts(conn, ids)
        rows = []
        for pid in ids:
            rows.append(
                self._message_row(conn, key, template, contexts[pid], kind, now, list_email_id=list_email_id)
            )
        self._insert_messages(conn, rows, key, contexts, template)
        conn.execute(
            list_email.update()
            .where(list_email.c.id == list_email_id)
            .values(
                status="queued", queuedAt=now, recipientCount=len(ids), skippedCount=skipped, updatedAt=now
            )
        )
        return len(ids), skipped

    def enqueue_due(self) -> list[SendSummary]:
        """Queue scheduled list emails whose time has come (run by the worker)."""
        now = self.clock.now()
        out = []
        with self.engine.begin() as conn:
            due = conn.execute(
                sa.select(list_email.c.id).where(
                    list_email.c.status == "scheduled", list_email.c.scheduledAt <= now
                )
            ).all()
            for row in due:
                queued, skipped = self._enqueue_list_email(conn, row.id, now)
                out.append(SendSummary(row.id, "queued", queued, skipped))
        return out

    def send_one_to_one(self, prospect_id: int, template_id: int) -> dict[str, Any]:
        template = self.get_template(template_id)
        now = self.clock.now()
        with self.engine.begin() as conn:
            ids, _ = self._mailable(conn, [prospect_id], operational=bool(template["isOperational"]))
            if not ids:
                raise InputError(
                    f"prospect {prospect_id} cannot be mailed (deleted, opted out, do-not-email or undeliverable)",
                    code="NOT_MAILABLE",
                )
            key = _signing_key(conn, now)
            contexts = self._contexts(conn, ids)
            row = self._message_row(conn, key, template, contexts[prospect_id], "one_to_one", now)
            [msg_id] = self._insert_messages(conn, [row], key, contexts, template)
        return {"messageId": msg_id, "prospectId": prospect_id, "status": "queued"}

    def enqueue_program_email(
        self, conn: Connection, prospect_id: int, template_id: int, program_id: int, step: str
    ) -> int | None:
        """Queue a nurture-program email; None when the prospect may not be mailed now."""
        now = self.clock.now()
        found = (
            conn.execute(sa.select(email_template).where(email_template.c.id == template_id))
            .mappings()
            .first()
        )
        if found is None:
            raise NotFoundError(f"email template {template_id} does not exist")
        template = dict(found)
        ids, _ = self._mailable(conn, [prospect_id], operational=False)
        if not ids:
            return None
        key = _signing_key(conn, now)
        contexts = self._contexts(conn, ids)
        row = self._message_row(conn, key, template, contexts[prospect_id], "program", now)
        row.update(programId=program_id, programStep=step)
        [msg_id] = self._insert_messages(conn, [row], key, contexts, template)
        return msg_id

    def send_test(
        self, template_id: int, to_address: str, *, prospect_id: int | None = None
    ) -> dict[str, Any]:
        """Render for a prospect (or sample data) and send at once, untracked, to ``to_address``."""
        if "@" not in to_address:
            raise InputError(f"not an email address: {to_address!r}", code="INVALID_EMAIL_ADDRESS")
        template = self.get_template(template_id)
        now = self.clock.now()
        with self.engine.begin() as conn:
            if prospect_id is not None:
                ctx = self._contexts(conn, [prospect_id]).get(prospect_id)
                if ctx is None:
                    raise NotFoundError(f"prospect {prospect_id} does not exist")
            else:
                ctx = {"prospect": {"firstName": "太郎", "lastName": "見本", "email": to_address, "company": "見本株式会社"},
                       "account": {}, "user": {}, "lists": []}  # fmt: skip
            ctx = {
                **ctx,
                "unsubscribe_url": f"{public_url()}/e/u/test",
                "preferences_url": f"{public_url()}/e/p/test",
            }
            rendered = render(template["subject"], template["htmlBody"], template["textBody"], ctx)
            msg_id = conn.execute(
                email_message.insert().values(
                    kind="test", templateId=template_id, prospectId=prospect_id, toAddress=to_address,
                    subject="[TEST] " + rendered.subject, htmlBody=rendered.html, textBody=rendered.text, links=[],
                    status="sending", attempts=1, clickCount=0, createdAt=now,
                ).returning(email_message.c.id)
            ).scalar_one()  # fmt: skip
        message = self._mime(
            msg_id, to_address, "[TEST] " + rendered.subject, rendered.html, rendered.text, template
        )
        with SmtpConnection(self.smtp) as smtp:
            smtp.send(message)
        with self.engine.begin() as conn:
            conn.execute(
                email_message.update()
                .where(email_message.c.id == msg_id)
                .values(status="sent", sentAt=self.clock.now(), messageId=message.message_id)
            )
        return {
            "messageId": msg_id,
            "to": to_address,
            "subject": "[TEST] " + rendered.subject,
            "status": "sent",
        }

    # -- building messages -------------------------------------------------------------------

    def _mailable(self, conn: Connection, ids: Sequence[int], *, operational: bool) -> tuple[list[int], int]:
        q = sa.select(t.prospect.c.id).where(t.prospect.c.id.in_(ids), *_mailable_conditions(operational))
        found = [r.id for r in conn.execute(q)]
        return found, len(ids) - len(found)

    def _contexts(self, conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        p, acc, user, lm = t.prospect, t.prospect_account, t.ma_user, t.list_membership
        out: dict[int, dict[str, Any]] = {}
        for chunk_start in range(0, len(ids), 5000):
            chunk = list(ids[chunk_start : chunk_start + 5000])
            prospects = conn.execute(sa.select(p).where(p.c.id.in_(chunk))).mappings().all()
            acc_ids = {r["prospectAccountId"] for r in prospects if r["prospectAccountId"]}
            user_ids = {r["assignedToId"] for r in prospects if r["assignedToId"]}
            accounts = {
                r["id"]: dict(r) for r in conn.execute(sa.select(acc).where(acc.c.id.in_(acc_ids))).mappings()
            }
            users = {
                r["id"]: dict(r)
                for r in conn.execute(sa.select(user).where(user.c.id.in_(user_ids))).mappings()
            }
            lists: dict[int, list[int]] = {}
            for m in conn.execute(sa.select(lm.c.prospectId, lm.c.listId).where(lm.c.prospectId.in_(chunk))):
                lists.setdefault(m.prospectId, []).append(m.listId)
            for pr in prospects:
                out[pr["id"]] = {
                    "prospect": {k: v for k, v in pr.items() if k != "emailKey"},
                    "account": accounts.get(pr["prospectAccountId"], {}),
                    "user": users.get(pr["assignedToId"], {}),
                    "lists": lists.get(pr["id"], []),
                }
        return out

    def _message_row(
        self, conn: Connection, key: str, template: Mapping[str, Any], ctx: Mapping[str, Any], kind: str,
        now: dt.datetime, *, list_email_id: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "kind": kind, "listEmailId": list_email_id, "templateId": template["id"],
            "prospectId": ctx["prospect"]["id"], "toAddress": ctx["prospect"]["email"], "subject": "",
            "htmlBody": "", "textBody": "", "links": [], "status": "queued", "attempts": 0,
            "nextAttemptAt": now, "clickCount": 0, "createdAt": now,
        }  # fmt: skip

    def _insert_messages(
        self, conn: Connection, rows: list[dict[str, Any]], key: str, contexts: Mapping[int, Mapping[str, Any]],
        template: Mapping[str, Any],
    ) -> list[int]:  # fmt: skip
        """Insert the queue rows, then render each with its own tracking tokens (ids are in the tokens)."""
        if not rows:
            return []
        ids: list[int] = []
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            result = conn.execute(
                email_message.insert().returning(email_message.c.id, sort_by_parameter_order=True), chunk
            )
            ids.extend(r.id for r in result)
        signer = URLSafeSerializer(key, salt="renkei-email")
        base = public_url()
        compiled = CompiledTemplate(template["subject"], template["htmlBody"], template["textBody"])
        verdicts = self._rule_verdicts(template, [r["prospectId"] for r in rows])
        updates = []
        for msg_id, row in zip(ids, rows, strict=True):
            ctx = dict(contexts[row["prospectId"]])
            ctx["matches"] = _matcher(verdicts, row["prospectId"])
            token = signer.dumps(msg_id)
            ctx["unsubscribe_url"] = f"{base}/e/u/{token}"
            ctx["preferences_url"] = f"{base}/e/p/{token}"
            rendered = compiled.render(
                ctx, track_link=_link_tracker(base, token), open_pixel=f"{base}/e/o/{token}.gif"
            )
            html, text = rendered.html, rendered.text
            if row["kind"] != "operational" and ctx["unsubscribe_url"] not in html:
                html += f'<p style="font-size:11px"><a href="{ctx["unsubscribe_url"]}">配信停止 / Unsubscribe</a></p>'
                text += f"\n\n配信停止 / Unsubscribe: {ctx['unsubscribe_url']}\n"
            updates.append({"b_id": msg_id, "subject": rendered.subject, "htmlBody": html, "textBody": text,
                            "links": list(rendered.links)})  # fmt: skip
        conn.execute(
            email_message.update()
            .where(email_message.c.id == sa.bindparam("b_id"))
            .values(subject=sa.bindparam("subject"), htmlBody=sa.bindparam("htmlBody"),
                    textBody=sa.bindparam("textBody"), links=sa.bindparam("links")),
            updates,
        )  # fmt: skip
        return ids

    def _rule_verdicts(
        self, template: Mapping[str, Any], prospect_ids: Sequence[int]
    ) -> dict[str, dict[int, bool]]:
        """Dynamic content by rule: each ``matches("rule text")`` in the template, evaluated with the
        segmentation rule language for these recipients (once per rule per batch)."""
        from renkei.segments.lists import SegmentService

        source = f"{template['subject']}\n{template['htmlBody']}\n{template['textBody']}"
        rules = {m.group(2) for m in _MATCHES.finditer(source)}
        if not rules:
            return {}
        segments = SegmentService(self.engine, clock=self.clock)
        return {text: segments.evaluate_prospects(text, list(prospect_ids)) for text in rules}

    def _mime(
        self, msg_id: int, to: str, subject: str, html: str, text: str, template: Mapping[str, Any],
        *, unsubscribe_url: str | None = None,
    ) -> OutgoingMessage:  # fmt: skip
        sender = str(template.get("fromAddress") or self.smtp.default_from)
        from_name = str(template.get("fromName") or "renkei")
        headers = [
            (
                "From",
                formataddr(
                    (Header(from_name, "utf-8").encode() if not from_name.isascii() else from_name, sender)
                ),
            ),
            ("To", to),
            ("Subject", Header(subject, "utf-8").encode() if not subject.isascii() else subject),
            ("Date", formatdate(self.clock.now().timestamp(), usegmt=True)),
            ("Message-ID", f"<renkei.{msg_id}.{secrets.token_hex(6)}@{sender.split('@')[-1]}>"),
            ("X-Renkei-Message", str(msg_id)),
        ]
        if unsubscribe_url:
            headers += [("List-Unsubscribe", f"<{unsubscribe_url}>"),
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]  # fmt: skip
        return OutgoingMessage(sender, to, headers, text, html)

    # -- the queue ---------------------------------------------------------------------------

    def queue_status(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(email_message.c.status, sa.func.count()).group_by(email_message.c.status)
            ).all()
            scheduled = conn.execute(
                sa.select(sa.func.count()).select_from(list_email).where(list_email.c.status == "scheduled")
            ).scalar_one()
        counts = {r[0]: int(r[1]) for r in rows}
        return {"queued": counts.get("queued", 0), "sent": counts.get("sent", 0),
                "failed": counts.get("failed", 0), "scheduledListEmails": int(scheduled)}  # fmt: skip

    def work(
        self,
        *,
        limit: int = 1000,
        rate_per_second: float | None = None,
        batch: int = 200,
        connections: int = 4,
    ) -> WorkSummary:
        """Send queued messages that are due (claims rows so several workers can run on PostgreSQL).

        A batch is sent over ``connections`` SMTP sessions in parallel (sending waits on the server,
        not the CPU); ``rate_per_second`` caps the overall pace."""
        self.enqueue_due()
        sent = failed = retried = 0
        interval = 1.0 / rate_per_second if rate_per_second else 0.0
        if interval:
            connections = 1  # a rate limit is simplest to honour from one session
        pool = [SmtpConnection(self.smtp) for _ in range(max(connections, 1))]
        try:
            with ThreadPoolExecutor(max_workers=len(pool)) as executor:
                while sent + failed + retried < limit:
                    claimed = self._claim(min(batch, limit - sent - failed - retried))
                    if not claimed:
                        break
                    shares = [claimed[i :: len(pool)] for i in range(len(pool))]
                    futures = [executor.submit(self._send_share, smtp, share, interval)
                               for smtp, share in zip(pool, shares, strict=True) if share]  # fmt: skip
                    results = [r for f in futures for r in f.result()]
                    sent += sum(1 for r in results if r[1] == "sent")
                    failed += sum(1 for r in results if r[1] == "failed")
                    retried += sum(1 for r in results if r[1] == "retry")
                    self._finish(claimed, results)
        finally:
            for smtp in pool:
                smtp.close()
        with self.engine.connect() as conn:
            remaining = conn.execute(
                sa.select(sa.func.count())
                .select_from(email_message)
                .where(email_message.c.status == "queued")
            ).scalar_one()
        return WorkSummary(sent, failed, retried, int(remaining))

    def _send_share(
        self, smtp: SmtpConnection, rows: list[dict[str, Any]], interval: float
    ) -> list[tuple[int, str, str | None, str | None]]:
        results: list[tuple[int, str, str | None, str | None]] = []
        for row in rows:
            unsubscribe = _first_unsubscribe(row["textBody"]) if row["kind"] in ("list", "program") else None
            message = self._mime(row["id"], row["toAddress"], row["subject"], row["htmlBody"], row["textBody"], row,
                                 unsubscribe_url=unsubscribe)  # fmt: skip
            try:
                smtp.send(message)
            except RecipientRefused as exc:
                results.append((row["id"], "failed", str(exc), None))
            except RetriableError as exc:
                results.append((row["id"], "retry", str(exc), None))
            else:
                results.append((row["id"], "sent", None, message.message_id))
            if interval:
                time.sleep(interval)
        return results

    def _claim(self, n: int) -> list[dict[str, Any]]:
        now = self.clock.now()
        m = email_message
        with self.engine.begin() as conn:
            q = (
                sa.select(m, email_template.c.fromAddress, email_template.c.fromName)
                .join(email_template, email_template.c.id == m.c.templateId, isouter=True)
                .where(m.c.status == "queued", m.c.nextAttemptAt <= now)
                .order_by(m.c.id)
                .limit(n)
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(of=m, skip_locked=True)
            rows = [dict(r) for r in conn.execute(q).mappings()]
            if rows:
                conn.execute(
                    m.update().where(m.c.id.in_([r["id"] for r in rows])).values(status="sending",
                                                                                attempts=m.c.attempts + 1)
                )  # fmt: skip
        return rows

    def _finish(
        self, claimed: list[dict[str, Any]], results: list[tuple[int, str, str | None, str | None]]
    ) -> None:
        """Record the outcomes of a batch in one transaction (statuses, "sent" activities, retries)."""
        now = self.clock.now()
        by_id = {r["id"]: r for r in claimed}
        m = email_message
        done, given_up, retry, sent_activities = [], [], [], []
        for msg_id, outcome, error, message_id in results:
            row = by_id[msg_id]
            if outcome == "sent":
                done.append({"b_id": msg_id, "b_mid": message_id})
                if row["prospectId"] is not None and row["kind"] != "test":
                    sent_activities.append(activity.new(row["prospectId"], activity.SENT, row["subject"], now,
                                                        email_id=msg_id, template_id=row["templateId"],
                                                        list_email_id=row["listEmailId"]))  # fmt: skip
            elif outcome == "failed" or row["attempts"] + 1 >= MAX_ATTEMPTS:
                given_up.append({"b_id": msg_id, "b_err": error})
            else:
                backoff = dt.timedelta(minutes=2 ** (row["attempts"] + 1))
                retry.append({"b_id": msg_id, "b_err": error, "b_next": now + backoff})
        by_bind = m.c.id == sa.bindparam("b_id")
        with self.engine.begin() as conn:
            if done:
                conn.execute(m.update().where(by_bind).values(status="sent", sentAt=now, lastError=None,
                                                              messageId=sa.bindparam("b_mid")), done)  # fmt: skip
            if given_up:
                conn.execute(m.update().where(by_bind).values(status="failed", lastError=sa.bindparam("b_err")),
                             given_up)  # fmt: skip
            if retry:
                conn.execute(m.update().where(by_bind).values(status="queued", lastError=sa.bindparam("b_err"),
                                                              nextAttemptAt=sa.bindparam("b_next")), retry)  # fmt: skip
            activity.record_many(conn, now, sent_activities)

    # -- tracking ----------------------------------------------------------------------------

    def _message_for_token(self, conn: Connection, token: str) -> dict[str, Any]:
        signer = URLSafeSerializer(_signing_key(conn, self.clock.now()), salt="renkei-email")
        try:
            msg_id = int(signer.loads(token))
        except (BadSignature, ValueError, TypeError):
            raise NotFoundError("unknown or tampered tracking link", code="INVALID_TOKEN") from None
        row = conn.execute(sa.select(email_message).where(email_message.c.id == msg_id)).mappings().first()
        if row is None:
            raise NotFoundError("unknown tracking link", code="INVALID_TOKEN")
        return dict(row)

    def track_open(self, token: str) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
            if msg["openedAt"] is None:
                conn.execute(
                    email_message.update().where(email_message.c.id == msg["id"]).values(openedAt=now)
                )
            if msg["prospectId"] is not None:
                activity.record(conn, now, msg["prospectId"], activity.OPEN, msg["subject"], email_id=msg["id"],
                                template_id=msg["templateId"], list_email_id=msg["listEmailId"])  # fmt: skip

    def track_click(self, token: str, index: int) -> str:
        """Record the click and return the real URL to redirect to."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
            links = msg["links"] or []
            if not 0 <= index < len(links):
                raise NotFoundError("unknown link in this email", code="INVALID_TOKEN")
            url = str(links[index])
            conn.execute(email_message.update().where(email_message.c.id == msg["id"])
                         .values(clickCount=email_message.c.clickCount + 1, openedAt=sa.func.coalesce(
                             email_message.c.openedAt, now)))  # fmt: skip
            if msg["prospectId"] is not None:
                activity.record(conn, now, msg["prospectId"], activity.CLICK, url, email_id=msg["id"],
                                template_id=msg["templateId"], list_email_id=msg["listEmailId"])  # fmt: skip
        return url

    def recipient(self, token: str) -> dict[str, Any]:
        """Who a tracking token addresses (no activity recorded)."""
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
        return {"prospectId": msg["prospectId"], "email": msg["toAddress"], "messageId": msg["id"]}

    def unsubscribe(self, token: str) -> dict[str, Any]:
        """One-click unsubscribe: the prospect opts out of all marketing email."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
            pid = msg["prospectId"]
            if pid is None:
                raise NotFoundError("this email was not sent to a prospect", code="INVALID_TOKEN")
            conn.execute(
                t.prospect.update().where(t.prospect.c.id == pid).values(optedOut=True, updatedAt=now)
            )
            activity.record(conn, now, pid, activity.UNSUBSCRIBE, msg["subject"], email_id=msg["id"],
                            template_id=msg["templateId"], list_email_id=msg["listEmailId"])  # fmt: skip
        return {"prospectId": pid, "optedOut": True}

    def preferences(self, token: str) -> dict[str, Any]:
        """What the email preference page shows: public lists and the prospect's subscriptions."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
            pid = msg["prospectId"]
            if pid is None:
                raise NotFoundError("this email was not sent to a prospect", code="INVALID_TOKEN")
            prospect = conn.execute(
                sa.select(t.prospect.c.email, t.prospect.c.optedOut).where(t.prospect.c.id == pid)
            ).one()
            lists = conn.execute(sa.select(t.list_.c.id, t.list_.c.title, t.list_.c.name).where(t.list_.c.isPublic.is_(True))
                                 .order_by(t.list_.c.id)).all()  # fmt: skip
            subs = {
                r.listId: not r.optedOut
                for r in conn.execute(
                    sa.select(t.list_membership.c.listId, t.list_membership.c.optedOut).where(
                        t.list_membership.c.prospectId == pid
                    )
                )
            }
            activity.record(conn, now, pid, activity.PREFERENCE_PAGE, msg["subject"], email_id=msg["id"])
        return {
            "prospectId": pid,
            "email": prospect.email,
            "optedOut": bool(prospect.optedOut),
            "lists": [
                {"id": r.id, "title": r.title or r.name, "subscribed": subs.get(r.id, False)} for r in lists
            ],
        }

    def save_preferences(self, token: str, subscribed: Iterable[int], opted_out: bool) -> dict[str, Any]:
        now = self.clock.now()
        wanted = set(subscribed)
        lm = t.list_membership
        with self.engine.begin() as conn:
            msg = self._message_for_token(conn, token)
            pid = msg["prospectId"]
            if pid is None:
                raise NotFoundError("this email was not sent to a prospect", code="INVALID_TOKEN")
            public = {r.id for r in conn.execute(sa.select(t.list_.c.id).where(t.list_.c.isPublic.is_(True)))}
            if wanted - public:
                raise InputError(f"not a public list: {sorted(wanted - public)}", code="INVALID_LIST")
            was = conn.execute(sa.select(t.prospect.c.optedOut).where(t.prospect.c.id == pid)).scalar_one()
            for list_id in public:
                existing = conn.execute(
                    sa.select(lm.c.id).where(lm.c.listId == list_id, lm.c.prospectId == pid)
                ).first()
                if existing is None and list_id in wanted:
                    conn.execute(
                        lm.insert().values(
                            listId=list_id, prospectId=pid, optedOut=False, createdAt=now, updatedAt=now
                        )
                    )
                elif existing is not None:
                    conn.execute(
                        lm.update()
                        .where(lm.c.id == existing.id)
                        .values(optedOut=list_id not in wanted, updatedAt=now)
                    )
            conn.execute(
                t.prospect.update().where(t.prospect.c.id == pid).values(optedOut=opted_out, updatedAt=now)
            )
            if bool(was) and not opted_out:
                activity.record(conn, now, pid, activity.RESUBSCRIBED, msg["subject"], email_id=msg["id"])
        return self.preferences(token)

    # -- bounces and complaints --------------------------------------------------------------

    def apply_bounce(
        self, conn: Connection, message_id: int | None, address: str, hard: bool, reason: str
    ) -> dict[str, Any] | None:
        now = self.clock.now()
        m, p = email_message, t.prospect
        msg = None
        if message_id is not None:
            msg = conn.execute(sa.select(m).where(m.c.id == message_id)).mappings().first()
        if msg is None:
            msg = conn.execute(sa.select(m).where(sa.func.lower(m.c.toAddress) == address.lower(), m.c.status == "sent")
                               .order_by(m.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
        if msg is None or msg["prospectId"] is None:
            return None
        pid = msg["prospectId"]
        conn.execute(m.update().where(m.c.id == msg["id"]).values(bouncedAt=now))
        row = conn.execute(sa.select(p.c.softBounceCount).where(p.c.id == pid)).first()
        soft = int(row.softBounceCount or 0) if row else 0
        values: dict[str, Any] = {"emailBouncedAt": now, "emailBouncedReason": reason[:255], "updatedAt": now}
        if hard:
            values["isEmailHardBounced"] = True
        else:
            soft += 1
            values["softBounceCount"] = soft
            if soft >= SOFT_BOUNCE_LIMIT:
                values["isEmailHardBounced"] = True
        conn.execute(p.update().where(p.c.id == pid).values(**values))
        activity.record(conn, now, pid, activity.BOUNCED, reason[:255], email_id=msg["id"],
                        template_id=msg["templateId"], list_email_id=msg["listEmailId"])  # fmt: skip
        return {"prospectId": pid, "messageId": msg["id"], "hard": hard, "softBounceCount": soft,
                "undeliverable": bool(values.get("isEmailHardBounced"))}  # fmt: skip

    def apply_complaint(
        self, conn: Connection, message_id: int | None, address: str
    ) -> dict[str, Any] | None:
        now = self.clock.now()
        m, p = email_message, t.prospect
        msg = None
        if message_id is not None:
            msg = conn.execute(sa.select(m).where(m.c.id == message_id)).mappings().first()
        if msg is None:
            msg = conn.execute(sa.select(m).where(sa.func.lower(m.c.toAddress) == address.lower())
                               .order_by(m.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
        if msg is None or msg["prospectId"] is None:
            return None
        conn.execute(p.update().where(p.c.id == msg["prospectId"]).values(optedOut=True, updatedAt=now))
        activity.record(
            conn, now, msg["prospectId"], activity.SPAM_COMPLAINT, msg["subject"], email_id=msg["id"]
        )
        return {"prospectId": msg["prospectId"], "messageId": msg["id"], "optedOut": True}


def _mailable_conditions(operational: bool) -> list[sa.ColumnElement[bool]]:
    """Who may be mailed: live, not do-not-email, not undeliverable, with an address; and, unless the
    email is operational, not opted out."""
    p = t.prospect.c
    conditions: list[sa.ColumnElement[bool]] = [
        sa.func.coalesce(p.isDeleted, False).is_(False),
        sa.func.coalesce(p.isDoNotEmail, False).is_(False),
        sa.func.coalesce(p.isEmailHardBounced, False).is_(False),
        p.email.is_not(None),
    ]
    if not operational:
        conditions.append(sa.func.coalesce(p.optedOut, False).is_(False))
    return conditions


_MATCHES = re.compile(r"""matches\(\s*(['"])(.*?)\1\s*\)""", re.DOTALL)


def _matcher(verdicts: Mapping[str, Mapping[int, bool]], prospect_id: int) -> Callable[[str], bool]:
    def matches(rule_text: str) -> bool:
        if rule_text not in verdicts:
            raise InputError(
                f"matches() needs the rule as a literal string: {rule_text!r}", code="INVALID_TEMPLATE"
            )
        return bool(verdicts[rule_text].get(prospect_id, False))

    return matches


def _link_tracker(base: str, token: str) -> Callable[[int], str]:
    return lambda i: f"{base}/e/c/{token}/{i}"


def _first_unsubscribe(text: str) -> str | None:
    marker = "/e/u/"
    for word in text.split():
        if marker in word:
            return word.strip("<>()")
    return None


__all__ = ["EmailService", "Rendered", "SendSummary", "WorkSummary", "public_url"]
