"""The /api/v5 REST API over real HTTP: token auth and scopes, fields, paging, orderBy, filters,
writes, errors in v5's shape; and schemathesis against /openapi.json (no 5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.marketing.service import CampaignService, ProspectService
from renkei.web.auth import AuthService
from renkei.web.ui.views import connector_installed

from .helpers import T0, live_server, make_user


def _api(engine: Engine) -> Iterator[tuple[httpx.Client, AuthService, int]]:
    clock = FixedClock(T0)
    user = make_user(engine)
    auth = AuthService(engine, clock=clock)
    with live_server(engine, clock) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, auth, user["id"]


@pytest.fixture
def api(engine: Engine) -> Iterator[tuple[httpx.Client, AuthService, int]]:
    yield from _api(engine)


@pytest.fixture
def sqlite_api(sqlite_engine: Engine) -> Iterator[tuple[httpx.Client, AuthService, int]]:
    """Error shapes do not depend on the backend."""
    yield from _api(sqlite_engine)


def _bearer(auth: AuthService, user_id: int, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.create_token(user_id, 'test', scopes).token}"}


def test_query_pages_with_tokens_and_orders(
    api: tuple[httpx.Client, AuthService, int], engine: Engine
) -> None:
    client, auth, uid = api
    service = ProspectService(engine, clock=FixedClock(T0))
    for i in range(5):
        service.create(
            {"email": f"p{i}@example.jp", "lastName": "山田" if i % 2 else "佐藤", "score": i * 10}
        )
    headers = _bearer(auth, uid, "read")
    first = client.get(
        "/api/v5/objects/prospects",
        params={"fields": "id,email,score", "limit": 2, "orderBy": "score DESC"},
        headers=headers,
    )
    assert first.status_code == 200
    body = first.json()
    assert body["values"] == [
        {"id": 5, "email": "p4@example.jp", "score": 40},
        {"id": 4, "email": "p3@example.jp", "score": 30},
    ]
    seen = [v["id"] for v in body["values"]]
    while body["nextPageUrl"]:
        assert (
            body["nextPageUrl"].startswith(str(client.base_url))
            and "fields=id%2Cemail%2Cscore" in body["nextPageUrl"]
        )
        body = client.get(body["nextPageUrl"], headers=headers).json()
        seen += [v["id"] for v in body["values"]]
    assert (seen, body["nextPageToken"]) == ([5, 4, 3, 2, 1], None)
    filtered = client.get(
        "/api/v5/objects/prospects",
        params={"fields": "id", "idGreaterThan": 3, "scoreLessThan": 40},
        headers=headers,
    )
    assert filtered.json() == {"values": [{"id": 4}], "nextPageToken": None, "nextPageUrl": None}
    one = client.get(
        "/api/v5/objects/prospects/2", params={"fields": "id,lastName,createdAt"}, headers=headers
    )
    assert one.json() == {"id": 2, "lastName": "山田", "createdAt": "2026-04-01T09:00:00+00:00"}


def test_errors_in_v5_shape(sqlite_api: tuple[httpx.Client, AuthService, int]) -> None:
    client, auth, uid = sqlite_api
    reader = _bearer(auth, uid, "read")
    cases = [
        (client.get("/api/v5/objects/prospects"), 401, 184),
        (
            client.get(
                "/api/v5/objects/prospects",
                params={"fields": "id"},
                headers={"Authorization": "Bearer rk_nope"},
            ),
            401,
            184,
        ),
        (client.get("/api/v5/objects/prospects", headers=reader), 400, 10001),
        (
            client.get("/api/v5/objects/prospects", params={"fields": "id,password"}, headers=reader),
            400,
            10002,
        ),
        (
            client.get("/api/v5/objects/prospects", params={"fields": "id", "limit": 1001}, headers=reader),
            400,
            10002,
        ),
        (
            client.get(
                "/api/v5/objects/prospects",
                params={"fields": "id", "nextPageToken": "forged"},
                headers=reader,
            ),
            400,
            211,
        ),
        (client.get("/api/v5/objects/prospects/99", params={"fields": "id"}, headers=reader), 404, 192),
        (client.post("/api/v5/objects/prospects", json={"email": "a@b.jp"}, headers=reader), 403, 10003),
        (
            client.get(
                "/api/v5/objects/prospects",
                params={
                    "fields": "id",
                    "idGreaterThan": 1,
                    "scoreGreaterThan": 1,
                    "createdAtAfter": "2026-01-01T00:00:00+09:00",
                    "updatedAtBefore": "2027-01-01T00:00:00+00:00",
                },
                headers=reader,
            ),
            400,
            209,
        ),
    ]
    assert [(r.status_code, r.json()["code"], sorted(r.json())) for r, _, _ in cases] == [
        (status, code, ["code", "message"]) for _, status, code in cases
    ]


def test_write_prospects_and_recycle_bin(api: tuple[httpx.Client, AuthService, int], engine: Engine) -> None:
    client, auth, uid = api
    headers = _bearer(auth, uid, "read", "write")
    created = client.post(
        "/api/v5/objects/prospects",
        params={"fields": "id,email,firstName,score"},
        json={"email": "new@example.jp", "firstName": "花子"},
        headers=headers,
    )
    assert (created.status_code, created.json()) == (
        201,
        {"id": 1, "email": "new@example.jp", "firstName": "花子", "score": 0},
    )
    patched = client.patch(
        "/api/v5/objects/prospects/1",
        params={"fields": "firstName,company"},
        json={"company": "連携株式会社"},
        headers=headers,
    )
    assert patched.json() == {"firstName": "花子", "company": "連携株式会社"}
    assert (
        client.patch(
            "/api/v5/objects/prospects/1", json={"createdAt": "2020-01-01T00:00:00+00:00"}, headers=headers
        ).json()["code"]
        == 180
    )
    assert client.delete("/api/v5/objects/prospects/1", headers=headers).status_code == 204
    recycled = client.patch("/api/v5/objects/prospects/1", json={"company": "x"}, headers=headers)
    assert (recycled.status_code, recycled.json()["code"]) == (400, 219)
    listed = client.get(
        "/api/v5/objects/prospects", params={"fields": "id,isDeleted", "deleted": "true"}, headers=headers
    )
    assert listed.json()["values"] == [{"id": 1, "isDeleted": True}]
    CampaignService(engine).create({"name": "展示会 2026"})
    campaigns = client.get("/api/v5/objects/campaigns", params={"fields": "id,name"}, headers=headers)
    assert campaigns.json()["values"] == [{"id": 1, "name": "展示会 2026"}]


def test_lists_memberships_campaigns_upsert_undelete(api: tuple[httpx.Client, AuthService, int]) -> None:
    client, auth, uid = api
    headers = _bearer(auth, uid, "read", "write")
    made = client.post(
        "/api/v5/objects/lists",
        json={"name": "seminar-2026", "isPublic": True},
        params={"fields": "id,name,isPublic,isDynamic"},
        headers=headers,
    )
    assert (made.status_code, made.json()) == (
        201,
        {"id": 1, "name": "seminar-2026", "isPublic": True, "isDynamic": False},
    )
    bad = client.post("/api/v5/objects/lists", json={"name": "x", "isPublic": "yes"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (400, 10004)
    assert (
        client.post("/api/v5/objects/lists", json={"name": "x", "isDynamic": True}, headers=headers).json()[
            "code"
        ]
        == 180
    )
    upsert = {
        "matchEmail": "Hanako@Example.jp",
        "prospect": {"firstName": "花子"},
        "fields": ["id", "email", "firstName"],
    }
    first = client.post("/api/v5/objects/prospects/do/upsertLatestByEmail", json=upsert, headers=headers)
    assert first.json() == {"id": 1, "email": "Hanako@Example.jp", "firstName": "花子"}
    again = client.post(
        "/api/v5/objects/prospects/do/upsertLatestByEmail",
        json={**upsert, "prospect": {"firstName": "はなこ"}},
        headers=headers,
    )
    assert again.json() == {"id": 1, "email": "Hanako@Example.jp", "firstName": "はなこ"}
    member = client.post(
        "/api/v5/objects/list-memberships", json={"listId": 1, "prospectId": 1}, headers=headers
    )
    assert (
        member.status_code,
        {k: member.json()[k] for k in ("id", "listId", "prospectId", "optedOut")},
    ) == (
        201,
        {"id": 1, "listId": 1, "prospectId": 1, "optedOut": False},
    )
    missing = client.post(
        "/api/v5/objects/list-memberships", json={"listId": 1, "prospectId": 99}, headers=headers
    )
    assert (missing.status_code, missing.json()["code"]) == (404, 192)
    assert client.delete("/api/v5/objects/list-memberships/1", headers=headers).status_code == 204
    assert (
        client.get("/api/v5/objects/list-memberships", params={"fields": "id"}, headers=headers).json()[
            "values"
        ]
        == []
    )
    assert client.delete("/api/v5/objects/prospects/1", headers=headers).status_code == 204
    restored = client.post(
        "/api/v5/objects/prospects/1/do/undelete", params={"fields": "id,isDeleted"}, headers=headers
    )
    assert restored.json() == {"id": 1, "isDeleted": False}
    campaign = client.post(
        "/api/v5/objects/campaigns",
        json={"name": "ウェビナー", "cost": 50000, "startDate": "2026-05-01"},
        params={"fields": "name,cost,startDate"},
        headers=headers,
    )
    assert campaign.json() == {"name": "ウェビナー", "cost": 50000.0, "startDate": "2026-05-01"}
    renamed = client.patch(
        "/api/v5/objects/campaigns/1",
        json={"name": "ウェビナー 5月"},
        params={"fields": "id,name"},
        headers=headers,
    )
    assert renamed.json() == {"id": 1, "name": "ウェビナー 5月"}


def test_schemathesis_finds_no_server_errors(sqlite_engine: Engine, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    user = make_user(sqlite_engine)
    ProspectService(sqlite_engine, clock=clock).create({"email": "seed@example.jp"})
    token = (
        AuthService(sqlite_engine, clock=clock)
        .create_token(user["id"], "fuzz", ["read", "write", "connector"])
        .token
    )
    with live_server(sqlite_engine, clock, connector_config=str(tmp_path / "connector.yaml")) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(path_regex="^/api/v5/")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 14 + (6 if connector_installed() else 0)
        failures: list[str] = []
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:200]}"
                    )

            check()
        assert failures == []


def test_the_owners_role_limits_what_a_token_can_do(sqlite_engine: Engine) -> None:
    clock = FixedClock(T0)
    sales = make_user(sqlite_engine, "rep@example.com", "sales")
    auth = AuthService(sqlite_engine, clock=clock)
    token = {"Authorization": f"Bearer {auth.create_token(sales['id'], 'crm', ['read', 'write']).token}"}
    with live_server(sqlite_engine, clock) as base, httpx.Client(base_url=base, timeout=30) as client:
        assert (
            client.get("/api/v5/objects/prospects", params={"fields": "id"}, headers=token).status_code == 200
        )
        created = client.post("/api/v5/objects/prospects", json={"email": "x@example.jp"}, headers=token)
        assert (created.status_code, created.json()["code"]) == (403, 10003)  # sales only views prospects
        users = client.get("/api/v5/objects/users", params={"fields": "id"}, headers=token)
        assert (users.status_code, users.json()["code"]) == (403, 10003)  # no settings for sales
