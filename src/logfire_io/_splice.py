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

__all__ = ["Edit", "Group", "apply_edits", "nest", "statement_text", "tokenize"]


@dataclass(frozen=True)
class Edit:
    """Replace ``sql[start:end]`` with ``text`` (``start == end`` inserts)."""

    start: int
    end: int
    text: str


@dataclass
class Group:
    """A bracketed run of tokens, ``(`` ... ``)`` or ``[`` ... ``]``, with its contents nested likewise."""

    open: Token
    items: list[Token | Group]
    close: Token

    @property
    def start(self) -> int:
        """Position of the opening bracket."""
        return self.open.start

    @property
    def end(self) -> int:
        """Position of the closing bracket (inclusive, as for tokens)."""
        return self.close.end


_CLOSING = {TokenType.L_PAREN: TokenType.R_PAREN, TokenType.L_BRACKET: TokenType.R_BRACKET}


def nest(tokens: list[Token]) -> list[Token | Group]:
    """``tokens`` with every bracketed run made a :class:`Group`, so a scan can step over a call's arguments.

    Raises
    ------
    ValueError
        The brackets do not balance.
    """
    stack: list[tuple[Token | None, list[Token | Group]]] = [(None, [])]
    for token in tokens:
        if token.token_type in _CLOSING:
            stack.append((token, []))
        elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            opening, items = stack[-1]
            if opening is None or _CLOSING[opening.token_type] != token.token_type:
                msg = f"unbalanced {token.text!r} at character {token.start}"
                raise ValueError(msg)
            stack.pop()
            stack[-1][1].append(Group(opening, items, token))
        else:
            stack[-1][1].append(token)
    if len(stack) != 1:
        msg = "unclosed bracket"
        raise ValueError(msg)
    return stack[0][1]


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
