"""``renkei token …``: bearer tokens (Salesforce session ids), connected apps and API passwords
for CRM users, used by Salesforce clients talking to ``renkei serve``."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, console, emit, engine, handle_errors
from renkei.errors import InputError
from renkei.sfapi.auth import TokenService

app = typer.Typer(
    help="Bearer tokens and OAuth clients for the Salesforce-compatible API.", no_args_is_help=True
)

UserArg = Annotated[str, typer.Argument(metavar="USER_EMAIL", help="A CRM user's Username or Email.")]


def _service() -> TokenService:
    return TokenService(engine(), clock=clock())


@app.command("create")
@handle_errors
def create(
    user: UserArg,
    ttl_hours: Annotated[
        float | None,
        typer.Option("--ttl-hours", help="Expire the token after this many hours (default: never)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a new bearer token for USER_EMAIL (also usable as a Salesforce session id)."""
    service = _service()
    ttl = dt.timedelta(hours=ttl_hours) if ttl_hours else None
    issued = service.issue(service.find_user(user), ttl=ttl)
    emit(issued.to_dict(), as_json, _print_token)


def _print_token(data: dict[str, Any]) -> None:
    sys.stdout.write(data["access_token"] + "\n")


@app.command("client")
@handle_errors
def client(
    user: UserArg,
    name: Annotated[str, typer.Option("--name", help="A name for the connected app.")] = "renkei client",
    as_json: JsonOpt = False,
) -> None:
    """Register a connected app that runs as USER_EMAIL; prints its client id and secret once."""
    service = _service()
    u = service.find_user(user)
    client_id, secret = service.create_client(u, name)
    data: dict[str, Any] = {"client_id": client_id, "client_secret": secret, "user_id": u.id, "name": name}
    emit(
        data,
        as_json,
        lambda d: console.print(f"client_id: {d['client_id']}\nclient_secret: {d['client_secret']}"),
    )


@app.command("password")
@handle_errors
def password(
    user: UserArg,
    password_file: Annotated[
        str | None, typer.Option("--password-file", help="Read the password from this file (first line).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set USER_EMAIL's API password for the username-password OAuth flow.

    The password comes from --password-file, else the RENKEI_API_PASSWORD environment variable."""
    if password_file:
        with open(password_file, encoding="utf-8") as fh:
            secret = fh.readline().rstrip("\r\n")
    else:
        secret = os.environ.get("RENKEI_API_PASSWORD", "")
    if not secret:
        raise InputError(
            "give the password with --password-file or RENKEI_API_PASSWORD", code="MISSING_ARGUMENT"
        )
    service = _service()
    u = service.find_user(user)
    service.set_password(u, secret)
    emit({"user_id": u.id, "username": u.username, "password_set": True}, as_json,
         lambda d: console.print(f"API password set for {d['username']}"))  # fmt: skip


@app.command("revoke")
@handle_errors
def revoke(
    token: Annotated[str, typer.Argument(help="The bearer token to revoke.")], as_json: JsonOpt = False
) -> None:
    """Revoke a bearer token (it then answers 401 INVALID_SESSION_ID)."""
    if not _service().revoke(token):
        raise InputError("no such token", code="NOT_FOUND")
    emit({"revoked": True}, as_json, lambda d: console.print("token revoked"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="token")
