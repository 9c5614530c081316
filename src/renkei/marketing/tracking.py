"""First-party visitor tracking: the visitor cookie, page-view hits, sessions, batched ingest.

A browser carries a signed cookie holding a random token; the token maps to a ``visitor`` row
(``tracking_visitor_key``), created on the visitor's first recorded hit. Hits are queued and
written by one flusher thread, a whole batch per transaction (group commit): a burst of hits is
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
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    v, vi, va = t.visitor, t.visit, t.visitor_activity
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
    views: list[dict[str, Any]] = []
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
        views.append({
            "visitorId": s.id, "visitId": visit.id, "prospectId": s.prospect_id, "url": h.url[:2048],
            "title": (h.title or None) and h.title[:1024], "referrerUrl": (h.referrer or None) and h.referrer[:2048],
            "campaignId": h.campaign_id, "durationInSeconds": 0, "createdAt": h.at,
        })  # fmt: skip
    conn.execute(t.visitor_page_view.insert(), views)
    conn.execute(
        vi.update().where(vi.c.id == sa.bindparam("vid")).values(
            visitorPageViewCount=sa.bindparam("n"), lastVisitorPageViewAt=sa.bindparam("last"),
            durationInSeconds=sa.bindparam("secs"), updatedAt=now,
        ),
        [{"vid": x.id, "n": x.count, "last": x.last, "secs": int((x.last - x.first).total_seconds())} for x in visits],
    )  # fmt: skip
    conn.execute(
        va.update()
        .where(va.c.visitId == sa.bindparam("vid"), va.c.type == int(ActivityType.VISIT))
        .values(details=sa.bindparam("d"), updatedAt=now),
        [{"vid": x.id, "d": _visit_details(x.count)} for x in visits],
    )
    conn.execute(
        v.update()
        .where(v.c.id == sa.bindparam("vid"))
        .values(pageViewCount=sa.bindparam("n"), doNotSell=sa.bindparam("dns"), updatedAt=now),
        [{"vid": s.id, "n": s.views, "dns": s.do_not_sell} for s in state.values()],
    )
    for s in state.values():
        if s.prospect_id is not None:
            apply_effect(conn, s.prospect_id, s.points, s.first, s.last, now)
    return len(views)


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


@dataclass(slots=True)
class _Pending:
    hit: Hit
    done: Callable[[BaseException | None], None]


@dataclass
class IngestStats:
    batches: int = 0
    hits: int = 0
    failures: int = 0
    largest_batch: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TrackingIngest:
    """Group commit of hits: one flusher thread writes whatever is queued in one transaction and
    then acknowledges every hit of the batch (or fails them all)."""

    def __init__(
        self, engine: Engine, *, clock: Clock | None = None, max_batch: int = 2000, linger: float = 0.002
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.max_batch = max_batch
        self.linger = linger
        self.stats = IngestStats()
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._companies = CompanyTable()
        self._companies_loaded = 0.0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="renkei-tracking-ingest", daemon=True
                    )
                    self._thread.start()

    def submit(self, hit: Hit, done: Callable[[BaseException | None], None]) -> None:
        self._ensure_thread()
        self._queue.put(_Pending(hit, done))

    async def record(self, hit: Hit) -> None:
        """Queue a hit and wait until its batch has committed (raises if the batch failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

            loop.call_soon_threadsafe(settle)

        self.submit(hit, done)
        await future

    def record_sync(self, hits: Sequence[Hit]) -> int:
        """Write hits now, in the caller's thread (imports, tests, tools)."""
        with self.engine.begin() as conn:
            return ingest(conn, hits, self._company_table(conn), self.clock.now())

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _company_table(self, conn: Connection) -> CompanyTable:
        if time.monotonic() - self._companies_loaded > 30:
            self._companies = CompanyTable.load(conn)
            self._companies_loaded = time.monotonic()
        return self._companies

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._flush(batch)

    def _flush(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            with self.engine.begin() as conn:
                ingest(conn, [p.hit for p in batch], self._company_table(conn), self.clock.now())
        except Exception as exc:  # the whole batch is refused; clients resend
            error = exc
        with self.stats.lock:
            self.stats.batches += 1
            self.stats.hits += len(batch) if error is None else 0
            self.stats.failures += len(batch) if error is not None else 0
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for p in batch:
            p.done(error)


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
