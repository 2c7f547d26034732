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

Operands are found with PostgreSQL's precedence (see :mod:`logfire_io.server.operands`). A query the tokenizer
rejects, or whose brackets do not balance, is passed on unchanged, so that DataFusion, not this module, reports
what is wrong with it.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from logfire_io._splice import Edit, Group, apply_edits, nest, tokenize
from logfire_io.schema import LEVEL_NUMBERS
from logfire_io.server.metric_udfs import METRIC_FUNCTIONS, value_sql
from logfire_io.server.operands import (
    HIGH,
    RESERVED,
    Item,
    Run,
    at,
    is_contains,
    is_group,
    is_name,
    is_operator,
    is_token,
    primary_end,
    run,
    term_end,
    type_end,
    upper,
)

__all__ = ["rewrite"]

_T = TokenType
Key = tuple[bool, str | int]
"""A path step: (True, literal key or index) or (False, SQL text of an expression giving it)."""

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
_CLAUSES = {"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "INTERSECT", "EXCEPT", "WINDOW"}
_CLAUSES |= {"QUALIFY", "INTO", "FETCH", "GROUP BY", "ORDER BY"}
_INTEGER = re.compile(r"\d+")
_GETTERS = {
    **dict.fromkeys(["numeric", "decimal", "float", "float4", "float8", "double", "real"], "json_get_float"),
    **dict.fromkeys(["int", "integer", "bigint", "int4", "int8"], "json_get_int"),
    **dict.fromkeys(["text", "varchar", "string", "char", "character"], "json_get_str"),
    **dict.fromkeys(["bool", "boolean"], "json_get_bool"),
}
_INT_TYPES = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
_EPOCH = "CAST('1970-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE)"


def _json_operator(items: list[Item], span: tuple[int, int]) -> str | None:
    item = items[span[0]]
    if span[1] - span[0] != 1 or not isinstance(item, Token):
        return None
    return "json_contains" if is_contains(item) else _JSON_OPERATORS.get(item.token_type)


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
        if is_token(item, _T.COMMA):
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
            found = run(items, index, hi)
            if found is None:
                item = items[index]
                if isinstance(item, Group):
                    edits += self.edits(item.items, 0, len(item.items))
                index += 1
                continue
            if any(_json_operator(items, span) for span in found.operators):
                text = self.fold(items, found)
                edits.append(Edit(items[index].start, items[found.end - 1].end + 1, text))
            else:
                for start, end in found.operands:
                    edits += self.operand_edits(items, start, end)
            index = found.end
        return edits + self.level_edits(items, lo, hi) + self.alias_edits(items, lo, hi)

    def operand_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Edits for an operand of the "other" operators: each of its terms in turn."""
        edits: list[Edit] = []
        index = lo
        while index < hi:
            end = term_end(items, index, hi) or index + 1
            start = index
            while is_token(items[start], _T.PLUS, _T.DASH) and start + 1 < end:
                start += 1
            edits += self.term_edits(items, start, end)
            after = at(items, end, hi)
            index = end + (1 if is_token(after, *HIGH) else 3 if upper(after) == "AT" else 0)
        return edits

    def lookup(self, items: list[Item], lo: int, hi: int) -> _Lookup | None:
        """The JSON lookup that ``items[lo:hi]`` is, when it is one (an operator chain or a JSON function call)."""
        item = items[lo]
        if hi - lo == 1 and is_group(item):
            assert isinstance(item, Group)
            return self.lookup(item.items, 0, len(item.items)) if item.items else None
        if hi - lo == 2 and upper(item).lower() in _JSON_FUNCTIONS and is_group(items[lo + 1]):
            return self.call(items, lo)
        found = run(items, lo, hi)
        if found is None or found.end != hi or not found.operators:
            return None
        folded = self.fold_lookup(items, found)
        return folded if isinstance(folded, _Lookup) else None

    def key(self, items: list[Item], lo: int, hi: int) -> Key:
        item = items[lo]
        if hi - lo == 1 and is_token(item, _T.STRING) and isinstance(item, Token):
            return True, item.text
        if hi - lo == 1 and is_token(item, _T.NUMBER) and isinstance(item, Token) and _INTEGER.fullmatch(item.text):
            return True, int(item.text)
        number = items[lo + 1] if hi - lo == 2 else None
        if is_token(item, _T.DASH) and isinstance(number, Token) and _INTEGER.fullmatch(number.text):
            return True, -int(number.text)
        return False, self.render(items, lo, hi)

    def fold_lookup(self, items: list[Item], run: Run) -> _Lookup | str:
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

    def fold(self, items: list[Item], run: Run) -> str:
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
        core = primary_end(items, lo, hi) or lo + 1
        if core + 1 < hi and is_token(items[core], _T.DCOLON):
            end = type_end(items, core + 1, hi)
            text = self.typed(self.lookup(items, lo, core), self.text(items, core + 1, end))
            if text is not None:
                return [Edit(items[lo].start, items[end - 1].end + 1, text), *self.nested(items, end, hi)]
        name = upper(items[lo]).lower()
        group = at(items, lo + 1, hi)
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
            alias = next((k for k, item in enumerate(group.items) if upper(item) == "AS"), None)
            if alias is not None and alias + 1 < len(group.items):
                type_text = self.text(group.items, alias + 1, len(group.items))
                return self.typed(self.lookup(group.items, 0, alias), type_text)
        if name == "level_num" and len(spans) == 1:
            item = group.items[0]
            if len(group.items) == 1 and is_token(item, _T.STRING) and isinstance(item, Token):
                number = LEVEL_NUMBERS.get(item.text.lower())
                return None if number is None else str(number)
        if name == "level_name" and len(spans) == 1:
            return f"{items[index].text}(CAST({self.render(group.items, *spans[0])} AS BIGINT))"
        if name in METRIC_FUNCTIONS:
            arguments = [_metric_value(group.items, *span) or self.render(group.items, *span) for span in spans]
            if arguments == [self.render(group.items, *span) for span in spans]:
                return None
            return f"{items[index].text}({', '.join(arguments)})"
        if name == "time_bucket" and len(spans) == 2:
            width, value = (self.render(group.items, *span) for span in spans)
            first = group.items[spans[0][0]]
            if spans[0][1] - spans[0][0] == 1 and is_token(first, _T.STRING):
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
            if is_token(item, *_COMPARISONS):
                for ref, literal in ((self.level_before(items, lo, k), k + 1), (self.level_after(items, k, hi), k - 1)):
                    if ref and (edit := self.level_literal(items, literal, lo, hi)) is not None:
                        edits.append(edit)
            elif upper(item) == "BETWEEN":
                left = k - 1 if k > lo and upper(items[k - 1]) == "NOT" else k
                low, high = self.level_literal(items, k + 1, lo, hi), self.level_literal(items, k + 3, lo, hi)
                if self.level_before(items, lo, left) and upper(at(items, k + 2, hi)) == "AND" and low and high:
                    edits += [low, high]
            elif upper(item) == "IN" and is_group(at(items, k + 1, hi)):
                left = k - 1 if k > lo and upper(items[k - 1]) == "NOT" else k
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
        if ref < lo or upper(items[ref]) != "LEVEL":
            return False
        start = ref - 2 if ref - 2 >= lo and is_token(items[ref - 1], _T.DOT) else ref
        return start == lo or not is_operator(items[start - 1])

    @staticmethod
    def level_after(items: list[Item], k: int, hi: int) -> bool:
        """Whether the operand just after ``items[k]`` is the ``level`` column on its own."""
        ref = k + 3 if is_token(at(items, k + 2, hi), _T.DOT) else k + 1
        return upper(at(items, ref, hi)) == "LEVEL" and not is_operator(at(items, ref + 1, hi))

    @staticmethod
    def level_literal(items: list[Item], k: int, lo: int, hi: int) -> Edit | None:
        item = items[k] if lo <= k < hi else None
        if not (isinstance(item, Token) and item.token_type == _T.STRING) or item.text.lower() not in LEVEL_NUMBERS:
            return None
        if (k > lo and is_operator(items[k - 1])) or is_operator(at(items, k + 1, hi)):
            return None
        return Edit(item.start, item.end + 1, str(LEVEL_NUMBERS[item.text.lower()]))

    def alias_edits(self, items: list[Item], lo: int, hi: int) -> list[Edit]:
        """Name unaliased projections with JSON operators or functions as Logfire does."""
        edits: list[Edit] = []
        for k in range(lo, hi):
            if upper(items[k]) != "SELECT":
                continue
            start = k + 1
            if upper(at(items, start, hi)) in ("DISTINCT", "ALL"):
                start += 1
                if upper(at(items, start, hi)) == "ON" and is_group(at(items, start + 1, hi)):
                    start += 2
            end = start
            while end < hi and upper(items[end]) not in _CLAUSES and upper(items[end]) != "SELECT":
                end += 1
            first = start
            for stop in [*(i for i in range(start, end) if is_token(items[i], _T.COMMA)), end]:
                if first < stop and self.unaliased(items, first, stop) and _has_json(items[first:stop]):
                    name = (self.planned_name(items, first, stop) or self.display(items[first:stop])).replace('"', '""')
                    edits.append(Edit(items[stop - 1].end + 1, items[stop - 1].end + 1, f' AS "{name}"'))
                first = stop + 1
        return edits

    @staticmethod
    def unaliased(items: list[Item], lo: int, hi: int) -> bool:
        if hi - lo >= 2 and upper(items[hi - 2]) == "AS":
            return False
        last, before = items[hi - 1], items[hi - 2] if hi - lo >= 2 else None
        if not is_name(last) or before is None:
            return True
        return is_operator(before) or (upper(before) in RESERVED and upper(before) != "END")

    def planned_name(self, items: list[Item], lo: int, hi: int) -> str | None:
        """The name Logfire's planner gives a chain of JSON operators, or None if ``items[lo:hi]`` is not one."""
        found = run(items, lo, hi)
        if found is None or found.end != hi or not found.operators:
            return None
        if not all(_json_operator(items, operator) for operator in found.operators):
            return None
        names = [_operand_name(items, start, end) for start, end in found.operands]
        if any(name is None for name in names):
            return None
        parts = [names[0]]
        for (operator, _), name in zip(found.operators, names[1:], strict=True):
            parts += [self.sql[items[operator].start : items[operator].end + 1], name]
        return " ".join(p for p in parts if p is not None)

    def display(self, items: list[Item]) -> str:
        tokens = _flat(items)
        parts = [self.sql[tokens[0].start : tokens[0].end + 1]]
        for previous, token in itertools.pairwise(tokens):
            operator = is_token(previous, *_JSON_OPERATORS) or is_token(token, *_JSON_OPERATORS)
            operator = operator or is_contains(previous) or is_contains(token)
            parts.append(" " if operator or token.start > previous.end + 1 else "")
            parts.append(self.sql[token.start : token.end + 1])
        return "".join(parts)


def _metric_value(items: list[Item], lo: int, hi: int) -> str | None:
    """The SQL building Logfire's ``value`` for a ``value`` or ``q.value`` argument of a ``metric_*`` call."""
    tokens = items[lo:hi]
    if not all(isinstance(t, Token) and t.token_type in (_T.VAR, _T.DOT) for t in tokens):
        return None
    texts = [t.text for t in tokens if isinstance(t, Token)]
    if len(texts) == 1 and texts[0].lower() == "value":
        return value_sql()
    if len(texts) == 3 and texts[1] == "." and texts[2].lower() == "value":
        return value_sql(texts[0])
    return None


def _operand_name(items: list[Item], lo: int, hi: int) -> str | None:
    """How Logfire's planner names an operand of a JSON operator: a column, a string or an integer."""
    item = items[lo]
    if hi - lo == 1 and isinstance(item, Token) and item.token_type == _T.STRING:
        return f"'{item.text}'"
    if hi - lo == 1 and isinstance(item, Token) and item.token_type == _T.NUMBER and _INTEGER.fullmatch(item.text):
        return item.text
    names, dots = items[lo:hi:2], items[lo + 1 : hi : 2]
    if (hi - lo) % 2 == 0 or not all(is_name(n) for n in names) or not all(is_token(d, _T.DOT) for d in dots):
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
        if is_token(token, *_JSON_OPERATORS) or is_contains(token):
            return True
        if token.text.lower() in _JSON_FUNCTIONS and is_token(after, _T.L_PAREN):
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
