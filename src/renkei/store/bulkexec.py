"""Many parameter sets through the driver's ``executemany``, for the sync cycle's hot writes.

SQLAlchemy's generic ``conn.execute(stmt, rows)`` builds every parameter set in Python with a
check and a lookup per value (about 40 µs a row for a dozen columns): at 10,000 rows a cycle,
that is most of the cost of writing them. Here the statement compiles once, each bind parameter's
type processor (date-times, JSON) is looked up once, and the rows go to the driver as tuples (or
dictionaries, for drivers with named parameters) — the same values SQLAlchemy would have sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import UpdateBase

_NOTHING = object()


def _last_kept(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``proc`` that reuses its last result for the same object: a cycle stamps every row with one
    date-time, processed once instead of 10,000 times."""
    last: list[Any] = [_NOTHING, None]

    def run(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        out = proc(value)
        last[0], last[1] = value, out
        return out

    return run


def executemany(conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> int:
    """Execute ``stmt`` (an INSERT, UPDATE or upsert with bind parameters named as the rows' keys)
    once per row. Every row must have the first row's keys. Returns the rows it changed, summed
    over the parameter sets (the driver's ``rowcount``; -1 where the driver does not count)."""
    if not rows:
        return 0
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=list(rows[0]))
    defaults = compiled.construct_params(params=dict(rows[0]))  # literal binds besides the rows
    # bind parameters by the names the SQL renders (anonymous ones, e.g. a literal, get theirs here)
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names: Sequence[str] = (
        compiled.positiontup if compiled.positional and compiled.positiontup else list(defaults)
    )
    keys = set(rows[0])
    plan: list[tuple[str, Callable[[Any], Any] | None]] = []
    constants: dict[str, Any] = {}
    for name in names:
        bind = by_name[name]
        proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name not in keys:  # a literal of the statement: the same value for every row
            constants[name] = defaults[name] if proc is None else proc(defaults[name])
        plan.append((name, None if proc is None else _last_kept(proc)))
    if constants:
        rows = [{**row, **constants} for row in rows]
        plan = [(n, None if n in constants else p) for n, p in plan]
    sql = compiled.string
    # one comprehension per row, no call per value except the processors (date-times, JSON)
    if compiled.positional:
        params: list[Any] = [tuple([row[n] if p is None else p(row[n]) for n, p in plan]) for row in rows]
    else:
        escaped = getattr(compiled, "escaped_bind_names", None) or {}
        named = [(escaped.get(n, n), n, p) for n, p in plan]
        params = [{e: row[n] if p is None else p(row[n]) for e, n, p in named} for row in rows]
    return int(conn.exec_driver_sql(sql, params).rowcount)
