"""First-party visitor tracking: the visitor cookie, page-view hits, sessions, batched ingest.

A browser carries a signed cookie holding a random token; the token maps to a ``visitor`` row
(``tracking_visitor_key``), created on the visitor's first recorded hit. Hits are queued and
written a whole batch per transaction (group commit, see ``TrackingIngest``): a burst of hits is
a few transactions, not one per hit. The HTTP handler only answers once the batch holding its
hit has committed — an acknowledged hit is on disk, and a hit whose batch failed is answered
with an error so the client may send it again. Nothing acknowledged lives only in memory.

Sessions: page views of one visitor more than 30 minutes apart start a new ``visit``; each
visit is one AE "Visit" activity (type 20) whose details count its page views.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from crawlerdetect import CrawlerDetect
from itsdangerous import BadSignature, Signer
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.activities import ActivityType, AssetKind
from renkei.marketing.activity_service import apply_effect
from renkei.marketing.scoring_service import current_model
from renkei.store import tables as t
from renkei.store import tables_activity as ta

SESSION_GAP = dt.timedelta(minutes=30)
VISITOR_COOKIE = "renkei_vid"
CONSENT_COOKIE = "renkei_opt_in"
COOKIE_MAX_AGE = 365 * 24 * 3600
_SECRET_KEY = "tracking_secret"
_UTM = {
    "utm_source": "sourceParameter",
    "utm_campaign": "campaignParameter",
    "utm_medium": "mediumParameter",
    "utm_content": "contentParameter",
    "utm_term": "termParameter",
}


# ---------------------------------------------------------------------------------------------
# Cookie, consent, bots, companies


def tracking_secret(engine: Engine) -> str:
    """The install's cookie-signing secret, generated once and kept in the ``setting`` table."""
    with engine.begin() as conn:
        value = conn.execute(
            sa.select(t.setting.c.value).where(t.setting.c.key == _SECRET_KEY)
        ).scalar_one_or_none()
        if value is None:
            value = secrets.token_hex(32)
            conn.execute(
                t.setting.insert().values(key=_SECRET_KEY, value=value, updatedAt=SystemClock().now())
            )
        return str(value)


class VisitorCookie:
    """Signs and reads the first-party visitor cookie (``token.signature``)."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="renkei-visitor")

    def new(self) -> tuple[str, str]:
        """A fresh token and its signed cookie value."""
        token = secrets.token_hex(16)
        return token, self._signer.sign(token).decode()

    def read(self, value: str | None) -> str | None:
        """The token inside a cookie value, or None when missing or tampered with."""
        if not value:
            return None
        try:
            return self._signer.unsign(value).decode()
        except BadSignature:
            return None


def tracking_allowed(headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
    """Do-Not-Track and a declined consent banner both mean: record no page view."""
    if headers.get("dnt") == "1":
        return False
    return cookies.get(CONSENT_COOKIE, "").lower() != "false"


_CRAWLERS = CrawlerDetect()


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str | None) -> bool:
    """Known crawlers (the crawlerdetect user-agent list); an empty user agent counts as one."""
    if not user_agent:
        return True
    return bool(_CRAWLERS.isCrawler(user_agent))


@dataclass(frozen=True, slots=True)
class CompanyTable:
    """IP → company from the configured CIDR ranges (no outside service); longest prefix wins."""

    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = ()

    @classmethod
    def load(cls, conn: Connection) -> CompanyTable:
        rows = conn.execute(sa.select(ta.company_cidr.c.cidr, ta.company_cidr.c.company)).all()
        nets = [(ipaddress.ip_network(r.cidr, strict=False), r.company) for r in rows]
        nets.sort(key=lambda n: -n[0].prefixlen)
        return cls(tuple(nets))

    def company(self, ip: str | None) -> str | None:
        if not ip:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, name in self.networks:
            if addr.version == net.version and addr in net:
                return name
        return None


def add_company_range(engine: Engine, cidr: str, company: str, *, clock: Clock | None = None) -> None:
    network = ipaddress.ip_network(cidr.strip(), strict=False)
    with engine.begin() as conn:
        conn.execute(
            ta.company_cidr.insert().values(
                cidr=str(network), company=company.strip(), createdAt=(clock or SystemClock()).now()
            )
        )


# ---------------------------------------------------------------------------------------------
# Hits


@dataclass(frozen=True, slots=True)
class Hit:
    token: str
    url: str
    at: dt.datetime
    title: str | None = None
    referrer: str | None = None
    campaign_id: int | None = None
    ip: str | None = None
    do_not_sell: bool = False

    @property
    def utm(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.url).query)
        return {column: query[param][0][:255] for param, column in _UTM.items() if query.get(param)}


def parse_campaign(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _visit_details(count: int) -> str:
    return f"{count} page view" + ("" if count == 1 else "s")


@dataclass(slots=True)
class _Visit:
    id: int
    activity_id: int | None
    count: int
    first: dt.datetime
    last: dt.datetime
    changed: bool = False


@dataclass(slots=True)
class _Visitor:
    id: int
    prospect_id: int | None
    views: int = 0
    visit: _Visit | None = None
    points: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    do_not_sell: bool = False


def ensure_visitors(
    conn: Connection, hits: Sequence[Hit], companies: CompanyTable, now: dt.datetime
) -> dict[str, int]:
    """Visitor ids for the hits' tokens, creating visitors (first referrer, UTM, company)."""
    k = ta.tracking_visitor_key
    tokens = list(dict.fromkeys(h.token for h in hits))
    known: dict[str, int] = {
        r.token: r.visitorId
        for r in conn.execute(sa.select(k.c.token, k.c.visitorId).where(k.c.token.in_(tokens)))
    }
    first_hit: dict[str, Hit] = {}
    for h in hits:
        if h.token not in known:
            first_hit.setdefault(h.token, h)
    if first_hit:
        rows = []
        for h in first_hit.values():
            rows.append({
                "prospectId": None, "pageViewCount": 0, "isIdentified": False, "doNotSell": h.do_not_sell,
                "ipAddress": h.ip, "identifiedCompany": companies.company(h.ip), "campaignId": h.campaign_id,
                "firstReferrerUrl": (h.referrer or None) and h.referrer[:2048], "hostname": None,
                **{c: None for c in _UTM.values()}, **h.utm, "createdAt": now, "updatedAt": now,
            })  # fmt: skip
        v = t.visitor
        ids = conn.execute(v.insert().returning(v.c.id, sort_by_parameter_order=True), rows).scalars().all()
        new = dict(zip(first_hit, ids, strict=True))
        conn.execute(k.insert(), [{"token": tok, "visitorId": vid} for tok, vid in new.items()])
        known.update(new)
    return known


def ingest(conn: Connection, hits: Sequence[Hit], companies: CompanyTable, now: dt.datetime) -> int:
    """Record a batch of page-view hits in the caller's transaction; returns page views written."""
    if not hits:
        return 0
    hits = sorted(hits, key=lambda h: h.at)
    ids = ensure_visitors(conn, hits, companies, now)
    v, vi = t.visitor, t.visit
    state = {
        r.id: _Visitor(r.id, r.prospectId, r.pageViewCount, do_not_sell=r.doNotSell)
        for r in conn.execute(
            sa.select(v.c.id, v.c.prospectId, v.c.pageViewCount, v.c.doNotSell).where(
                v.c.id.in_(set(ids.values()))
            )
        )
    }
    # The latest visit of each visitor, if it can still be continued by this batch.
    horizon = hits[0].at - SESSION_GAP
    recent = conn.execute(
        sa.select(
            vi.c.id,
            vi.c.visitorId,
            vi.c.visitorPageViewCount,
            vi.c.firstVisitorPageViewAt,
            vi.c.lastVisitorPageViewAt,
        )
        .where(vi.c.visitorId.in_(list(state)), vi.c.lastVisitorPageViewAt >= horizon)
        .order_by(vi.c.lastVisitorPageViewAt)
    )
    for r in recent:
        state[r.visitorId].visit = _Visit(
            r.id,
            None,
            r.visitorPageViewCount,
            ensure_utc(r.firstVisitorPageViewAt),
            ensure_utc(r.lastVisitorPageViewAt),
        )
    model = current_model(conn)
    visits: list[_Visit] = []
    views: list[tuple[Any, ...]] = []
    # The per-hit statements go straight to the driver: SQLAlchemy's per-row parameter
    # processing was half of a batch's cost (see bench/tracking_ingest.py).
    bulk = _Bulk(conn)
    for h in hits:
        s = state[ids[h.token]]
        visit = s.visit
        if visit is None or h.at - visit.last > SESSION_GAP:
            visit = _new_visit(conn, s, h, now)
            s.points += model.activity_points_for(
                ActivityType.VISIT, AssetKind.VISIT.value, {"visitId": visit.id}
            )
            visits.append(visit)
        elif not visit.changed:
            visit.changed = True
            visits.append(visit)
        visit.count += 1
        visit.last = max(visit.last, h.at)
        s.views += 1
        s.points += model.page_view_points_for(h.url)
        s.first = h.at if s.first is None else min(s.first, h.at)
        s.last = h.at if s.last is None else max(s.last, h.at)
        s.do_not_sell = s.do_not_sell or h.do_not_sell
        views.append((
            s.id, visit.id, s.prospect_id, h.url[:2048], (h.title or None) and h.title[:1024],
            (h.referrer or None) and h.referrer[:2048], h.campaign_id, 0, bulk.value(h.at),
        ))  # fmt: skip
    pv_cols = (
        "visitorId",
        "visitId",
        "prospectId",
        "url",
        "title",
        "referrerUrl",
        "campaignId",
        "durationInSeconds",
        "createdAt",
    )
    bulk.insert("visitor_page_view", pv_cols, views)
    when = bulk.value(now)
    bulk.update(
        "visit", ("visitorPageViewCount", "lastVisitorPageViewAt", "durationInSeconds", "updatedAt"), "id",
        [(x.count, bulk.value(x.last), int((x.last - x.first).total_seconds()), when, x.id) for x in visits],
    )  # fmt: skip
    bulk.update(
        "visitor_activity", ("details", "updatedAt"), "visitId",
        [(_visit_details(x.count), when, x.id) for x in visits], extra=f"type = {int(ActivityType.VISIT)}",
    )  # fmt: skip
    bulk.update(
        "visitor", ("pageViewCount", "doNotSell", "updatedAt"), "id",
        [(s.views, s.do_not_sell, when, s.id) for s in state.values()],
    )  # fmt: skip
    for s in state.values():
        if s.prospect_id is not None:
            apply_effect(conn, s.prospect_id, s.points, s.first, s.last, now)
    return len(views)


class _Bulk:
    """``executemany`` at the driver level, with values in the form the store keeps them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self.quote = conn.dialect.identifier_preparer.quote

    def value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and self.sqlite:
            # The format SQLAlchemy's SQLite DATETIME stores (naive UTC, microseconds).
            return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            cols = ", ".join(self.quote(c) for c in columns)
            marks = ", ".join([self.mark] * len(columns))
            self.conn.exec_driver_sql(f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks})", rows)

    def update(
        self, table: str, columns: Sequence[str], key: str, rows: list[tuple[Any, ...]], extra: str = ""
    ) -> None:
        if rows:
            sets = ", ".join(f"{self.quote(c)} = {self.mark}" for c in columns)
            where = f"{self.quote(key)} = {self.mark}" + (f" AND {extra}" if extra else "")
            self.conn.exec_driver_sql(f"UPDATE {self.quote(table)} SET {sets} WHERE {where}", rows)


def _new_visit(conn: Connection, s: _Visitor, h: Hit, now: dt.datetime) -> _Visit:
    vi, va = t.visit, t.visitor_activity
    row = {
        "visitorId": s.id, "prospectId": s.prospect_id, "visitorPageViewCount": 0, "firstVisitorPageViewAt": h.at,
        "lastVisitorPageViewAt": h.at, "durationInSeconds": 0, "campaignId": h.campaign_id,
        **{c: None for c in _UTM.values()}, **h.utm, "referrerUrl": (h.referrer or None) and h.referrer[:2048],
        "createdAt": now, "updatedAt": now,
    }  # fmt: skip
    visit_id = int(conn.execute(vi.insert().values(row).returning(vi.c.id)).scalar_one())
    activity = {
        "type": int(ActivityType.VISIT), "typeName": AssetKind.VISIT.value, "details": _visit_details(0),
        "prospectId": s.prospect_id, "visitorId": s.id, "visitId": visit_id, "campaignId": h.campaign_id,
        "createdAt": h.at, "updatedAt": now,
    }  # fmt: skip
    activity_id = int(conn.execute(va.insert().values(activity).returning(va.c.id)).scalar_one())
    s.visit = _Visit(visit_id, activity_id, 0, h.at, h.at, changed=True)
    return s.visit


# ---------------------------------------------------------------------------------------------
# The batching queue


@dataclass
class IngestStats:
    batches: int = 0
    hits: int = 0
    failures: int = 0
    largest_batch: int = 0


class TrackingIngest:
    """Group commit of hits on the server's event loop.

    ``record`` queues a hit and waits; a flush task takes everything queued (after a short
    linger, so that concurrent requests join) and writes it in one transaction, then answers
    every waiting request — or fails them all, unacknowledged. The write blocks the event loop
    on purpose: it is the bottleneck anyway, and done in a thread it would fight the loop for the
    GIL at every statement (measured: a batch took ~90 ms in a thread, ~20 ms in the loop).
    Requests that arrive meanwhile wait in their sockets and form the next, larger batch.
    """

    def __init__(
        self, engine: Engine, *, clock: Clock | None = None, max_batch: int = 2000, linger: float = 0.002
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.max_batch = max_batch
        self.linger = linger
        self.stats = IngestStats()
        self._pending: list[tuple[Hit, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._companies = CompanyTable()
        self._companies_loaded = 0.0

    async def record(self, hit: Hit) -> None:
        """Queue a hit and return once its batch has committed (raises if the batch failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((hit, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush_pending())
        await future

    async def _flush_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(self.linger)
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._flush(batch)

    def record_sync(self, hits: Sequence[Hit]) -> int:
        """Write hits now, in the caller's thread (imports, tests, tools)."""
        with self.engine.begin() as conn:
            return ingest(conn, hits, self._company_table(conn), self.clock.now())

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _company_table(self, conn: Connection) -> CompanyTable:
        if time.monotonic() - self._companies_loaded > 30:
            self._companies = CompanyTable.load(conn)
            self._companies_loaded = time.monotonic()
        return self._companies

    def _flush(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        error: BaseException | None = None
        try:
            with self.engine.begin() as conn:
                ingest(conn, [hit for hit, _ in batch], self._company_table(conn), self.clock.now())
        except Exception as exc:  # the whole batch is refused, unacknowledged; clients resend
            error = exc
        self.stats.batches += 1
        self.stats.hits += len(batch) if error is None else 0
        self.stats.failures += len(batch) if error is not None else 0
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


def visitor_for_token(
    conn: Connection,
    token: str,
    now: dt.datetime,
    *,
    ip: str | None = None,
    url: str = "",
    referrer: str | None = None,
) -> int:
    """The visitor behind a cookie token, created when the token has none yet (a landing page
    or form served before any pixel; its URL gives the UTM parameters)."""
    hit = Hit(token=token, url=url, at=now, ip=ip, referrer=referrer)
    return ensure_visitors(conn, [hit], CompanyTable.load(conn), now)[token]
