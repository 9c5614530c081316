"""The ``renkei`` command line: a thin layer over the library's services.

Each ``renkei/cli/cmd_<name>.py`` module exposes ``register(app)`` and is discovered here, so a
feature adds its commands without editing this file. Exit codes: 0 ok, 1 rejected input,
2 usage (Click's own), 3 retriable/unavailable, 4 internal error.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="renkei",
    help="renkei (連携): B2B marketing automation with a first-class CRM connector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _discover() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            module = importlib.import_module(f"{__name__}.{mod.name}")
            module.register(app)


_discover()


def main() -> None:
    app()
