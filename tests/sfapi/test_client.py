"""The Salesforce adapter's client against scripted responses (httpx.MockTransport): retries,
session renewal, the API budget, secrets handling and collection batching."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError as PydanticValidationError

from renkei.connector.adapters.salesforce import ApiBudget, SalesforceClient, SalesforceConfig, Secret
from renkei.errors import ConfigError, InputError, NotFoundError, RetriableError
from renkei.testing.faults import Fault, FaultInjectingTransport, FaultKind

OK_LIMITS = {"DailyApiRequests": {"Max": 100, "Remaining": 90}}


def make_client(
    handler: httpx.MockTransport | httpx.BaseTransport, **cfg: object
) -> tuple[SalesforceClient, list[float]]:
    slept: list[float] = []
    config = SalesforceConfig.model_validate(
        {"instance_url": "https://org.example", "token": {"env": "SF_TOKEN"}, "max_attempts": 4, **cfg}
    )
    return SalesforceClient(config, transport=handler, sleep=slept.append), slept


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_TOKEN", "tok-secret-123")


def test_retries_5xx_429_and_lock_then_succeeds_and_tracks_budget() -> None:
    statuses = iter(
        [(503, "SERVER_UNAVAILABLE"), (429, "REQUEST_LIMIT_EXCEEDED"), (400, "UNABLE_TO_LOCK_ROW")]
    )
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        nxt = next(statuses, None)
        if nxt:
            return httpx.Response(nxt[0], json=[{"message": "x", "errorCode": nxt[1]}])
        return httpx.Response(200, json=OK_LIMITS, headers={"Sforce-Limit-Info": "api-usage=10/100"})

    client, slept = make_client(httpx.MockTransport(handler))
    assert client.limits() == OK_LIMITS
    assert seen == ["Bearer tok-secret-123"] * 4
    assert len(slept) == 3
    assert client.budget == ApiBudget(10, 100)
    assert client.budget.remaining == 90


def test_gives_up_after_max_attempts_with_a_retriable_error() -> None:
    client, slept = make_client(
        httpx.MockTransport(
            lambda r: httpx.Response(503, json=[{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}])
        )
    )  # noqa: E501
    with pytest.raises(RetriableError) as exc:
        client.limits()
    assert exc.value.code == "SERVER_UNAVAILABLE"
    assert len(slept) == 3 and client.calls == 4


def test_not_retried_errors_map_to_renkei_errors() -> None:
    answers = {
        "/services/data/v60.0/sobjects/Lead/00Q5g000000000AAAA": (404, "NOT_FOUND"),
        "/services/data/v60.0/sobjects/Lead": (400, "REQUIRED_FIELD_MISSING"),
        "/services/data/v60.0/limits": (401, "INVALID_SESSION_ID"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        status, code = answers[request.url.path]
        return httpx.Response(
            status, json=[{"message": code.lower(), "errorCode": code, "fields": ["Company"]}]
        )

    client, slept = make_client(httpx.MockTransport(handler))
    with pytest.raises(NotFoundError):
        client.get("Lead", "00Q5g000000000AAAA")
    with pytest.raises(InputError) as exc:
        client.request("POST", "sobjects/Lead", json={})
    assert (exc.value.code, exc.value.errors[0].fields) == ("REQUIRED_FIELD_MISSING", ("Company",))
    with pytest.raises(ConfigError):
        client.limits()
    assert slept == []


def test_client_credentials_login_and_one_renewal_on_401(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_SECRET", "s3cr3t")
    tokens = iter(["first", "second"])
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            assert (form["grant_type"], form["client_id"], form["client_secret"]) == (
                "client_credentials",
                "cid",
                "s3cr3t",
            )
            return httpx.Response(200, json={"access_token": next(tokens)})
        calls.append((request.url.path, request.headers["Authorization"]))
        if request.headers["Authorization"] == "Bearer first":
            return httpx.Response(401, json=[{"message": "expired", "errorCode": "INVALID_SESSION_ID"}])
        return httpx.Response(200, json=OK_LIMITS)

    client, _ = make_client(
        httpx.MockTransport(handler),
        flow="client_credentials",
        token=None,
        client_id="cid",
        client_secret={"env": "SF_SECRET"},
    )
    assert client.limits() == OK_LIMITS
    assert calls == [
        ("/services/data/v60.0/limits", "Bearer first"),
        ("/services/data/v60.0/limits", "Bearer second"),
    ]
    assert "s3cr3t" not in repr(client) and "s3cr3t" not in repr(client.config)


def test_config_needs_the_flow_credentials_and_secret_sources(tmp_path: Path) -> None:
    with pytest.raises(PydanticValidationError):
        SalesforceConfig.model_validate({"instance_url": "https://x", "flow": "password", "client_id": "c"})
    with pytest.raises(PydanticValidationError):
        Secret.model_validate({})
    path = tmp_path / "secret"
    path.write_text("from-file\n", encoding="utf-8")
    assert Secret(file=path).reveal() == "from-file"
    with pytest.raises(ConfigError):
        Secret(env="RENKEI_NO_SUCH_VAR").reveal()


def test_collections_go_in_batches_of_200_and_lock_failures_are_resent_alone() -> None:
    bodies: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        bodies.append(len(records))
        return httpx.Response(
            200, json=[{"id": f"id-{r['LastName']}", "success": True, "errors": []} for r in records]
        )

    faults = FaultInjectingTransport(
        httpx.MockTransport(handler),
        [Fault(FaultKind.PARTIAL_COLLECTION, "composite/sobjects", times=1, stride=3)],
    )
    client, slept = make_client(faults)
    rows = [{"LastName": str(i), "Company": "C"} for i in range(450)]
    results = client.create_many("Lead", rows)
    assert [r["id"] for r in results] == [f"id-{i}" for i in range(450)]
    # first batch: 200 minus 66 lock failures forwarded, then the 66 resent; then 200 and 50
    assert bodies == [134, 66, 200, 50]
    assert len(slept) == 1
    assert [k for k, _, _ in faults.injected] == [FaultKind.PARTIAL_COLLECTION]
