"""Fixtures shared by the connector's CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import cli


@pytest.fixture
def org(cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database (both backends) with `renkei connector init`'s connector.yaml in tmp_path."""
    config = tmp_path / "connector.yaml"
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(config))
    cli("connector", "init")
    return config
