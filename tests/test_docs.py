"""Docs are tested artifacts: every CLI command must be documented in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import typer.main

from renkei.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _commands(group: object, prefix: str) -> list[str]:
    out = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        full = f"{prefix} {name}"
        if hasattr(cmd, "commands"):
            out += _commands(cmd, full)
        else:
            out.append(full)
    return out


def test_every_cli_command_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    commands = _commands(typer.main.get_command(app), "renkei")
    assert commands, "no commands found"
    missing = [c for c in commands if f"`{c}" not in text]
    assert missing == []


def test_every_command_takes_json_or_is_exempt() -> None:
    """Every command takes --json, except the long-running server processes."""
    exempt = {"renkei serve"}
    root = typer.main.get_command(app)
    missing = []

    def walk(group: object, prefix: str) -> None:
        for name, cmd in group.commands.items():  # type: ignore[attr-defined]
            full = f"{prefix} {name}"
            if hasattr(cmd, "commands"):
                walk(cmd, full)
            elif full not in exempt and not any("--json" in p.opts for p in cmd.params):
                missing.append(full)

    walk(root, "renkei")
    assert missing == []
