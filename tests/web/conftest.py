"""Fixtures of the web tests."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import renkei.web.auth


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with the smallest cost: the tests check behaviour, not the work factor, and the
    default parameters (64 MiB, 3 passes) take about a second per hash on a busy CI machine."""
    monkeypatch.setattr(
        renkei.web.auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
