"""``renkei serve``: the web app and APIs (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    ssl_certfile: Annotated[
        str | None, typer.Option("--ssl-certfile", help="Serve TLS with this certificate.")
    ] = None,
    ssl_keyfile: Annotated[
        str | None, typer.Option("--ssl-keyfile", help="Private key for --ssl-certfile.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    print_demo_login: Annotated[
        bool,
        typer.Option(
            "--print-demo-login",
            help="Make sure the demo admin (admin@renkei.example) can sign in, and print its password.",
        ),
    ] = False,
) -> None:
    """Serve the web app and the APIs (``/healthz`` answers when it is up)."""
    import uvicorn

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise typer.BadParameter("--ssl-certfile and --ssl-keyfile go together")
    if print_demo_login:
        from renkei.web.auth import print_demo_login as show

        show()
    uvicorn.run(
        "renkei.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        workers=workers,
        log_level="info",
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
