"""Bearer tokens (Salesforce session ids) for CRM users, and the OAuth 2.0 token endpoint's flows.

Tokens are random URL-safe strings shaped like a Salesforce session id (``00D…!…``); only their
SHA-256 is stored, as for connected-app secrets (random, 256 bits); API passwords, which people
choose, are kept as argon2 hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.errors import InputError, NotFoundError, RenkeiError
from renkei.store.tables import CRM_TABLES
from renkei.store.tables_sfapi import sfapi_client, sfapi_password, sfapi_token

_hasher = PasswordHasher()
ORG_PREFIX = "00D5g000000RNKEI"


class InvalidSessionError(RenkeiError):
    """A missing, unknown, revoked or expired bearer token (HTTP 401)."""

    code = "INVALID_SESSION_ID"
    http_status = 401


class OAuthError(RenkeiError):
    """An OAuth token request that failed; rendered as ``{"error","error_description"}``."""

    http_status = 400

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description, code=error)
        self.http_status = status

    def to_oauth(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.message}


@dataclass(frozen=True, slots=True)
class CrmUser:
    id: str
    username: str
    email: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    user: CrmUser
    issued_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "user_id": self.user.id, "username": self.user.username}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenService:
    """Issues and checks bearer tokens; registers connected apps and API passwords."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    # -- users -------------------------------------------------------------------------------

    def find_user(self, username_or_email: str) -> CrmUser:
        """The active CRM user whose Username (exactly) or Email (case-insensitively) is given."""
        users = CRM_TABLES["User"]
        key = username_or_email.strip()
        cols = (users.c.Id, users.c.Username, users.c.Email, users.c.IsActive)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols)
                .where(users.c.IsDeleted.is_(False))
                .where(sa.or_(users.c.Username == key, sa.func.lower(users.c.Email) == key.lower()))
                .order_by(users.c.Id)
            ).all()
        if not rows:
            raise NotFoundError(f"no CRM user with Username or Email {key!r}", code="NOT_FOUND")
        exact = [r for r in rows if r.Username == key] or rows
        if len(exact) > 1:
            raise InputError(
                f"several CRM users have Email {key!r}; give the Username", code="DUPLICATE_VALUE"
            )
        row = exact[0]
        return CrmUser(row.Id, row.Username, row.Email, bool(row.IsActive))

    def _user_by_id(self, user_id: str) -> CrmUser | None:
        users = CRM_TABLES["User"]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(users.c.Id, users.c.Username, users.c.Email, users.c.IsActive).where(
                    users.c.Id == user_id, users.c.IsDeleted.is_(False)
                )
            ).first()
        return CrmUser(row.Id, row.Username, row.Email, bool(row.IsActive)) if row else None

    # -- tokens ------------------------------------------------------------------------------

    def issue(
        self, user: CrmUser, *, client_id: str | None = None, ttl: dt.timedelta | None = None
    ) -> IssuedToken:
        if not user.is_active:
            raise InputError(f"CRM user {user.username} is inactive", code="INACTIVE_USER")
        now = self.clock.now()
        token = f"{ORG_PREFIX}!{secrets.token_urlsafe(48)}"
        with self.engine.begin() as conn:
            conn.execute(
                sfapi_token.insert().values(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    client_id=client_id,
                    created_at=now,
                    expires_at=now + ttl if ttl else None,
                    revoked=False,
                )
            )
        return IssuedToken(token, user, now)

    def authenticate(self, token: str | None) -> CrmUser:
        """The user a bearer token belongs to; INVALID_SESSION_ID for anything else."""
        if not token:
            raise InvalidSessionError("Session expired or invalid")
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sfapi_token).where(sfapi_token.c.token_hash == token_hash(token))
            ).first()
        if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= self.clock.now()):
            raise InvalidSessionError("Session expired or invalid")
        user = self._user_by_id(row.user_id)
        if user is None or not user.is_active:
            raise InvalidSessionError("Session expired or invalid")
        return user

    def revoke(self, token: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                sfapi_token.update().where(sfapi_token.c.token_hash == token_hash(token)).values(revoked=True)
            )
        return bool(result.rowcount)

    # -- connected apps and passwords ----------------------------------------------------------

    def create_client(self, user: CrmUser, name: str) -> tuple[str, str]:
        """A new connected app running as ``user``; returns (client_id, client_secret) once."""
        client_id = "3MVG" + secrets.token_urlsafe(30)
        secret = secrets.token_hex(32)
        with self.engine.begin() as conn:
            conn.execute(
                sfapi_client.insert().values(
                    client_id=client_id,
                    secret_hash=token_hash(secret),
                    user_id=user.id,
                    name=name,
                    created_at=self.clock.now(),
                )
            )
        return client_id, secret

    def set_password(self, user: CrmUser, password: str) -> None:
        if len(password) < 8:
            raise InputError("an API password needs at least 8 characters", code="INVALID_NEW_PASSWORD")
        values = {"password_hash": _hasher.hash(password), "updated_at": self.clock.now()}
        with self.engine.begin() as conn:
            updated = conn.execute(
                sfapi_password.update().where(sfapi_password.c.user_id == user.id).values(**values)
            )
            if not updated.rowcount:
                conn.execute(sfapi_password.insert().values(user_id=user.id, **values))

    def _check_client(self, client_id: str, client_secret: str) -> str:
        """The run-as user id of a connected app whose secret matches."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sfapi_client).where(sfapi_client.c.client_id == client_id)).first()
        if row is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(row.secret_hash, token_hash(client_secret)):
            raise OAuthError("invalid_client", "invalid client credentials")
        return str(row.user_id)

    def oauth_token(self, form: Mapping[str, str], *, instance_url: str) -> dict[str, Any]:
        """``POST /services/oauth2/token``: the client credentials and username-password flows."""
        grant = form.get("grant_type", "")
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if grant not in ("client_credentials", "password"):
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        run_as = self._check_client(client_id, client_secret)
        if grant == "client_credentials":
            user = self._user_by_id(run_as)
            if user is None:
                raise OAuthError("invalid_grant", "the connected app's run-as user no longer exists")
        else:
            user = self._password_user(form.get("username", ""), form.get("password", ""))
        if not user.is_active:
            raise OAuthError("invalid_grant", "inactive user")
        issued = self.issue(user, client_id=client_id)
        millis = str(int(issued.issued_at.timestamp() * 1000))
        return {
            "access_token": issued.access_token,
            "instance_url": instance_url,
            "id": f"{instance_url}/id/{ORG_PREFIX[:15]}/{user.id}",
            "token_type": "Bearer",
            "issued_at": millis,
            "signature": hashlib.sha256(f"{user.id}{millis}".encode()).hexdigest()[:44],
        }

    def _password_user(self, username: str, password: str) -> CrmUser:
        try:
            user = self.find_user(username)
        except RenkeiError:
            raise OAuthError("invalid_grant", "authentication failure") from None
        with self.engine.connect() as conn:
            stored = conn.execute(
                sa.select(sfapi_password.c.password_hash).where(sfapi_password.c.user_id == user.id)
            ).scalar()
        if stored is None or not _verify(stored, password):
            raise OAuthError("invalid_grant", "authentication failure")
        return user


def _verify(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False
