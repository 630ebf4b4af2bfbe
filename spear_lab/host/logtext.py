"""Guest ``log`` text made safe for a terminal or a log file: one line, no control codes.

A guest's message is untrusted text.  :func:`printable` neutralises everything that could
move the cursor, recolour the terminal, end the line or forge another line: C0 and C1
control characters (ESC included), DEL, Unicode line/paragraph separators and bidi
overrides are shown as escapes (``\\n``, ``\\x1b``, ``\\u202e``); tabs stay.  One trailing
newline (what ``printf("...\\n")`` sends) is dropped first.
"""

from __future__ import annotations

import re

__all__ = ["LEVEL_NAMES", "format_line", "printable"]

#: SP_LOG_* level → short name (levels outside 0..4 show as their number).
LEVEL_NAMES = {0: "trace", 1: "debug", 2: "info", 3: "warn", 4: "error"}

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\x1b": "\\x1b"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as one safe line (see the module docstring)."""
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return _UNSAFE.sub(_escape, text)


def format_line(guest: str, level: int, text: str) -> str:
    """The line ``spear-lab run`` prints for one message: ``[guest] text``, with the level
    for anything but INFO (``[guest warn] text``).  The guest name is made safe too."""
    name = printable(guest)
    if level == 2:
        return f"[{name}] {printable(text)}"
    return f"[{name} {LEVEL_NAMES.get(level, str(level))}] {printable(text)}"
