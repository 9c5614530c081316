"""AuthService: users, passwords (argon2), sessions, rate limiting, API tokens, audit log, roles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.errors import InputError
from renkei.store import tables_web as w
from renkei.web.auth import DEMO_ADMIN_EMAIL, AuthService, LoginRefused, NotSignedIn, TooManyAttempts
from renkei.web.permissions import Level

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def auth(engine: Engine, clock: FixedClock) -> AuthService:
    return AuthService(engine, clock=clock)


def test_password_is_hashed_with_argon2_and_verifies(auth: AuthService, engine: Engine) -> None:
    user = auth.create_user("Ops@Example.com", role="marketing", password=PASSWORD)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(w.web_credential.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert auth.authenticate("ops@example.com", PASSWORD)["id"] == user["id"]
    with pytest.raises(LoginRefused):
        auth.authenticate("ops@example.com", "wrong password!")
    with pytest.raises(InputError, match="already exists"):
        auth.create_user("ops@example.com", role="admin", password=PASSWORD)
    with pytest.raises(InputError, match="at least 10"):
        auth.create_user("x@example.com", role="admin", password="short")
    with pytest.raises(InputError, match="unknown role"):
        auth.create_user("x@example.com", role="owner", password=PASSWORD)


def test_login_rate_limit_per_email_then_window_passes(auth: AuthService, clock: FixedClock) -> None:
    auth.create_user("a@example.com", role="admin", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(LoginRefused):
            auth.authenticate("a@example.com", "nope nope nope", ip="10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        auth.authenticate("a@example.com", PASSWORD, ip="10.0.0.1")  # even the right password
    assert refused.value.retry_after == 15 * 60 + 1
    clock.advance(minutes=15, seconds=1)
    assert auth.authenticate("a@example.com", PASSWORD, ip="10.0.0.1")["email"] == "a@example.com"


def test_sessions_expire_when_idle_and_end_on_password_change(auth: AuthService, clock: FixedClock) -> None:
    user = auth.create_user("s@example.com", role="sales", password=PASSWORD)
    raw = auth.start_session(user["id"], ip="127.0.0.1")
    principal = auth.session(raw)
    assert principal is not None
    assert (principal.email, principal.role.name, len(principal.csrf_token) > 30) == (
        "s@example.com",
        "sales",
        True,
    )
    assert principal.can("crm", Level.EDIT) and not principal.can("settings")
    assert auth.session("forged") is None
    clock.advance(hours=7)
    assert auth.session(raw) is not None  # sliding: used within the idle window
    clock.advance(hours=8, seconds=1)
    assert auth.session(raw) is None
    raw2 = auth.start_session(user["id"])
    auth.set_password(user["id"], "another long password")
    assert auth.session(raw2) is None


def test_api_tokens_hashed_scoped_revocable(auth: AuthService, engine: Engine) -> None:
    user = auth.create_user("t@example.com", role="marketing", password=PASSWORD)
    token = auth.create_token(user["id"], "ci", ["read", "write"])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(w.web_api_token.c.token_hash)).scalar_one()
    assert token.token.startswith("rk_") and token.token not in stored
    assert auth.token_principal(token.token).scopes == ("read", "write")
    with pytest.raises(InputError, match="scopes"):
        auth.create_token(user["id"], "bad", ["admin"])
    auth.revoke_token(token.id)
    with pytest.raises(NotSignedIn):
        auth.token_principal(token.token)
    listed = auth.tokens(user["id"])
    assert [(t["name"], t["prefix"], t["revokedAt"] is not None) for t in listed] == [
        ("ci", token.token[:10], True)
    ]


def test_settings_changes_are_audited(auth: AuthService) -> None:
    admin = auth.create_user("root@example.com", role="admin", password=PASSWORD)
    principal = auth.session(auth.start_session(admin["id"]))
    user = auth.create_user("m@example.com", role="marketing", password=PASSWORD, actor=principal)
    auth.set_user(user["id"], {"role": "read-only"}, actor=principal)
    auth.set_role_permissions("sales", {"crm": "view", "dashboard": "view"}, actor=principal)
    log = [(e["actor"], e["action"], e["target"], e["before"], e["after"]) for e in auth.audit_log()]
    assert log[:3] == [
        ("root@example.com", "role.permissions", "sales", log[0][3], log[0][4]),
        ("root@example.com", "user.update", "m@example.com", {"role": "marketing"}, {"role": "read-only"}),
        ("root@example.com", "user.create", "m@example.com", None, {"role": "marketing"}),
    ]
    assert log[0][4]["crm"] == "view" and log[0][4]["settings"] == "none" and log[0][3]["crm"] == "edit"
    assert auth.role("sales").level("crm") is Level.VIEW


def test_demo_admin_password_kept_in_file(sqlite_engine: Engine, tmp_path: Path) -> None:
    auth = AuthService(sqlite_engine)
    path = tmp_path / ".renkei-demo-login"
    email, password = auth.ensure_demo_admin(path)
    assert (email, path.read_text(), oct(path.stat().st_mode & 0o777)) == (
        DEMO_ADMIN_EMAIL,
        f"{DEMO_ADMIN_EMAIL}\n{password}\n",
        "0o600",
    )
    assert auth.ensure_demo_admin(path) == (email, password)  # stable across starts
    path.unlink()
    _, fresh = auth.ensure_demo_admin(path)
    assert fresh != password and auth.authenticate(email, fresh)["role"] == "admin"


def test_migrated_roles_are_the_default_roles(auth: AuthService) -> None:
    from renkei.web.permissions import DEFAULT_ROLES

    assert auth.roles() == list(DEFAULT_ROLES)
