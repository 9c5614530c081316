"""Roles and per-section permissions of the web app (pure: no web framework, no store).

A permission is a level per section: ``none`` (the section is hidden and refused), ``view`` or
``edit``. The four built-in roles below are inserted by the ``web_0001`` migration into
``web_role``; an admin may change their permissions in Settings › Roles (audited).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Level(enum.IntEnum):
    NONE = 0
    VIEW = 1
    EDIT = 2

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown permission level {text!r} (none, view, edit)") from None

    @property
    def label(self) -> str:
        return self.name.lower()


#: The sections of the app, in menu order (AE's eight, the calendar, CRM, the connector console).
SECTIONS: tuple[str, ...] = (
    "dashboard",
    "prospects",
    "campaigns",
    "automation",
    "email",
    "content",
    "reports",
    "calendar",
    "crm",
    "connector",
    "settings",
)

ROLE_NAMES: tuple[str, ...] = ("admin", "marketing", "sales", "read-only")


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    label: str
    permissions: Mapping[str, str] = field(default_factory=dict)

    def level(self, section: str) -> Level:
        return Level.parse(self.permissions.get(section, "none"))

    def can(self, section: str, level: Level = Level.VIEW) -> bool:
        return self.level(section) >= level


def _all(level: str, **overrides: str) -> dict[str, str]:
    return {s: overrides.get(s, level) for s in SECTIONS}


DEFAULT_ROLES: tuple[Role, ...] = (
    Role("admin", "Administrator", _all("edit")),
    Role("marketing", "Marketing", _all("edit", settings="view", connector="view", crm="view")),
    Role(
        "sales",
        "Sales",
        _all(
            "view",
            crm="edit",
            automation="none",
            email="none",
            content="none",
            connector="none",
            settings="none",
        ),
    ),
    Role("read-only", "Read only", _all("view", settings="none")),
)


def validate_permissions(permissions: Mapping[str, str]) -> dict[str, str]:
    """A complete, checked permission map (unknown sections or levels raise ``ValueError``)."""
    unknown = sorted(set(permissions) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections: {', '.join(unknown)}")
    return {s: Level.parse(permissions.get(s, "none")).label for s in SECTIONS}
