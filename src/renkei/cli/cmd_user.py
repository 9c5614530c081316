"""``renkei user …``: people who sign in to the web app (roles, passwords) and their API tokens
for the ``/api/v5`` REST API."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, print_table
from renkei.marketing.service import UserService
from renkei.web.auth import SCOPES, AuthService
from renkei.web.permissions import ROLE_NAMES

app = typer.Typer(help="Web app users, roles and REST API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the /api/v5 REST API.", no_args_is_help=True)
app.add_typer(token_app, name="token")

EmailArg = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email address.")]
PasswordOpt = Annotated[
    str | None,
    typer.Option("--password", help="The password (at least 10 characters); prompted for when not given."),
]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _service() -> AuthService:
    return AuthService(engine(), clock=clock())


def _user_id(email: str) -> int:
    return int(UserService(engine(), clock=clock()).find_by_email(email)["id"])


def _password(given: str | None) -> str:
    if given is not None:
        return given
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


@app.command("create")
@handle_errors
def create(
    email: EmailArg,
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLE_NAMES)}.")] = "marketing",
    password: PasswordOpt = None,
    first_name: Annotated[str | None, typer.Option("--first-name")] = None,
    last_name: Annotated[str | None, typer.Option("--last-name")] = None,
    language: Annotated[str, typer.Option("--language", help="ja or en.")] = "ja",
    as_json: JsonOpt = False,
) -> None:
    """Create a user who can sign in to the web app (the first one should be an admin)."""
    user = _service().create_user(
        email,
        role=role,
        password=_password(password),
        first_name=first_name,
        last_name=last_name,
        language=language,
    )
    emit(user, as_json, lambda u: _out(f"created user {u['id']} {u['email']} ({u['role']})"))


@app.command("list")
@handle_errors
def list_users(as_json: JsonOpt = False) -> None:
    """List users with their role and whether they can sign in."""
    emit(
        _service().users(),
        as_json,
        lambda rows: print_table(rows, ["id", "email", "role", "isActive", "language", "canSignIn"]),
    )


@app.command("password")
@handle_errors
def password(email: EmailArg, password: PasswordOpt = None, as_json: JsonOpt = False) -> None:
    """Set a user's password (ends their open sessions)."""
    user_id = _user_id(email)
    _service().set_password(user_id, _password(password))
    emit(
        {"id": user_id, "email": email, "passwordSet": True},
        as_json,
        lambda _: _out("password set"),
    )


@app.command("set")
@handle_errors
def set_user(
    email: EmailArg,
    role: Annotated[str | None, typer.Option("--role", help=f"One of: {', '.join(ROLE_NAMES)}.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Allow or stop sign-in.")] = None,
    language: Annotated[str | None, typer.Option("--language", help="ja or en.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role, language or active flag (recorded in the audit log)."""
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = role
    if active is not None:
        values["isActive"] = active
    if language is not None:
        values["language"] = language
    user = _service().set_user(_user_id(email), values, actor=None)
    emit(user, as_json, lambda u: _out(f"{u['email']}: role {u['role']}, active {u['isActive']}"))


@token_app.command("create")
@handle_errors
def token_create(
    email: EmailArg,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "api",
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help=f"Repeatable; some of {', '.join(SCOPES)}. Default: read."),
    ] = None,
    expires_days: Annotated[int | None, typer.Option("--expires-days", help="Default: never.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token for EMAIL; the token is printed once and kept only as a hash."""
    token = _service().create_token(_user_id(email), name, scope or ["read"], expires_days=expires_days)
    emit(token.to_dict(), as_json, lambda d: _out(d["token"]))


@token_app.command("list")
@handle_errors
def token_list(
    email: Annotated[str | None, typer.Argument(metavar="[EMAIL]", help="Only this user's tokens.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (prefix, scopes, last use, revocation) — never the tokens themselves."""
    rows = _service().tokens(_user_id(email) if email else None)
    emit(
        rows,
        as_json,
        lambda r: print_table(r, ["id", "userId", "name", "prefix", "scopes", "lastUsedAt", "revokedAt"]),
    )


@token_app.command("revoke")
@handle_errors
def token_revoke(token_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonOpt = False) -> None:
    """Revoke an API token at once."""
    _service().revoke_token(token_id)
    emit({"id": token_id, "revoked": True}, as_json, lambda _: _out(f"token {token_id} revoked"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="user")
