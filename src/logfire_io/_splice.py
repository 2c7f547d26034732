"""Edit SQL text at token positions, so that everything not edited reaches the engine byte for byte.

sqlglot's generator re-prints a whole query in its own spellings, which changes meaning on DataFusion
(``to_char`` formats, ``^``, ``round``, function names). So the client and the local server analyse a query
with sqlglot but never print it: they compute :class:`Edit` s at the positions sqlglot's tokenizer reports and
apply them to the user's original string.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

__all__ = ["Edit", "apply_edits", "statement_text", "tokenize"]


@dataclass(frozen=True)
class Edit:
    """Replace ``sql[start:end]`` with ``text`` (``start == end`` inserts)."""

    start: int
    end: int
    text: str


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` as PostgreSQL spells them (Logfire's SQL); positions are ``start``/``end`` inclusive.

    Raises
    ------
    sqlglot.errors.TokenError
        The text cannot be tokenized (an unterminated string, say).
    """
    from sqlglot.dialects.postgres import Postgres

    tokenizer: Tokenizer = Postgres.tokenizer_class()
    return tokenizer.tokenize(sql)


def apply_edits(sql: str, edits: list[Edit]) -> str:
    """``sql`` with ``edits`` applied; insertions at one position keep their order. Edits must not overlap."""
    pieces: list[str] = []
    position = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        if edit.start < position or edit.end < edit.start:
            msg = f"overlapping SQL edits at character {edit.start}"
            raise ValueError(msg)
        pieces.append(sql[position : edit.start])
        pieces.append(edit.text)
        position = edit.end
    pieces.append(sql[position:])
    return "".join(pieces)


def statement_text(sql: str, tokens: list[Token] | None = None) -> str:
    """``sql`` without a trailing ``;`` or comment, so it can stand inside parentheses; empty if no tokens."""
    if tokens is None:
        try:
            tokens = tokenize(sql)
        except TokenError:  # broken SQL (an unterminated string): the engine will say what is wrong with it
            return sql.strip().removesuffix(";")
    meaningful = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
    if not meaningful:
        return ""
    last = max(meaningful, key=lambda t: t.end)
    return sql[: last.end + 1]
