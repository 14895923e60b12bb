"""What text from a person or the model may hold: the rules every path shares.

Two rules. Text that is stored must be storable on every database: no NUL
(PostgreSQL refuses it) and no lone surrogate (not encodable as UTF-8), so a
frame or a setting holding one is refused, with the same answer on SQLite and
PostgreSQL. And text shown in a single line (a title, a preset's name) carries
no bidi controls: U+202E in "Payroll report \\u202efdp.exe" shows it as
"Payroll report exe.pdf" and reverses what follows it on the page.
"""

from __future__ import annotations

import re

# Embeddings, overrides and isolates, and the marks (LRM, RLM, ALM).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NOT_IN_A_LINE = re.compile(f"[{BIDI_CONTROLS}\x00-\x08\x0e-\x1f\x7f\ud800-\udfff]")

UNSTORABLE_MESSAGE = "Text can't contain NUL characters (\\u0000) or unpaired surrogates."


def is_storable(text: str) -> bool:
    """False for text holding NUL or a lone surrogate (JSON's "\\u0000", "\\ud800")."""
    return _UNSTORABLE.search(text) is None


def one_line(text: str) -> str:
    """Text as shown in a single line: no bidi or control characters, spaces collapsed."""
    return " ".join(_NOT_IN_A_LINE.sub("", text).split())
