"""``renkei activity apply``: configuration as YAML creates the scoring model, profiles, IP
ranges, assets and rules; applying it again changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from renkei.cli import app

CONFIG = """
scoring:
  activities: {"2/File": 5}
  page_actions: [{url: "https://example.jp/pricing", points: 10, match: prefix}]
grading_profiles:
  - name: 製造業
    criteria: [{field: industry, value: 製造, weight: 3}]
company_ranges: [{cidr: 203.0.113.0/24, company: 株式会社サンプル}]
forms:
  - name: お問い合わせ
    fields:
      - {name: email, label: {ja: メールアドレス, en: Email}}
      - {name: comments, label: お問い合わせ内容, type: textarea}
landing_pages:
  - {name: 製品LP, slug: product, title: 製品のご案内, content: "<p>本文</p>", form: お問い合わせ}
custom_redirects:
  - {name: 広告, slug: ad, url: "https://example.jp/campaign"}
rules:
  - name: MQL
    paused: false
    rule: 'all(score >= 100, grade >= "B")'
    actions: [{type: add_tag, tag: MQL}]
"""


def test_apply_configuration(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "marketing.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["activity", "apply", str(path), "--json"])
    assert first.exit_code == 0, first.stdout
    assert json.loads(first.stdout) == {
        "scoring": {"version": 1, "rescored": 0},
        "grading_profiles": ["製造業"],
        "company_ranges": ["203.0.113.0/24"],
        "forms": ["お問い合わせ"],
        "landing_pages": ["product"],
        "custom_redirects": ["ad"],
        "rules": ["MQL"],
    }
    again = runner.invoke(app, ["activity", "apply", str(path), "--json"])
    assert json.loads(again.stdout)["scoring"] == {"version": 2, "rescored": 0}
    rules = json.loads(runner.invoke(app, ["activity", "rules", "--json"]).stdout)
    assert [(r["id"], r["name"], r["isPaused"], r["rule"]) for r in rules] == [
        (1, "MQL", False, 'all(score >= 100, grade >= "B")')
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["activity", "apply", str(bad), "--json"])
    assert result.exit_code == 1 and "unknown sections: nonsense" in result.stderr
