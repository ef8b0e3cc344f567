"""argparse types shared by the ``freshrec`` subcommands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``--limit 0`` or a negative limit is an error, not
    "everything" or "all but the last N")."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def delimiter(text: str) -> str:
    """An argparse type: one character, or ``\\t`` / ``tab`` for a tab (as typed in a shell,
    where ``'\\t'`` is two characters)."""
    named = {"\\t": "\t", "tab": "\t", "\\s": " ", "space": " "}
    out = named.get(text.lower() if len(text) > 1 else text, text)
    if len(out) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: one character, or \\t / tab for a tab")
    return out
