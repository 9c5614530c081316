"""Running the CLI in-process with --json, as the tests of several areas do."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from renkei.cli import app

runner = CliRunner()


def cli(*args: str, ok: bool = True) -> Any:
    """``renkei ARGS --json``: the parsed JSON, or the result itself when the output is not JSON.
    With ``ok`` the command must exit 0."""
    result = runner.invoke(app, [*args, "--json"])
    if ok:
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    text = result.stdout.strip()
    return json.loads(text) if text.startswith(("{", "[")) else result
