"""Identity keys used for matching people across the two sides (pure)."""

from __future__ import annotations

import unicodedata


def email_key(email: str | None) -> str | None:
    """The matching key of an email: NFKC-normalised (full-width ＠ and digits become ASCII),
    trimmed (including full-width spaces) and case-folded. ``None`` for blank input."""
    if email is None:
        return None
    key = unicodedata.normalize("NFKC", email).strip().casefold()
    return key or None
