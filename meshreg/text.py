"""Text shown to people (a terminal, a log, an error message a client prints): what is not
printable, e.g. an escape sequence in someone's metadata, a bidi override, a NUL, shown
as ``\\x1b``, ``\\u202e``, ``\\x00``, never passed on as it is."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (the text itself when none is:
    the common case costs one scan)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
