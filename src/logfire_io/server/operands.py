"""Find the operands of SQL operators in a token stream, with PostgreSQL's precedence.

The JSON operators must be rewritten into calls, so their operands must be found, and sqlglot's parser cannot
be trusted for that (it reads ``f(x->'k')`` as a lambda). These functions scan the bracket-nested tokens of
:func:`logfire_io._splice.nest`, tightest binding first: ``.``, ``::`` and ``[]`` (postfix), unary ``+``/``-``,
``AT TIME ZONE``, ``^``, ``* / %``, ``+ -`` (:func:`high_end`); then every other operator (``->``, ``->>``,
``?``, ``||``, ``~``, ``&``, ``|``, ``#``, ``<<``, ``>>``, ``@>``...), all one level and left-associative
(:func:`run`); comparisons, ``IS``, ``IN``, ``LIKE``, ``BETWEEN``, ``NOT``, ``AND``, ``OR``, commas and clause
keywords end an operand. A term is a literal, a column, a call (with ``FILTER``/``OVER``/``WITHIN GROUP``), a
bracketed group, ``CASE ... END``, a typed literal (``INTERVAL '1 hour'``) or ``ARRAY[...]``, with its postfix
operators. Positions are indices into a list of items; ``hi`` bounds every scan.

These are PostgreSQL's rules and those of sqlparser's ``PostgreSqlDialect``. Which dialect Logfire parses with
is unverified, but its documented ``attributes->>'k' = 'v'`` parses as meant only there: sqlparser's generic
dialect puts ``->`` below ``=`` (apache/datafusion-sqlparser-rs#2436).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot.tokens import Token, TokenType

from logfire_io._splice import Group

__all__ = [
    "HIGH",
    "RESERVED",
    "Item",
    "Run",
    "at",
    "is_contains",
    "is_group",
    "is_name",
    "is_operator",
    "is_token",
    "primary_end",
    "run",
    "term_end",
    "type_end",
    "upper",
]

Item = Token | Group

_T = TokenType
LITERALS = {
    _T.STRING,
    _T.NUMBER,
    _T.NULL,
    _T.TRUE,
    _T.FALSE,
    _T.NATIONAL_STRING,
    _T.BYTE_STRING,
    _T.HEREDOC_STRING,
    _T.RAW_STRING,
    _T.HEX_STRING,
    _T.BIT_STRING,
    _T.STAR,
    _T.PARAMETER,
}
HIGH = {_T.PLUS, _T.DASH, _T.STAR, _T.SLASH, _T.MOD, _T.CARET, _T.DSTAR}
OTHER = {
    _T.ARROW,
    _T.DARROW,
    _T.DPIPE,
    _T.AMP,
    _T.PIPE,
    _T.HASH,
    _T.RLIKE,
    _T.IRLIKE,
    _T.AT_GT,
    _T.LT_AT,
    _T.HASH_ARROW,
    _T.DHASH_ARROW,
}
RESERVED = frozenset(
    re.findall(
        r"\w+",
        """
        SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET UNION INTERSECT EXCEPT ALL DISTINCT AS ON USING
        JOIN INNER LEFT RIGHT FULL OUTER CROSS NATURAL LATERAL AND OR NOT IS IN LIKE ILIKE BETWEEN SIMILAR
        CASE WHEN THEN ELSE END EXISTS OVER FILTER WINDOW WITH VALUES ASC DESC NULLS INTO QUALIFY ESCAPE
        COLLATE FETCH AT
        """,
    )
)
"""Keywords that end an operand: they can neither name a column nor start a term."""
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def is_token(item: Item | None, *types: TokenType) -> bool:
    """Whether ``item`` is a token of one of ``types``."""
    return isinstance(item, Token) and item.token_type in types


def upper(item: Item | None) -> str:
    """The upper-cased text of a keyword or unquoted word, else ''."""
    if not isinstance(item, Token) or item.token_type == _T.IDENTIFIER:
        return ""
    return " ".join(item.text.split()).upper()


def is_name(item: Item | None) -> bool:
    """Whether ``item`` can name a column or function (a quoted identifier, or a word that is not reserved)."""
    if not isinstance(item, Token):
        return False
    if item.token_type == _T.IDENTIFIER:
        return True
    return bool(_WORD.fullmatch(item.text)) and item.text.upper() not in RESERVED


def is_group(item: Item | None, opening: TokenType = _T.L_PAREN) -> bool:
    """Whether ``item`` is a group opened by ``opening`` (a parenthesis unless told)."""
    return isinstance(item, Group) and item.open.token_type == opening


def at(items: list[Item], index: int, hi: int) -> Item | None:
    """``items[index]``, or None past ``hi``."""
    return items[index] if index < hi else None


def is_operator(item: Item | None) -> bool:
    """Whether ``item`` is a binary operator tighter than a comparison (or ``::``, ``.``)."""
    return is_token(item, *HIGH, *OTHER, _T.DCOLON, _T.DOT) or is_contains(item)


def is_contains(item: Item | None) -> bool:
    """Whether ``item`` is the JSON ``?`` operator (which the tokenizer calls a placeholder)."""
    return is_token(item, _T.PLACEHOLDER) and isinstance(item, Token) and item.text == "?"


def _case_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after the ``END`` closing the ``CASE`` at ``index``."""
    depth = 0
    for k in range(index, hi):
        word = upper(items[k])
        depth += (word == "CASE") - (word == "END")
        if depth == 0:
            return k + 1
    return None


def primary_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after the primary (a term without its postfix operators) at ``index``, or None."""
    item, after = items[index], at(items, index + 1, hi)
    if isinstance(item, Group) or is_token(item, *LITERALS):
        return index + 1
    word = upper(item)
    if word == "CASE":
        return _case_end(items, index, hi)
    if word in ("INTERVAL", "TIMESTAMP", "TIMESTAMPTZ", "DATE", "TIME") and is_token(after, _T.STRING):
        return index + 2
    if word == "ARRAY" and is_group(after, _T.L_BRACKET):
        return index + 2
    if (is_name(item) or word in ("LEFT", "RIGHT")) and is_group(after):
        end = index + 2
        while True:
            word = upper(at(items, end, hi))
            window = word == "OVER" and is_name(at(items, end + 1, hi))
            if window or (word in ("FILTER", "OVER") and is_group(at(items, end + 1, hi))):
                end += 2
            elif word == "WITHIN" and upper(at(items, end + 1, hi)) == "GROUP" and is_group(at(items, end + 2, hi)):
                end += 3
            else:
                return end
    if is_name(item):
        end = index + 1
        while is_token(at(items, end, hi), _T.DOT) and (
            is_name(at(items, end + 1, hi)) or is_token(at(items, end + 1, hi), _T.STAR)
        ):
            end += 2
        return end
    return None


def type_end(items: list[Item], index: int, hi: int) -> int:
    """The index after the type name starting at ``index`` (``timestamp with time zone``, ``varchar(3)[]``)."""
    end = index + 1 if index < hi else index
    if upper(at(items, end, hi)) in ("WITH", "WITHOUT") and upper(at(items, end + 1, hi)) == "TIME":
        end += 3
    if is_group(at(items, end, hi)):
        end += 1
    while is_group(at(items, end, hi), _T.L_BRACKET):
        end += 1
    return end


def term_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after the term (a primary with its postfix operators) starting at ``index``, or None."""
    if index >= hi:
        return None
    if is_token(items[index], _T.PLUS, _T.DASH):
        return term_end(items, index + 1, hi)
    end = primary_end(items, index, hi)
    while end is not None and end < hi:
        if is_token(items[end], _T.DCOLON) and end + 1 < hi:
            end = type_end(items, end + 1, hi)
        elif is_group(items[end], _T.L_BRACKET):
            end += 1
        elif is_token(items[end], _T.DOT) and is_name(at(items, end + 1, hi)):
            end += 2
        else:
            break
    return end


def high_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after an operand of an "other" operator: terms joined by tighter operators."""
    end = term_end(items, index, hi)
    while end is not None and end < hi:
        width = 1 if is_token(items[end], *HIGH) else 0
        if upper(items[end]) == "AT" and upper(at(items, end + 1, hi)) == "TIME":
            width = 3
        after = term_end(items, end + width, hi) if width else None
        if after is None:
            break
        end = after
    return end


def other_width(items: list[Item], index: int, hi: int) -> int:
    """How many tokens the "other" operator at ``index`` spans (0 if there is none)."""
    item, after = items[index], at(items, index + 1, hi)
    if is_token(item, *OTHER) or is_contains(item):
        return 1
    adjacent = isinstance(item, Token) and isinstance(after, Token) and after.start == item.end + 1
    if adjacent and (
        (is_token(item, _T.NOT) and is_token(after, _T.RLIKE, _T.IRLIKE))
        or (is_token(item, _T.LT) and is_token(after, _T.LT))
        or (is_token(item, _T.GT) and is_token(after, _T.GT))
    ):
        return 2
    return 0


@dataclass
class Run:
    """An expression at the level of the "other" operators: operands and the operators between them."""

    operands: list[tuple[int, int]]
    operators: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end(self) -> int:
        """The index after the run."""
        return self.operands[-1][1]


def run(items: list[Item], index: int, hi: int) -> Run | None:
    """The run of "other" operators and their operands starting at ``index``, or None if no term starts there."""
    end = high_end(items, index, hi)
    if end is None:
        return None
    run = Run([(index, end)])
    while end < hi and (width := other_width(items, end, hi)):
        after = high_end(items, end + width, hi)
        if after is None:
            break
        run.operators.append((end, end + width))
        run.operands.append((end + width, after))
        end = after
    return run
