"""``renkei list …`` and ``renkei report …`` in-process, JSON output and exit codes, both backends."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from renkei.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_list_commands(cli_env: str) -> None:
    for email, score in (("a@example.jp", "10"), ("b@example.jp", "80")):
        run("prospect", "create", "--set", f"email={email}", "--set", f"score={score}", "--json")
    created = run("list", "create", "hot", "--rule", "all(score >= 50)", "--json")
    assert {k: created[k] for k in ("id", "name", "kind", "isSuppression", "memberCount")} == {
        "id": 1,
        "name": "hot",
        "kind": "dynamic",
        "isSuppression": False,
        "memberCount": 1,
    }
    assert created["rule"] == "all(\n  score >= 50\n)"
    assert [m["email"] for m in run("list", "members", "1", "--json")] == ["b@example.jp"]
    run("prospect", "update", "1", "--set", "score=99", "--json")
    [refreshed] = run("list", "refresh", "--json")
    assert (refreshed["mode"], refreshed["added"], refreshed["memberCount"]) == ("incremental", 1, 2)
    explained = run("list", "explain", "1", "2", "--json")
    assert explained["explanation"]["children"] == [{"rule": "score >= 50", "matched": True}]
    static = run("list", "create", "vip", "--static", "--suppression", "--json")
    assert run("list", "add", str(static["id"]), "1", "--json") == {"listId": static["id"], "added": 1}
    assert run("list", "remove", str(static["id"]), "1", "--json") == {"listId": static["id"], "removed": 1}
    assert run("list", "count", "--rule", 'all(email contains "b@")', "--json") == {"count": 1}
    assert [x["name"] for x in run("list", "ls", "--json")] == ["hot", "vip"]
    assert run("list", "show", "1", "--json")["memberCount"] == 2
    assert run("list", "set-rule", "1", "--rule", "all(score > 90)", "--json")["memberCount"] == 1
    bad = run("list", "create", "x", "--rule", "all(scroe > 1)", code=1)
    assert "unknown prospect field 'scroe'" in bad.stderr
    bad = run("list", "create", "x", "--rule", "all(score >", code=1)
    assert "INVALID_RULE: rule text ends too early" in bad.stderr
    assert "list 9 not found" in run("list", "show", "9", code=1).stderr


def test_report_commands(cli_env: str, tmp_path: Any) -> None:
    for email, score in (("a@example.jp", "10"), ("b@example.jp", "80")):
        run("prospect", "create", "--set", f"email={email}", "--set", f"score={score}", "--json")
    names = [(r["name"], r["kind"]) for r in run("report", "list", "--json")]
    assert names[:3] == [
        ("leads-web-visits", "built-in"),
        ("lost-reengaged", "built-in"),
        ("score-grade", "built-in"),
    ]
    report = run("report", "run", "score-grade", "--json")
    assert report["rows"] == [
        {"scoreBand": "0-24", "grade": "none", "prospects": 1},
        {"scoreBand": "50-99", "grade": "none", "prospects": 1},
    ]
    out = tmp_path / "grades.csv"
    written = run("report", "run", "score-grade", "--bom", "--output", str(out), "--json")
    assert written == {"name": "score-grade", "rows": 2, "output": str(out)}
    assert out.read_bytes() == "\ufeffscoreBand,grade,prospects\r\n0-24,none,1\r\n50-99,none,1\r\n".encode()
    assert run("report", "run", "score-grade", "--csv").stdout.startswith("scoreBand,grade,prospects")
    saved = run("report", "save", "hot", "--rule", "all(score > 50)", "--measure", "count", "--json")
    assert saved["rule"] == "all(\n  score > 50\n)"
    assert run("report", "run", "hot", "--json")["rows"] == [{"count": 1}]
    assert run("report", "delete", "hot", "--json") == {"name": "hot", "deleted": True}
    assert run("report", "calendar", "--start", "2026-06-01", "--end", "2026-06-30", "--json") == []
    assert (
        "expects YYYY-MM-DD"
        in run("report", "calendar", "--start", "June", "--end", "2026-06-30", code=1).stderr
    )
    assert "report 'nope' not found" in run("report", "run", "nope", code=1).stderr
