"""Rewrite the few Logfire SQL constructs DataFusion lacks, editing the user's text and nothing else.

Logfire's engine is DataFusion plus ``datafusion-functions-json``, whose operators (``->``, ``->>``, ``?``) need a
planner hook that Python cannot register, and whose functions take key paths of any length, which a Python UDF
cannot. Re-printing a parsed query would change what everything else means (sqlglot's generator respells
``to_char`` formats, ``round``, ``^``...), so this module works on the tokens sqlglot's tokenizer reports and
splices replacement text in at their positions (:mod:`logfire_io._splice`); every other byte reaches DataFusion
as written. It rewrites:

- ``a -> k`` / ``a ->> k`` / ``a ? k`` to ``json_get`` / ``json_as_text`` / ``json_contains(a, path)``, where
  ``path`` is the key path as JSON array text (see :mod:`logfire_io.server.udfs`). A key is a string, an
  integer (indexing arrays) or any expression, whose value becomes a path step at run time. Nested lookups are
  merged into one path as Logfire's planner and optimizer merge them (``a->'b'->>'c'`` is
  ``json_as_text(a, '["b","c"]')``; see :func:`_extend` for when ``->>`` is merged and when its text is parsed);
- ``json_get*``, ``json_as_text``, ``json_contains``, ``json_length``, ``json_keys``/``json_object_keys`` calls
  with any number of keys, to the same path form;
- a cast of ``->`` (``(a->'k')::numeric``, ``CAST(a->'k' AS int)``, also of ``json_get(...)``) to the typed getter,
  as ``datafusion-functions-json``'s rewrite does: ``numeric``/``decimal``/``float``/``double``/``real`` to
  ``json_get_float``, ``int``/``integer``/``bigint`` to ``json_get_int`` (an int64, whatever integer type is
  written), ``text``/``varchar``/``string``/``char`` to ``json_get_str``, ``bool``/``boolean`` to
  ``json_get_bool``; other types stay a cast of the value's text;
- ``level <op> 'name'``, ``'name' <op> level``, ``level [NOT] IN ('warn', ...)``, ``level [NOT] BETWEEN 'info'
  AND 'error'`` to level numbers,
  ``level_num('warn')`` to its number, ``level_name(x)`` to ``level_name(CAST(x AS BIGINT))`` (a UDF has one
  exact signature), and ``time_bucket(w, t)`` to ``date_bin(w, t, <1970-01-01 UTC>)`` (a string ``w`` becomes an
  interval);
- an unaliased projection holding a JSON operator or function is given a name. A chain of JSON operators alone
  is named as Logfire's planner names it: ``<left> <op> <right>``, where a column is its bare name (lower-cased
  unless quoted, no table qualifier), a string key ``'k'`` and an integer its digits (``attributes ->> 'http.route'``,
  ``attributes -> 'user' ->> 'plan'``). Anything else (a call, a cast, a mix of operators) is named by its own
  text with one space around each JSON operator and any other run of whitespace or comments as one space
  (a choice: Logfire's name for those is unverified).

Operands are found with PostgreSQL's precedence, tightest first: ``.``, ``::`` and ``[]`` (postfix), unary
``+``/``-``, ``AT TIME ZONE``, ``^``, ``* / %``, ``+ -``; then every other operator (``->``, ``->>``, ``?``,
``||``, ``~``, ``&``, ``|``, ``#``, ``<<``, ``>>``, ``@>``...), all one level and left-associative, so
``'x' || a->>'k'`` is ``('x' || a)->>'k'``; comparisons, ``IS``, ``IN``, ``LIKE``, ``BETWEEN``, ``NOT``,
``AND``, ``OR``, commas and clause keywords end an operand. A query the tokenizer rejects, or whose brackets do
not balance, is passed on unchanged, so that DataFusion, not this module, reports what is wrong with it.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from logfire_io._splice import Edit, Group, apply_edits, nest, tokenize
from logfire_io.schema import LEVEL_NUMBERS

__all__ = ["rewrite"]

Item = Token | Group
Key = tuple[bool, str | int]
"""A path step: (True, literal key or index) or (False, SQL text of an expression giving it)."""

_T = TokenType
_LITERALS = {
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
_HIGH = {_T.PLUS, _T.DASH, _T.STAR, _T.SLASH, _T.MOD, _T.CARET, _T.DSTAR}
_OTHER = {
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
_COMPARISONS = {_T.EQ, _T.NEQ, _T.GT, _T.GTE, _T.LT, _T.LTE}
_JSON_OPERATORS = {_T.ARROW: "json_get", _T.DARROW: "json_as_text"}
_JSON_FUNCTIONS = {
    "json_get",
    "json_as_text",
    "json_get_str",
    "json_get_int",
    "json_get_float",
    "json_get_bool",
    "json_get_json",
    "json_contains",
    "json_length",
    "json_keys",
    "json_object_keys",
}
_RESERVED = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "ORDER",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "UNION",
        "INTERSECT",
        "EXCEPT",
        "ALL",
        "DISTINCT",
        "AS",
        "ON",
        "USING",
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "FULL",
        "OUTER",
        "CROSS",
        "NATURAL",
        "LATERAL",
        "AND",
        "OR",
        "NOT",
        "IS",
        "IN",
        "LIKE",
        "ILIKE",
        "BETWEEN",
        "SIMILAR",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "EXISTS",
        "OVER",
        "FILTER",
        "WINDOW",
        "WITH",
        "VALUES",
        "ASC",
        "DESC",
        "NULLS",
        "INTO",
        "QUALIFY",
        "ESCAPE",
        "COLLATE",
        "FETCH",
        "AT",
    ]
)
_CLAUSES = {"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "INTERSECT", "EXCEPT", "WINDOW"}
_CLAUSES |= {"QUALIFY", "INTO", "FETCH", "GROUP BY", "ORDER BY"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_INTEGER = re.compile(r"\d+")
_GETTERS = {
    **dict.fromkeys(["numeric", "decimal", "float", "float4", "float8", "double", "real"], "json_get_float"),
    **dict.fromkeys(["int", "integer", "bigint", "int4", "int8"], "json_get_int"),
    **dict.fromkeys(["text", "varchar", "string", "char", "character"], "json_get_str"),
    **dict.fromkeys(["bool", "boolean"], "json_get_bool"),
}
_INT_TYPES = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
_EPOCH = "CAST('1970-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE)"


def _token(item: Item | None, *types: TokenType) -> bool:
    return isinstance(item, Token) and item.token_type in types


def _upper(item: Item | None) -> str:
    """The upper-cased text of a keyword or unquoted word, else ''."""
    if not isinstance(item, Token) or item.token_type == _T.IDENTIFIER:
        return ""
    return " ".join(item.text.split()).upper()


def _is_name(item: Item | None) -> bool:
    """Whether ``item`` can name a column or function (a quoted identifier, or a word that is not reserved)."""
    if not isinstance(item, Token):
        return False
    if item.token_type == _T.IDENTIFIER:
        return True
    return bool(_WORD.fullmatch(item.text)) and item.text.upper() not in _RESERVED


def _group(item: Item | None, opening: TokenType = _T.L_PAREN) -> bool:
    return isinstance(item, Group) and item.open.token_type == opening


def _at(items: list[Item], index: int, hi: int) -> Item | None:
    return items[index] if index < hi else None


def _is_operator(item: Item | None) -> bool:
    return _token(item, *_HIGH, *_OTHER, _T.DCOLON, _T.DOT) or _is_contains(item)


def _is_contains(item: Item | None) -> bool:
    return _token(item, _T.PLACEHOLDER) and isinstance(item, Token) and item.text == "?"


def _case_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after the ``END`` closing the ``CASE`` at ``index``."""
    depth = 0
    for k in range(index, hi):
        word = _upper(items[k])
        depth += (word == "CASE") - (word == "END")
        if depth == 0:
            return k + 1
    return None


def _primary_end(items: list[Item], index: int, hi: int) -> int | None:
    item, after = items[index], _at(items, index + 1, hi)
    if isinstance(item, Group) or _token(item, *_LITERALS):
        return index + 1
    word = _upper(item)
    if word == "CASE":
        return _case_end(items, index, hi)
    if word in ("INTERVAL", "TIMESTAMP", "TIMESTAMPTZ", "DATE", "TIME") and _token(after, _T.STRING):
        return index + 2
    if word == "ARRAY" and _group(after, _T.L_BRACKET):
        return index + 2
    if (_is_name(item) or word in ("LEFT", "RIGHT")) and _group(after):
        end = index + 2
        while True:
            word = _upper(_at(items, end, hi))
            window = word == "OVER" and _is_name(_at(items, end + 1, hi))
            if window or (word in ("FILTER", "OVER") and _group(_at(items, end + 1, hi))):
                end += 2
            elif word == "WITHIN" and _upper(_at(items, end + 1, hi)) == "GROUP" and _group(_at(items, end + 2, hi)):
                end += 3
            else:
                return end
    if _is_name(item):
        end = index + 1
        while _token(_at(items, end, hi), _T.DOT) and (
            _is_name(_at(items, end + 1, hi)) or _token(_at(items, end + 1, hi), _T.STAR)
        ):
            end += 2
        return end
    return None


def _type_end(items: list[Item], index: int, hi: int) -> int:
    """The index after the type name starting at ``index`` (``timestamp with time zone``, ``varchar(3)[]``)."""
    end = index + 1 if index < hi else index
    if _upper(_at(items, end, hi)) in ("WITH", "WITHOUT") and _upper(_at(items, end + 1, hi)) == "TIME":
        end += 3
    if _group(_at(items, end, hi)):
        end += 1
    while _group(_at(items, end, hi), _T.L_BRACKET):
        end += 1
    return end


def _term_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after the term (a primary with its postfix operators) starting at ``index``, or None."""
    if index >= hi:
        return None
    if _token(items[index], _T.PLUS, _T.DASH):
        return _term_end(items, index + 1, hi)
    end = _primary_end(items, index, hi)
    while end is not None and end < hi:
        if _token(items[end], _T.DCOLON):
            end = _type_end(items, end + 1, hi)
        elif _group(items[end], _T.L_BRACKET):
            end += 1
        elif _token(items[end], _T.DOT) and _is_name(_at(items, end + 1, hi)):
            end += 2
        else:
            break
    return end


def _high_end(items: list[Item], index: int, hi: int) -> int | None:
    """The index after an operand of an "other" operator: terms joined by tighter operators."""
    end = _term_end(items, index, hi)
    while end is not None and end < hi:
        width = 1 if _token(items[end], *_HIGH) else 0
        if _upper(items[end]) == "AT" and _upper(_at(items, end + 1, hi)) == "TIME":
            width = 3
        after = _term_end(items, end + width, hi) if width else None
        if after is None:
            break
        end = after
    return end


def _other_width(items: list[Item], index: int, hi: int) -> int:
    """How many tokens the "other" operator at ``index`` spans (0 if there is none)."""
    item, after = items[index], _at(items, index + 1, hi)
    if _token(item, *_OTHER) or _is_contains(item):
        return 1
    adjacent = isinstance(item, Token) and isinstance(after, Token) and after.start == item.end + 1
    if adjacent and (
        (_token(item, _T.NOT) and _token(after, _T.RLIKE, _T.IRLIKE))
        or (_token(item, _T.LT) and _token(after, _T.LT))
        or (_token(item, _T.GT) and _token(after, _T.GT))
    ):
        return 2
    return 0


@dataclass
class _Run:
    """An expression at the level of the "other" operators: operands and the operators between them."""

    operands: list[tuple[int, int]]
    operators: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.operands[-1][1]


def _run(items: list[Item], index: int, hi: int) -> _Run | None:
    end = _high_end(items, index, hi)
    if end is None:
        return None
    run = _Run([(index, end)])
    while end < hi and (width := _other_width(items, end, hi)):
        after = _high_end(items, end + width, hi)
        if after is None:
            break
        run.operators.append((end, end + width))
        run.operands.append((end + width, after))
        end = after
    return run


def _json_operator(items: list[Item], span: tuple[int, int]) -> str | None:
    item = items[span[0]]
    if span[1] - span[0] != 1 or not isinstance(item, Token):
        return None
    return "json_contains" if _is_contains(item) else _JSON_OPERATORS.get(item.token_type)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _path_sql(keys: list[Key]) -> str:
    """The path argument of the rewritten JSON functions: the keys as the text of a JSON array."""
    pieces: list[str] = []
    literal = "["
    for i, (is_literal, key) in enumerate(keys):
        literal += "," if i else ""
        if is_literal:
            literal += json.dumps(key, ensure_ascii=False)
            continue
        types = ", ".join(_sql_string(t) for t in _INT_TYPES)
        text = f"CAST(({key}) AS VARCHAR)"
        quoted = f"""'"' || replace(replace({text}, '\\', '\\\\'), '"', '\\"') || '"'"""
        pieces += [_sql_string(literal), f"CASE WHEN arrow_typeof(({key})) IN ({types}) THEN {text} ELSE {quoted} END"]
        literal = ""
    pieces.append(_sql_string(literal + "]"))
    return pieces[0] if len(pieces) == 1 else "(" + " || ".join(p for p in pieces if p != "''") + ")"


@dataclass
class _Lookup:
    """A JSON function applied to a base expression along a key path, not yet printed."""

    function: str
    base: str
    keys: list[Key]

    def sql(self, function: str | None = None) -> str:
        return f"{function or self.function}({self.base}, {_path_sql(self.keys)})"


_UNNESTED = {
    "json_get",
    "json_as_text",
    "json_get_bool",
    "json_get_float",
    "json_get_int",
    "json_get_json",
    "json_get_str",
}


def _extend(value: _Lookup | str, function: str, keys: list[Key]) -> _Lookup:
    """``function`` applied to ``value`` along ``keys``: one path lookup wherever Logfire's plan is one.

    Logfire's optimizer merges ``json_get``/``json_as_text`` into an outer ``json_get*``/``json_as_text`` when
    every key is a literal. ``json_get`` returns a JSON union, and a lookup into a union only ever reads its
    object or array member, so merging a ``->`` into any outer lookup (``?``, ``json_length``, column keys too)
    gives the same answer; ``->>`` returns text, which an unmerged outer lookup parses again.
    """
    if not isinstance(value, _Lookup):
        return _Lookup(function, value, keys)
    literal = all(is_literal for is_literal, _ in [*value.keys, *keys])
    if value.function == "json_get" or (value.function == "json_as_text" and function in _UNNESTED and literal):
        return _Lookup(function, value.base, [*value.keys, *keys])
    return _Lookup(function, value.sql(), keys)


def _arguments(group: Group) -> list[tuple[int, int]]:
    """The spans of a call's comma-separated arguments (none for ``f()``)."""
    spans, start = [], 0
    for k, item in enumerate(group.items):
        if _token(item, _T.COMMA):
            spans.append((start, k))
            start = k + 1
    if group.items:
        spans.append((start, len(group.items)))
    return spans


def _flat(items: list[Item]) -> list[Token]:
    tokens: list[Token] = []
    for item in items:
        if isinstance(item, Group):
            tokens += [item.open, *_flat(item.items), item.close]
        else:
            tokens.append(item)
    return tokens


@dataclass
class _Splicer:
    sql: str

    def text(self, items: list[Item], lo: int, hi: int) -> str:
        return self.sql[items[lo].start : items[hi - 1].end + 1]

    def render(self, items: list[Item], lo: int, hi: int) -> str:
        """The text of ``items[lo:hi]`` with every rewrite inside it applied."""
        base = items[lo].start
        edits = [Edit(e.start - base, e.end - base, e.text) for e in self.edits(items, lo, hi)]
        return apply_edits(self.text(items, lo, hi), edits)

    def edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """The edits for a sequence of items: one per outermost rewritten construct."""
        edits: list[Edit] = []
        index = lo
        while index < hi:
            run = _run(items, index, hi)
            if run is None:
                item = items[index]
                if isinstance(item, Group):
                    edits += self.edits(item.items, 0, len(item.items))
                index += 1
                continue
            if any(_json_operator(items, span) for span in run.operators):
                text = self.fold(items, run)
                edits.append(Edit(items[index].start, items[run.end - 1].end + 1, text))
            else:
                for start, end in run.operands:
                    edits += self.operand_edits(items, start, end)
            index = run.end
        return edits + self.level_edits(items, lo, hi) + self.alias_edits(items, lo, hi)

    def operand_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Edits for an operand of the "other" operators: each of its terms in turn."""
        edits: list[Edit] = []
        index = lo
        while index < hi:
            end = _term_end(items, index, hi) or index + 1
            start = index
            while _token(items[start], _T.PLUS, _T.DASH) and start + 1 < end:
                start += 1
            edits += self.term_edits(items, start, end)
            after = _at(items, end, hi)
            index = end + (1 if _token(after, *_HIGH) else 3 if _upper(after) == "AT" else 0)
        return edits

    def lookup(self, items: list[Item], lo: int, hi: int) -> _Lookup | None:
        """The JSON lookup that ``items[lo:hi]`` is, when it is one (an operator chain or a JSON function call)."""
        item = items[lo]
        if hi - lo == 1 and _group(item):
            assert isinstance(item, Group)
            return self.lookup(item.items, 0, len(item.items)) if item.items else None
        if hi - lo == 2 and _upper(item).lower() in _JSON_FUNCTIONS and _group(items[lo + 1]):
            return self.call(items, lo)
        run = _run(items, lo, hi)
        if run is None or run.end != hi or not run.operators:
            return None
        folded = self.fold_lookup(items, run)
        return folded if isinstance(folded, _Lookup) else None

    def key(self, items: list[Item], lo: int, hi: int) -> Key:
        item = items[lo]
        if hi - lo == 1 and _token(item, _T.STRING) and isinstance(item, Token):
            return True, item.text
        if hi - lo == 1 and _token(item, _T.NUMBER) and isinstance(item, Token) and _INTEGER.fullmatch(item.text):
            return True, int(item.text)
        number = items[lo + 1] if hi - lo == 2 else None
        if _token(item, _T.DASH) and isinstance(number, Token) and _INTEGER.fullmatch(number.text):
            return True, -int(number.text)
        return False, self.render(items, lo, hi)

    def fold_lookup(self, items: list[Item], run: _Run) -> _Lookup | str:
        """Fold a run left to right; a ``->`` chain extends one path (flattened as Logfire's planner does)."""
        value: _Lookup | str = self.render(items, *run.operands[0])
        for operator, (start, end) in zip(run.operators, run.operands[1:], strict=True):
            function = _json_operator(items, operator)
            if function is None:
                current = value.sql() if isinstance(value, _Lookup) else value
                gap = self.sql[items[operator[0] - 1].end + 1 : items[start].start]
                value = current + gap + self.render(items, start, end)
            else:
                value = _extend(value, function, [self.key(items, start, end)])
        return value

    def fold(self, items: list[Item], run: _Run) -> str:
        value = self.fold_lookup(items, run)
        return value.sql() if isinstance(value, _Lookup) else value

    def call(self, items: list[Item], index: int) -> _Lookup | None:
        """A JSON function call ``name(json, key...)`` as a lookup."""
        group = items[index + 1]
        assert isinstance(group, Group)
        spans = _arguments(group)
        if not spans:
            return None
        keys = [self.key(group.items, start, end) for start, end in spans[1:]]
        base = self.lookup(group.items, *spans[0]) or self.render(group.items, *spans[0])
        return _extend(base, items[index].text.lower(), keys)

    def typed(self, lookup: _Lookup | None, type_text: str) -> str | None:
        """``lookup`` cast to ``type_text`` as the typed getter Logfire plans it to, if there is one."""
        getter = _GETTERS.get(re.split(r"[\s(\[]", type_text.strip(), maxsplit=1)[0].lower())
        if lookup is None or lookup.function != "json_get" or getter is None:
            return None
        return lookup.sql(getter)

    def term_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Edits for one term: the special calls and casts, else whatever is nested in it."""
        core = _primary_end(items, lo, hi) or lo + 1
        if core < hi and _token(items[core], _T.DCOLON):
            type_end = _type_end(items, core + 1, hi)
            text = self.typed(self.lookup(items, lo, core), self.text(items, core + 1, type_end))
            if text is not None:
                return [Edit(items[lo].start, items[type_end - 1].end + 1, text), *self.nested(items, type_end, hi)]
        name = _upper(items[lo]).lower()
        group = _at(items, lo + 1, hi)
        if isinstance(group, Group) and core >= lo + 2 and (text := self.special(items, lo, name, group)) is not None:
            return [Edit(items[lo].start, group.end + 1, text), *self.nested(items, lo + 2, hi)]
        if name == "case" and core > lo + 1:
            return self.edits(items, lo + 1, core - 1) + self.nested(items, core, hi)
        return self.nested(items, lo, hi)

    def special(self, items: list[Item], index: int, name: str, group: Group) -> str | None:
        """The replacement of a call that is rewritten as a whole, or None."""
        spans = _arguments(group)
        if name in _JSON_FUNCTIONS:
            lookup = self.call(items, index)
            return None if lookup is None or (name == "json_contains" and not lookup.keys) else lookup.sql()
        if name == "cast":
            alias = next((k for k, item in enumerate(group.items) if _upper(item) == "AS"), None)
            if alias is not None and alias + 1 < len(group.items):
                type_text = self.text(group.items, alias + 1, len(group.items))
                return self.typed(self.lookup(group.items, 0, alias), type_text)
        if name == "level_num" and len(spans) == 1:
            item = group.items[0]
            if len(group.items) == 1 and _token(item, _T.STRING) and isinstance(item, Token):
                number = LEVEL_NUMBERS.get(item.text.lower())
                return None if number is None else str(number)
        if name == "level_name" and len(spans) == 1:
            return f"{items[index].text}(CAST({self.render(group.items, *spans[0])} AS BIGINT))"
        if name == "time_bucket" and len(spans) == 2:
            width, value = (self.render(group.items, *span) for span in spans)
            first = group.items[spans[0][0]]
            if spans[0][1] - spans[0][0] == 1 and _token(first, _T.STRING):
                width = f"INTERVAL {width}"
            return f"date_bin({width}, {value}, {_EPOCH})"
        return None

    def nested(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """The edits inside every group among ``items[lo:hi]``."""
        edits: list[Edit] = []
        for item in items[lo:hi]:
            if isinstance(item, Group):
                edits += self.edits(item.items, 0, len(item.items))
        return edits

    def level_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Level names compared with ``level`` become level numbers."""
        edits: list[Edit] = []
        for k in range(lo, hi):
            item = items[k]
            if _token(item, *_COMPARISONS):
                for ref, literal in ((self.level_before(items, lo, k), k + 1), (self.level_after(items, k, hi), k - 1)):
                    if ref and (edit := self.level_literal(items, literal, lo, hi)) is not None:
                        edits.append(edit)
            elif _upper(item) == "BETWEEN":
                left = k - 1 if k > lo and _upper(items[k - 1]) == "NOT" else k
                low, high = self.level_literal(items, k + 1, lo, hi), self.level_literal(items, k + 3, lo, hi)
                if self.level_before(items, lo, left) and _upper(_at(items, k + 2, hi)) == "AND" and low and high:
                    edits += [low, high]
            elif _upper(item) == "IN" and _group(_at(items, k + 1, hi)):
                left = k - 1 if k > lo and _upper(items[k - 1]) == "NOT" else k
                group = items[k + 1]
                assert isinstance(group, Group)
                literals = [self.level_literal(group.items, i, 0, len(group.items)) for i, _ in _arguments(group)]
                spans = _arguments(group)
                whole = all(end - start == 1 for start, end in spans)
                if self.level_before(items, lo, left) and spans and whole and all(literals):
                    edits += [e for e in literals if e is not None]
        return edits

    @staticmethod
    def level_before(items: list[Item], lo: int, k: int) -> bool:
        """Whether the operand just before ``items[k]`` is the ``level`` column on its own."""
        ref = k - 1
        if ref < lo or _upper(items[ref]) != "LEVEL":
            return False
        start = ref - 2 if ref - 2 >= lo and _token(items[ref - 1], _T.DOT) else ref
        return start == lo or not _is_operator(items[start - 1])

    @staticmethod
    def level_after(items: list[Item], k: int, hi: int) -> bool:
        """Whether the operand just after ``items[k]`` is the ``level`` column on its own."""
        ref = k + 3 if _token(_at(items, k + 2, hi), _T.DOT) else k + 1
        return _upper(_at(items, ref, hi)) == "LEVEL" and not _is_operator(_at(items, ref + 1, hi))

    @staticmethod
    def level_literal(items: list[Item], k: int, lo: int, hi: int) -> Edit | None:
        item = items[k] if lo <= k < hi else None
        if not (isinstance(item, Token) and item.token_type == _T.STRING) or item.text.lower() not in LEVEL_NUMBERS:
            return None
        if (k > lo and _is_operator(items[k - 1])) or _is_operator(_at(items, k + 1, hi)):
            return None
        return Edit(item.start, item.end + 1, str(LEVEL_NUMBERS[item.text.lower()]))

    def alias_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Name unaliased projections with JSON operators or functions as Logfire does."""
        edits: list[Edit] = []
        for k in range(lo, hi):
            if _upper(items[k]) != "SELECT":
                continue
            start = k + 1
            if _upper(_at(items, start, hi)) in ("DISTINCT", "ALL"):
                start += 1
                if _upper(_at(items, start, hi)) == "ON" and _group(_at(items, start + 1, hi)):
                    start += 2
            end = start
            while end < hi and _upper(items[end]) not in _CLAUSES and _upper(items[end]) != "SELECT":
                end += 1
            first = start
            for stop in [*(i for i in range(start, end) if _token(items[i], _T.COMMA)), end]:
                if first < stop and self.unaliased(items, first, stop) and _has_json(items[first:stop]):
                    name = (self.planned_name(items, first, stop) or self.display(items[first:stop])).replace('"', '""')
                    edits.append(Edit(items[stop - 1].end + 1, items[stop - 1].end + 1, f' AS "{name}"'))
                first = stop + 1
        return edits

    @staticmethod
    def unaliased(items: list[Item], lo: int, hi: int) -> bool:
        if hi - lo >= 2 and _upper(items[hi - 2]) == "AS":
            return False
        last, before = items[hi - 1], items[hi - 2] if hi - lo >= 2 else None
        if not _is_name(last) or before is None:
            return True
        return _is_operator(before) or (_upper(before) in _RESERVED and _upper(before) != "END")

    def planned_name(self, items: list[Item], lo: int, hi: int) -> str | None:
        """The name Logfire's planner gives a chain of JSON operators, or None if ``items[lo:hi]`` is not one."""
        run = _run(items, lo, hi)
        if run is None or run.end != hi or not run.operators:
            return None
        if not all(_json_operator(items, operator) for operator in run.operators):
            return None
        names = [_operand_name(items, start, end) for start, end in run.operands]
        if any(name is None for name in names):
            return None
        parts = [names[0]]
        for (operator, _), name in zip(run.operators, names[1:], strict=True):
            parts += [self.sql[items[operator].start : items[operator].end + 1], name]
        return " ".join(p for p in parts if p is not None)

    def display(self, items: list[Item]) -> str:
        tokens = _flat(items)
        parts = [self.sql[tokens[0].start : tokens[0].end + 1]]
        for previous, token in itertools.pairwise(tokens):
            operator = _token(previous, *_JSON_OPERATORS) or _token(token, *_JSON_OPERATORS)
            operator = operator or _is_contains(previous) or _is_contains(token)
            parts.append(" " if operator or token.start > previous.end + 1 else "")
            parts.append(self.sql[token.start : token.end + 1])
        return "".join(parts)


def _operand_name(items: list[Item], lo: int, hi: int) -> str | None:
    """How Logfire's planner names an operand of a JSON operator: a column, a string or an integer."""
    item = items[lo]
    if hi - lo == 1 and isinstance(item, Token) and item.token_type == _T.STRING:
        return f"'{item.text}'"
    if hi - lo == 1 and isinstance(item, Token) and item.token_type == _T.NUMBER and _INTEGER.fullmatch(item.text):
        return item.text
    names, dots = items[lo:hi:2], items[lo + 1 : hi : 2]
    if (hi - lo) % 2 == 0 or not all(_is_name(n) for n in names) or not all(_token(d, _T.DOT) for d in dots):
        return None
    last = items[hi - 1]
    assert isinstance(last, Token)
    return _unquote(last)


def _unquote(token: Token) -> str:
    """A column's name as DataFusion resolves it: quoted as written, unquoted lower-cased."""
    return token.text if token.token_type == _T.IDENTIFIER else token.text.lower()


def _has_json(items: list[Item]) -> bool:
    tokens = _flat(items)
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        if _token(token, *_JSON_OPERATORS) or _is_contains(token):
            return True
        if token.text.lower() in _JSON_FUNCTIONS and _token(after, _T.L_PAREN):
            return True
    return False


def rewrite(sql: str) -> str:
    """Translate one Logfire SQL query into DataFusion SQL; text it cannot tokenize is returned unchanged."""
    try:
        items = nest(tokenize(sql))
    except (TokenError, ValueError):
        return sql
    if not items:
        return sql
    return apply_edits(sql, _Splicer(sql).edits(items, 0, len(items)))
