"""The filter and order-by language for searching runs.

A filter is conditions joined by ``and`` / ``or`` (``and`` binds tighter; parentheses
group)::

    metrics.auc > 0.9 and (params.model = 'xgb' or tags.team in ('a', 'b'))
    status != 'failed' and attributes.start_time >= '2024-05-01T00:00:00Z'
    metrics.`val loss` is not null

A condition is ``FIELD OP VALUE`` (OP: ``= == != < <= > >= like ilike``), ``FIELD in (V, ...)``,
``FIELD not in (V, ...)``, ``FIELD is null`` or ``FIELD is not null``. A field is
``metrics.KEY``, ``params.KEY``, ``tags.KEY``, ``attributes.NAME`` or a bare ``NAME`` from
``ATTRIBUTES``. A key is letters, digits, ``_ - . /`` or any text in backquotes (a doubled
backquote stands for one). A value is a number, a quoted string (backslash or doubled-quote
escapes), ``true`` or ``false``. Values keep the type they were written with, so the store
decides how to compare them; ``start_time`` and ``end_time`` take only ISO-8601 strings,
checked here and left as written.

Keywords are case-insensitive; field prefixes and attribute names are not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NoReturn, TypeAlias

from shipyard.errors import InvalidArgumentError

__all__ = [
    "ATTRIBUTES",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "And",
    "Comparison",
    "Expr",
    "Field",
    "FieldKind",
    "Or",
    "OrderBy",
    "fields",
    "parse_filter",
    "parse_order_by",
]

FieldKind: TypeAlias = Literal["metric", "param", "tag", "attribute"]
_TIMES = ("start_time", "end_time")  # compared with ISO-8601 strings only
ATTRIBUTES = ("run_id", "name", "status", "experiment", "user", *_TIMES, "duration")
MAX_FILTER_LENGTH = 10_000
MAX_FILTER_DEPTH = 50

_PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric",
    "params": "param",
    "tags": "tag",
    "attributes": "attribute",
}
_OPERATORS = "=, !=, <, <=, >, >=, like, ilike, in, not in, is null, is not null"
_SYMBOLS = ("==", "!=", "<=", ">=", "=", "<", ">")  # longest first
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_STRINGS = {q: re.compile(f"{q}((?:[^{q}\\\\]|\\\\.|{q}{q})*){q}", re.DOTALL) for q in "'\""}
_BACKQUOTED = re.compile(r"`((?:[^`]|``)+)`")
_SPACE = re.compile(r"\s+")
_IDENT = re.compile(r"[^\W\d]\w*")
_KEY = re.compile(r"[\w\-./]+")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class Field:
    """A field a condition or an ordering refers to.

    Attributes:
        kind: ``metric``, ``param``, ``tag`` or ``attribute``.
        key: the metric, param or tag key, or the attribute name.
    """

    kind: FieldKind
    key: str

    def __str__(self) -> str:
        if self.kind == "attribute":
            return self.key
        key = self.key if _KEY.fullmatch(self.key) else "`" + self.key.replace("`", "``") + "`"
        return f"{self.kind}s.{key}"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One condition: ``field op value``.

    Attributes:
        field: the field compared.
        op: one of ``=, !=, <, <=, >, >=, like, ilike, in, not in, is null, is not null``.
        value: the value as written (``int``, ``float``, ``str`` or ``bool``); a tuple of
            them for ``in`` / ``not in``; ``None`` for ``is null`` / ``is not null``.
    """

    field: Field
    op: str
    value: object = None


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold; never holds a nested ``And``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``items`` holds; never holds a nested ``Or``."""

    items: tuple[Expr, ...]


Expr: TypeAlias = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One ordering key: a field and a direction."""

    field: Field
    descending: bool = False


def parse_filter(text: str) -> Expr | None:
    """Parse a filter string into an expression tree.

    Args:
        text: the filter, e.g. ``"metrics.auc > 0.9 and params.model = 'xgb'"``.

    Returns:
        The expression, or ``None`` when the text is empty or only whitespace.

    Raises:
        InvalidArgumentError: if the text is not a well-formed filter; the message quotes
            it, names the 1-based position and says what was expected there.

    Examples:
        >>> parse_filter("metrics.auc >= 0.9")
        Comparison(field=Field(kind='metric', key='auc'), op='>=', value=0.9)
    """
    parser = _Parser(text, "filter")
    if parser.at_end():
        return None
    return parser.filter()


def parse_order_by(items: Sequence[str] | str | None) -> tuple[OrderBy, ...]:
    """Parse order-by items, each ``FIELD [asc|desc]`` (ascending by default).

    Args:
        items: a list of items, one string of comma-separated items, or ``None``.

    Returns:
        The orderings, in priority order; empty for ``None`` or an empty string.

    Raises:
        InvalidArgumentError: if an item is malformed or a field is ordered by twice.
    """
    if items is None:
        return ()
    if not isinstance(items, str | Sequence):
        raise InvalidArgumentError(f"invalid order_by: expected a list of strings, got {items!r}")
    texts = [items] if isinstance(items, str) else list(items)
    result: list[OrderBy] = []
    seen: set[Field] = set()
    for text in texts:
        parser = _Parser(text, "order_by")
        if isinstance(items, str) and parser.at_end():
            continue
        for order, pos in parser.order_items(several=isinstance(items, str)):
            if order.field in seen:
                raise parser.error(pos, f"{order.field} is already ordered by; name it once")
            seen.add(order.field)
            result.append(order)
    return tuple(result)


def fields(expr: Expr) -> set[Field]:
    """Every field an expression refers to, so a store knows what to join.

    Args:
        expr: the parsed filter.

    Returns:
        The fields, without duplicates.
    """
    found: set[Field] = set()
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Comparison):
            found.add(node.field)
        else:
            stack.extend(node.items)
    return found


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, field, string, number, op, (, ), ",", end
    text: str  # as written
    pos: int  # 0-based offset in the text
    value: object = None

    def keyword(self) -> str | None:
        """The lower-cased word, unless the word is backquoted or not a word at all."""
        if self.kind != "word" or self.text.startswith("`"):
            return None
        return self.text.lower()


class _Parser:
    """A hand-written tokenizer and recursive-descent parser over one text."""

    def __init__(self, text: object, what: str) -> None:
        if not isinstance(text, str):
            raise InvalidArgumentError(f"invalid {what}: expected a string, got {text!r}")
        self.text, self.what, self.i, self.depth = text, what, 0, 0
        self.peeked: _Token | None = None
        if len(text) > MAX_FILTER_LENGTH:
            raise self.error(
                MAX_FILTER_LENGTH,
                f"expected at most {MAX_FILTER_LENGTH} characters, found {len(text)}",
            )

    def error(self, pos: int, message: str) -> InvalidArgumentError:
        text = self.text
        if len(text) > _EXCERPT:
            start = max(0, pos - _EXCERPT // 2)
            text = "…" + text[start : start + _EXCERPT] + "…"
        return InvalidArgumentError(
            f'invalid {self.what} "{text}" at position {pos + 1}: {message}'
        )

    def expected(self, token: _Token, what: str, after: _Token | None = None) -> NoReturn:
        where = f" after '{after.text}'" if after else ""
        found = f"'{token.text[:40]}'" if token.kind != "end" else f"the end of the {self.what}"
        raise self.error(token.pos, f"expected {what}{where}, found {found}")

    # -- tokens ------------------------------------------------------------------------

    def peek(self) -> _Token:
        if self.peeked is None:
            self.peeked = self._lex()
        return self.peeked

    def next(self) -> _Token:
        token = self.peek()
        self.peeked = None
        return token

    def at_end(self) -> bool:
        return self.peek().kind == "end"

    def _lex(self) -> _Token:
        text = self.text
        space = _SPACE.match(text, self.i)
        start = self.i = space.end() if space else self.i
        if start >= len(text):
            return _Token("end", "", start)
        char = text[start]
        if char in "(),":
            self.i += 1
            return _Token(char, char, start)
        if char in "'\"":
            return self._string(start)
        if char == "`" or _IDENT.match(text, start):
            return self._word(start)
        number = _NUMBER.match(text, start)
        if number:
            return self._number(number)
        for symbol in _SYMBOLS:
            if text.startswith(symbol, start):
                self.i += len(symbol)
                return _Token("op", symbol, start)
        raise self.error(start, f"unexpected character {char!r}")

    def _string(self, start: int) -> _Token:
        quote = self.text[start]
        match = _STRINGS[quote].match(self.text, start)
        if match is None:
            raise self.error(start, f"unterminated string: expected a closing {quote!r}")

        def unescape(escape: re.Match[str]) -> str:
            if escape.group() == quote * 2:
                return quote
            if escape.group(1) not in _ESCAPES:
                where, seen = start + 1 + escape.start(), escape.group()
                raise self.error(where, f"unknown escape {seen!r}: write '\\\\' for a backslash")
            return _ESCAPES[escape.group(1)]

        self.i = match.end()
        value = re.sub(r"\\(.)|" + quote * 2, unescape, match.group(1), flags=re.DOTALL)
        return _Token("string", match.group(), start, value)

    def _backquoted(self, start: int) -> tuple[str, int]:
        match = _BACKQUOTED.match(self.text, start)
        if match is None:
            raise self.error(start, "expected a name and a closing ` after the opening one")
        return match.group(1).replace("``", "`"), match.end()

    def _word(self, start: int) -> _Token:
        text = self.text
        if text[start] == "`":
            name, end = self._backquoted(start)
            self.i = end
            return _Token("word", text[start:end], start, name)
        ident = _IDENT.match(text, start)
        assert ident is not None  # _lex only calls here on a backquote or an identifier
        head, end = ident.group(), ident.end()
        if text[end : end + 1] != ".":
            self.i = end
            return _Token("word", head, start, head)
        kind = _PREFIXES.get(head)
        if kind is None:
            raise self.error(
                start,
                f"unknown field prefix '{head}.': expected metrics., params., tags. or attributes.",
            )
        if text[end + 1 : end + 2] == "`":
            key, end = self._backquoted(end + 1)
        else:
            match = _KEY.match(text, end + 1)
            if match is None:
                raise self.error(end + 1, f"expected a key after '{head}.'")
            key, end = match.group(), match.end()
        self.i = end
        return _Token("field", text[start:end], start, Field(kind, key))

    def _number(self, match: re.Match[str]) -> _Token:
        raw, start, end = match.group(), match.start(), match.end()
        if end < len(self.text) and re.match(r"[\w.`]", self.text[end]):
            raise self.error(start, f"malformed number starting {raw!r}")
        self.i = end
        try:
            value: int | float = float(raw) if re.search(r"[.eE]", raw) else int(raw)
        except ValueError:  # more digits than int() accepts
            raise self.error(start, "number has too many digits") from None
        if not math.isfinite(value):
            raise self.error(start, f"number {raw} is out of range")
        return _Token("number", raw, start, value)

    # -- grammar -----------------------------------------------------------------------

    def filter(self) -> Expr:
        expr = self._or(None)
        token = self.peek()
        if token.kind == ")":
            raise self.error(token.pos, "unbalanced ')': no '(' opens it")
        if token.kind != "end":
            self.expected(token, "'and', 'or' or the end of the filter")
        return expr

    def order_items(self, *, several: bool) -> list[tuple[OrderBy, int]]:
        items: list[tuple[OrderBy, int]] = []
        after: _Token | None = None
        while True:
            token = self.next()
            field = self._field(token, after)
            direction = self.peek().keyword()
            if direction in ("asc", "desc"):
                self.next()
            items.append((OrderBy(field, direction == "desc"), token.pos))
            after = self.next()
            if after.kind == "end":
                return items
            if after.kind != "," or not several:
                comma = ", ','" if several else ""
                self.expected(after, f"'asc', 'desc'{comma} or the end of the item")

    def _keyword(self, word: str) -> _Token | None:
        if self.peek().keyword() == word:
            return self.next()
        return None

    def _or(self, after: _Token | None) -> Expr:
        items = [self._and(after)]
        while keyword := self._keyword("or"):
            items.append(self._and(keyword))
        return _join(Or, items)

    def _and(self, after: _Token | None) -> Expr:
        items = [self._primary(after)]
        while keyword := self._keyword("and"):
            items.append(self._primary(keyword))
        return _join(And, items)

    def _primary(self, after: _Token | None) -> Expr:
        token = self.next()
        if token.kind != "(":
            return self._comparison(token, after)
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise self.error(token.pos, f"expected at most {MAX_FILTER_DEPTH} nested parentheses")
        expr = self._or(token)
        close = self.next()
        if close.kind != ")":
            self.expected(close, f"')' to close the '(' at position {token.pos + 1}")
        self.depth -= 1
        return expr

    def _field(self, token: _Token, after: _Token | None) -> Field:
        if token.kind == "field":
            assert isinstance(token.value, Field)
            field = token.value
        elif token.kind == "word" and token.keyword() not in ("and", "or", "not", "in", "is"):
            field = Field("attribute", str(token.value))
        else:
            self.expected(token, "a field (metrics.KEY, params.KEY, tags.KEY, NAME)", after)
        if field.kind == "attribute" and field.key not in ATTRIBUTES:
            raise self.error(
                token.pos,
                f"unknown attribute '{field.key}': expected metrics.KEY, params.KEY, "
                f"tags.KEY or one of {', '.join(ATTRIBUTES)}",
            )
        return field

    def _comparison(self, token: _Token, after: _Token | None) -> Comparison:
        field = self._field(token, after)
        op = self.next()
        word = op.keyword()
        if op.kind == "op":
            return Comparison(field, "=" if op.text == "==" else op.text, self._value(op, field))
        if word in ("like", "ilike"):
            pattern = self.peek()
            if pattern.kind != "string":
                raise self.error(op.pos, f"expected a quoted pattern after '{op.text}'")
            return Comparison(field, word, self.next().value)
        if word == "in":
            return Comparison(field, "in", self._values(op, field))
        if word == "not":
            if self._keyword("in") is None:
                self.expected(self.peek(), "'in'", op)
            return Comparison(field, "not in", self._values(op, field))
        if word == "is":
            negated = self._keyword("not")
            if self._keyword("null") is None:
                self.expected(
                    self.peek(), "'null'" if negated else "'null' or 'not null'", negated or op
                )
            return Comparison(field, "is not null" if negated else "is null")
        self.expected(op, f"an operator ({_OPERATORS})", token)

    def _value(self, after: _Token, field: Field) -> object:
        token = self.peek()
        word = token.keyword()
        if token.kind in ("string", "number"):
            value = self.next().value
        elif word in ("true", "false"):
            value = self.next().keyword() == "true"
        else:
            hint = ""
            if word == "null":
                hint = " (test for a missing value with 'is null')"
            elif token.kind == "word":
                hint = f" (quote text values: '{token.text}')"
            raise self.error(after.pos, f"expected a value after '{after.text}'{hint}")
        if field.kind == "attribute" and field.key in _TIMES:
            self._check_time(token, value)
        return value

    def _values(self, op: _Token, field: Field) -> tuple[object, ...]:
        start = self.next()
        if start.kind != "(":
            self.expected(start, "'('", op)
        if self.peek().kind == ")":
            raise self.error(self.peek().pos, "expected at least one value between '(' and ')'")
        values = [self._value(start, field)]
        while (token := self.next()).kind == ",":
            values.append(self._value(token, field))
        if token.kind != ")":
            self.expected(token, f"',' or ')' to close the list at position {start.pos + 1}")
        return tuple(values)

    def _check_time(self, token: _Token, value: object) -> None:
        try:
            if isinstance(value, str):
                datetime.fromisoformat(value)
                return
        except ValueError:
            pass
        self.expected(token, "an ISO-8601 time such as '2024-05-01T12:00:00Z'")


def _join(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))
