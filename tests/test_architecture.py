"""The layout shows the architecture: pure domain code imports no storage, web or HTTP library.

Pure modules are everything under ``renkei/core/`` plus the modules listed in ``PURE_MODULES``.
They may import only the standard library, pydantic/yaml-free helpers, and other pure modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import renkei

ROOT = Path(renkei.__file__).parent
FORBIDDEN = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "httpx",
    "requests",
    "uvicorn",
    "typer",
    "simple_salesforce",
    "psycopg",
    "jinja2",
    "procrastinate",
)
PURE_MODULES = {
    "renkei/ids.py",
    "renkei/clock.py",
    "renkei/errors.py",
    "renkei/crm/schema.py",
    "renkei/marketing/schema.py",
}


def _pure_files() -> list[Path]:
    files = [ROOT.parent / p for p in PURE_MODULES]
    files += sorted((ROOT / "core").rglob("*.py"))
    return [f for f in files if f.exists()]


def _is_pure_module(name: str) -> bool:
    rel = name.replace(".", "/")
    return rel.startswith("renkei/core") or f"{rel}.py" in PURE_MODULES or rel == "renkei"


def test_pure_code_imports_no_edge_libraries() -> None:
    problems = []
    for path in _pure_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN:
                    problems.append(f"{path.relative_to(ROOT.parent)} imports {name}")
                if top == "renkei" and not _is_pure_module(name):
                    problems.append(f"{path.relative_to(ROOT.parent)} imports impure {name}")
    assert problems == []
