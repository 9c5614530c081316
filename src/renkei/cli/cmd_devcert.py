"""``renkei dev-cert DIR``: a loopback test CA and server certificate, so Salesforce clients (which
always speak https) can reach ``renkei serve --ssl-certfile … --ssl-keyfile …`` on 127.0.0.1 while
verifying the certificate against ``ca.pem``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from renkei.cli._common import JsonOpt, console, emit, handle_errors

HOSTS = ("127.0.0.1", "localhost", "::1")


def write_dev_cert(directory: Path) -> dict[str, str]:
    """Write ``ca.pem``, ``server.pem`` (leaf + chain) and ``server-key.pem`` into ``directory``."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="renkei development CA")
    leaf = ca.issue_cert(*HOSTS)
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server-key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    paths["key"].chmod(0o600)
    with paths["cert"].open("wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    return {k: str(v) for k, v in paths.items()}


@handle_errors
def dev_cert(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the PEM files.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a test CA and a certificate for 127.0.0.1, localhost and ::1 (development only)."""
    paths = write_dev_cert(directory)
    data = {**paths, "hosts": list(HOSTS)}
    emit(data, as_json, lambda d: console.print(
        f"CA: {d['ca']}\ncertificate: {d['cert']}\nkey: {d['key']}\n"
        f"serve with: renkei serve --ssl-certfile {d['cert']} --ssl-keyfile {d['key']}"
    ))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("dev-cert")(dev_cert)
