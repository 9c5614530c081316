"""Bounce and complaint processing from DSN (RFC 3464) and ARF (RFC 5965) messages.

A DSN's per-recipient ``Action: failed`` with a 5.x.x status is a hard bounce; 4.x.x (or
``Action: delayed``) is soft. The original message is found by our ``X-Renkei-Message`` header
(or Message-ID) in the returned headers, else by the recipient address.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from renkei.errors import InputError


@dataclass(frozen=True, slots=True)
class Bounce:
    address: str
    hard: bool
    status: str
    reason: str
    message_id: int | None


@dataclass(frozen=True, slots=True)
class Complaint:
    address: str
    message_id: int | None


_RENKEI_ID = re.compile(r"X-Renkei-Message:\s*(\d+)", re.IGNORECASE)
_MSGID = re.compile(r"<renkei\.(\d+)\.", re.IGNORECASE)


def _original_id(msg: Message) -> int | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("text/rfc822-headers", "message/rfc822", "text/plain"):
            payload = part.get_payload(decode=True) if not part.is_multipart() else None
            if payload is None and ctype == "message/rfc822":
                inner = part.get_payload()
                payload = str(inner[0] if isinstance(inner, list) else inner).encode()
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            m = _RENKEI_ID.search(text) or _MSGID.search(text)
            if m:
                return int(m.group(1))
    return None


def _status_blocks(part: Message) -> list[dict[str, str]]:
    raw = part.get_payload()
    if isinstance(raw, list):
        text = "\n\n".join(str(p) for p in raw)
    else:
        decoded = part.get_payload(decode=True)
        text = decoded.decode("utf-8", "replace") if isinstance(decoded, bytes) else str(raw)
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line and not line.startswith((" ", "\t")):
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if fields:
            blocks.append(fields)
    return blocks


def parse(raw: bytes) -> list[Bounce | Complaint]:
    """Bounces/complaints in one message; an empty list when it is neither."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    ctype = msg.get_content_type()
    param = msg.get_param("report-type") if ctype == "multipart/report" else None
    report_type = param.lower() if isinstance(param, str) else ""
    original = _original_id(msg)
    out: list[Bounce | Complaint] = []
    if report_type == "feedback-report":
        for part in msg.walk():
            if part.get_content_type() == "message/feedback-report":
                for block in _status_blocks(part):
                    addr = block.get("original-rcpt-to", "")
                    out.append(Complaint(addr.strip("<>"), original))
        return out
    if report_type != "delivery-status":
        return out
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            recipient = block.get("final-recipient") or block.get("original-recipient")
            if not recipient:
                continue
            address = recipient.split(";", 1)[-1].strip().strip("<>")
            action = block.get("action", "").lower()
            status = block.get("status", "")
            if action not in ("failed", "delayed"):
                continue
            hard = action == "failed" and status.startswith("5")
            reason = block.get("diagnostic-code", status) or status
            out.append(Bounce(address, hard, status, reason, original))
    return out


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """Messages from a Maildir, an mbox file, a directory of .eml files or one .eml file."""
    if not path.exists():
        raise InputError(f"no such bounce mailbox: {path}", code="NOT_FOUND")
    if path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir():
        box = mailbox.Maildir(str(path), factory=None, create=False)
        for key in box.iterkeys():
            yield key, box.get_bytes(key)
    elif path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                yield f.name, f.read_bytes()
    elif path.read_bytes()[:5] == b"From ":
        for i, m in enumerate(mailbox.mbox(str(path), create=False)):
            yield str(i), m.as_bytes()
    else:
        yield path.name, path.read_bytes()
