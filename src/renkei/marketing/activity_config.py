"""Marketing-activity configuration as data: one YAML document read by ``renkei activity apply``.

```yaml
scoring: {activities: {"2/File": 5}, page_actions: [{url: https://example.jp/pricing, points: 10}]}
grading_profiles: [{name: 製造業, criteria: [{field: industry, value: 製造, weight: 3}]}]
company_ranges: [{cidr: 203.0.113.0/24, company: 株式会社サンプル}]
forms: [{name: お問い合わせ, fields: [{name: email, label: メールアドレス}], thank_you: <p>…</p>}]
form_handlers: [{name: 外部フォーム, fields: [...], success_url: https://…}]
landing_pages: [{name: 製品LP, slug: product, title: 製品, content: <p>…</p>, form: お問い合わせ}]
custom_redirects: [{name: 広告, slug: ad, url: https://…}]
rules: [{name: MQL, paused: false, match: all, criteria: [...], actions: [...]}]
```

Scoring, profiles and rules are created or replaced; assets that already exist (same name, or
same slug) are left as they are and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.core.scoring import ScoreModel
from renkei.errors import ConfigError
from renkei.marketing.automation_service import AutomationService
from renkei.marketing.forms import AssetService
from renkei.marketing.scoring_service import GradingService, ScoringService
from renkei.marketing.tracking import add_company_range
from renkei.store import tables_activity as ta

KEYS = (
    "scoring",
    "grading_profiles",
    "company_ranges",
    "forms",
    "form_handlers",
    "landing_pages",
    "custom_redirects",
    "rules",
)


def _existing(engine: Engine, table: sa.Table, column: str, value: Any) -> int | None:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(table.c.id).where(table.c[column] == value).limit(1)
        ).scalar_one_or_none()
    return None if found is None else int(found)


def apply_config(engine: Engine, config: Mapping[str, Any], *, clock: Clock | None = None) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigError("the configuration is a mapping of sections")
    unknown = set(config) - set(KEYS)
    if unknown:
        raise ConfigError(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(KEYS)})")
    clock = clock or SystemClock()
    assets = AssetService(engine, clock=clock)
    done: dict[str, Any] = {}
    if "scoring" in config:
        done["scoring"] = ScoringService(engine, clock=clock, actor="config").set_model(
            ScoreModel.from_dict(config["scoring"])
        )
    for profile in config.get("grading_profiles") or ():
        GradingService(engine, clock=clock).save_profile(str(profile["name"]), profile.get("criteria") or ())
        done.setdefault("grading_profiles", []).append(profile["name"])
    for item in config.get("company_ranges") or ():
        if _existing(engine, ta.company_cidr, "cidr", str(item["cidr"])) is None:
            add_company_range(engine, str(item["cidr"]), str(item["company"]), clock=clock)
        done.setdefault("company_ranges", []).append(item["cidr"])
    for f in config.get("forms") or ():
        if _existing(engine, ta.form, "name", f["name"]) is None:
            assets.create_form(f["name"], f["fields"], campaign_id=f.get("campaign_id"), thank_you=f.get("thank_you"),
                               redirect_url=f.get("redirect_url"), language=f.get("language", "ja"),
                               completion_actions=f.get("completion_actions") or ())  # fmt: skip
        done.setdefault("forms", []).append(f["name"])
    for h in config.get("form_handlers") or ():
        if _existing(engine, ta.form_handler, "name", h["name"]) is None:
            assets.create_form_handler(h["name"], h["fields"], campaign_id=h.get("campaign_id"), success_url=h.get("success_url"),
                                       error_url=h.get("error_url"), completion_actions=h.get("completion_actions") or ())  # fmt: skip
        done.setdefault("form_handlers", []).append(h["name"])
    for page in config.get("landing_pages") or ():
        if _existing(engine, ta.landing_page, "slug", page["slug"]) is None:
            form_id = _existing(engine, ta.form, "name", page["form"]) if page.get("form") else None
            if page.get("form") and form_id is None:
                raise ConfigError(f"landing page {page['slug']}: no form named {page['form']!r}")
            assets.create_landing_page(page["name"], page["slug"], title=page["title"], content=page.get("content", ""),
                                       form_id=form_id, layout=page.get("layout", "default"),
                                       campaign_id=page.get("campaign_id"),
                                       completion_actions=page.get("completion_actions") or ())  # fmt: skip
        done.setdefault("landing_pages", []).append(page["slug"])
    for r in config.get("custom_redirects") or ():
        if _existing(engine, ta.custom_redirect, "slug", r["slug"]) is None:
            assets.create_redirect(r["name"], r["slug"], r["url"], campaign_id=r.get("campaign_id"),
                                   completion_actions=r.get("completion_actions") or ())  # fmt: skip
        done.setdefault("custom_redirects", []).append(r["slug"])
    automation = AutomationService(engine, clock=clock)
    for rule in config.get("rules") or ():
        definition = {k: v for k, v in rule.items() if k not in ("name", "paused")}
        saved = automation.save_rule(str(rule["name"]), definition, paused=bool(rule.get("paused", True)))
        automation.set_paused(saved["id"], bool(rule.get("paused", True)))
        done.setdefault("rules", []).append(rule["name"])
    return done
