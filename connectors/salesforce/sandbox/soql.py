"""Parser and evaluator for the SOQL subset the Salesforce emulator serves.

Grammar (keywords case-insensitive)::

    SELECT (COUNT() | field, ...) FROM Object
    [WHERE cond] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]
    cond := NOT cond | (cond) | cond AND cond ... | cond OR cond ...
          | field op literal | field [NOT] IN (literal, ...)

As in real SOQL, AND and OR cannot be mixed without parentheses, literals must
match the field's type, string comparisons ignore case, ``!=`` matches nulls,
ASC sorts nulls first and DESC nulls last.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, TypeAlias

from connectors.salesforce.timestamps import format_sf_datetime, parse_sf_datetime

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
Schema = Mapping[str, Mapping[str, str]]
"""Object name -> field name -> Salesforce field type (id, string, double, dateTime ...)."""


class SoqlError(Exception):
    """A query Salesforce would reject; ``error_code`` is its REST errorCode."""

    def __init__(self, error_code: str, message: str, near: str | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.near = near  # the name Salesforce points at (a field or object), if any

    def located(self, text: str) -> str:
        """The message as Salesforce words a rejected name: on a new line, the query, a
        caret under the name, ``ERROR at Row:1:Column:N`` and the reason."""
        column = text.lower().find(self.near.lower()) if self.near else -1
        if column < 0:
            return self.message
        caret = " " * column + "^"
        return f"\n{text}\n{caret}\nERROR at Row:1:Column:{column + 1}\n{self.message}"


class _Token(NamedTuple):
    kind: str
    text: str
    pos: int


class _Lit(NamedTuple):
    kind: str  # string | number | boolean | null | date | datetime
    value: Any


@dataclass(frozen=True)
class _Cmp:
    field: str
    op: str  # = != < <= > >= IN NOT IN
    values: tuple[_Lit, ...]


@dataclass(frozen=True)
class _Bool:
    op: str  # AND | OR | NOT
    args: tuple[_Node, ...]


_Node: TypeAlias = "_Cmp | _Bool"


class _Statement(NamedTuple):
    fields: list[str]
    count_only: bool
    sobject: str
    where: _Node | None
    order: list[tuple[str, bool, bool]]
    limit: int | None


_TOKEN_RE = re.compile(
    r"""\s+
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    |(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)""",
    re.VERBOSE,
)
_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "_": "\\_",
    "%": "\\%",
}
_KINDS = {
    "id": "string",
    "string": "string",
    "reference": "string",
    "picklist": "string",
    "email": "string",
    "textarea": "string",
    "phone": "string",
    "url": "string",
    "boolean": "boolean",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "date": "date",
    "datetime": "datetime",
}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            shown = text[pos : pos + 10]
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}' at column {pos + 1}")
        if m.lastgroup is not None:
            tokens.append(_Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


def _unescape(raw: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in _ESCAPES:
            message = f"Invalid string literal '{raw}'. Illegal escape sequence"
            raise SoqlError("MALFORMED_QUERY", message)
        return _ESCAPES[m.group(1)]

    return re.sub(r"\\(.)", sub, raw[1:-1], flags=re.DOTALL)


class _Parser:
    """Recursive descent over the token list; raises MALFORMED_QUERY on any syntax error."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def fail(self) -> SoqlError:
        tok = self.peek()
        shown = "<EOF>" if tok.kind == "eof" else tok.text
        return SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}' at column {tok.pos + 1}")

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.text.upper() in words

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise self.fail()

    def accept(self, kind: str, text: str) -> bool:
        tok = self.peek()
        if tok.kind == kind and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str = "") -> _Token:
        tok = self.peek()
        if tok.kind != kind or (text and tok.text != text):
            raise self.fail()
        self.i += 1
        return tok

    def statement(self) -> _Statement:
        self.expect_kw("SELECT")
        fields: list[str] = []
        count_only = False
        if self.is_kw("COUNT") and self.tokens[self.i + 1].text == "(":
            self.i += 1
            self.expect("punct", "(")
            self.expect("punct", ")")
            count_only = True
        else:
            fields.append(self.expect("name").text)
            while self.accept("punct", ","):
                fields.append(self.expect("name").text)
        self.expect_kw("FROM")
        sobject = self.expect("name").text
        where = self.condition() if self.accept_kw("WHERE") else None
        order: list[tuple[str, bool, bool]] = []
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            order.append(self.order_item())
            while self.accept("punct", ","):
                order.append(self.order_item())
        limit = None
        if self.accept_kw("LIMIT"):
            tok = self.expect("number")
            if not tok.text.isdigit():
                self.i -= 1
                raise self.fail()
            limit = int(tok.text)
        self.expect("eof")
        return _Statement(fields, count_only, sobject, where, order, limit)

    def order_item(self) -> tuple[str, bool, bool]:
        field = self.expect("name").text
        desc = self.accept_kw("DESC")
        if not desc:
            self.accept_kw("ASC")
        nulls_last = desc
        if self.accept_kw("NULLS"):
            if self.accept_kw("LAST"):
                nulls_last = True
            else:
                self.expect_kw("FIRST")
                nulls_last = False
        return field, desc, nulls_last

    def condition(self) -> _Node:
        first = self.unary()
        args = [first]
        joiner = ""
        while self.is_kw("AND", "OR"):
            word = self.peek().text.upper()
            if joiner and word != joiner:
                raise self.fail()
            joiner = word
            self.i += 1
            args.append(self.unary())
        return _Bool(joiner, tuple(args)) if joiner else first

    def unary(self) -> _Node:
        if self.accept_kw("NOT"):
            return _Bool("NOT", (self.unary(),))
        if self.accept("punct", "("):
            node = self.condition()
            self.expect("punct", ")")
            return node
        field = self.expect("name").text
        if self.peek().kind == "op":
            op = self.expect("op").text
            return _Cmp(field, "!=" if op == "<>" else op, (self.literal(),))
        negate = self.accept_kw("NOT")
        self.expect_kw("IN")
        self.expect("punct", "(")
        values = [self.literal()]
        while self.accept("punct", ","):
            values.append(self.literal())
        self.expect("punct", ")")
        return _Cmp(field, "NOT IN" if negate else "IN", tuple(values))

    def literal(self) -> _Lit:
        tok = self.peek()
        try:
            if tok.kind == "string":
                lit = _Lit("string", _unescape(tok.text))
            elif tok.kind == "number":
                is_int = tok.text.lstrip("+-").isdigit()
                lit = _Lit("number", int(tok.text) if is_int else float(tok.text))
            elif tok.kind == "date":
                lit = _Lit("date", date.fromisoformat(tok.text).isoformat())
            elif tok.kind == "datetime":
                lit = _Lit("datetime", format_sf_datetime(parse_sf_datetime(tok.text)))
            elif self.is_kw("TRUE", "FALSE"):
                lit = _Lit("boolean", tok.text.upper() == "TRUE")
            elif self.is_kw("NULL"):
                lit = _Lit("null", None)
            else:
                raise self.fail()
        except ValueError:
            raise self.fail() from None
        self.i += 1
        return lit


def _canonical_datetime(value: Any) -> str:
    text = str(value)
    if len(text) == 28 and text.endswith("+0000"):
        return text
    return format_sf_datetime(parse_sf_datetime(text))


def _sort_key(kind: str) -> Callable[[Any], Any]:
    """Map a record value to something that orders and compares like Salesforce does."""
    if kind == "string":
        return lambda v: str(v).casefold()
    if kind == "number":
        return float
    if kind == "boolean":
        return bool
    if kind == "datetime":
        return _canonical_datetime
    return str


@dataclass(frozen=True)
class Query:
    """A validated query: filter, sort, limit and projection against one object's records."""

    sobject: str
    fields: tuple[str, ...]
    count_only: bool
    where: Predicate | None
    order_by: tuple[tuple[str, Callable[[Any], Any], bool, bool], ...]
    limit: int | None

    def select(self, records: Iterable[Record]) -> list[Record]:
        """Matching records in result order (not projected, so callers may page lazily)."""
        rows = [r for r in records if self.where(r)] if self.where else list(records)
        for field, key, desc, nulls_last in reversed(self.order_by):
            present = [r for r in rows if r.get(field) is not None]
            missing = [r for r in rows if r.get(field) is None]
            present.sort(key=lambda r: key(r[field]), reverse=desc)
            rows = present + missing if nulls_last else missing + present
        return rows if self.limit is None else rows[: self.limit]

    def project(self, record: Record) -> dict[str, Any]:
        """The record as the REST API returns it for this SELECT list."""
        out: dict[str, Any] = {"attributes": record.get("attributes", {"type": self.sobject})}
        for field in self.fields:
            out[field] = record.get(field)
        return out


class _Compiler:
    """Resolves names against the schema and turns the AST into closures."""

    def __init__(self, sobject: str, fields: Mapping[str, str]) -> None:
        self.sobject = sobject
        self.types = fields
        self.lower = {name.lower(): name for name in fields}

    def field(self, name: str) -> tuple[str, str]:
        canonical = self.lower.get(name.lower())
        if canonical is None:
            if "." in name:
                raise SoqlError(
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{name.split('.')[0]}' in field path. "
                    "If you are attempting to use a custom relationship, be sure to append "
                    "the '__r' after the custom relationship name.",
                )
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{self.sobject}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field "
                "name. Please reference your WSDL or the describe call for the appropriate names.",
                near=name,
            )
        sf_type = self.types[canonical].lower()
        return canonical, _KINDS.get(sf_type, "string")

    def node(self, node: _Node) -> Predicate:
        if isinstance(node, _Cmp):
            return self.comparison(node)
        parts = [self.node(arg) for arg in node.args]
        if node.op == "NOT":
            inner = parts[0]
            return lambda r: not inner(r)
        if node.op == "AND":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)

    def comparison(self, cmp: _Cmp) -> Predicate:
        field, kind = self.field(cmp.field)
        for lit in cmp.values:
            if lit.kind not in ("null", kind):
                sf_type = self.types[field]
                quoted = "" if kind == "string" else "not "
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{field}' must be of type "
                    f"{'dateTime' if sf_type.lower() == 'datetime' else sf_type} "
                    f"and should {quoted}be enclosed in quotes",
                )
        key = _sort_key(kind)
        if cmp.op in ("IN", "NOT IN"):
            targets = {key(lit.value) for lit in cmp.values if lit.kind != "null"}
            has_null = any(lit.kind == "null" for lit in cmp.values)

            def member(r: Record) -> bool:
                v = r.get(field)
                return has_null if v is None else key(v) in targets

            if cmp.op == "IN":
                return member
            return lambda r: not member(r)
        lit = cmp.values[0]
        if lit.kind == "null":
            if cmp.op == "=":
                return lambda r: r.get(field) is None
            if cmp.op == "!=":
                return lambda r: r.get(field) is not None
            return lambda r: False
        target = key(lit.value)
        if cmp.op == "!=":
            return lambda r: (v := r.get(field)) is None or key(v) != target
        test = _OPS[cmp.op]
        return lambda r: (v := r.get(field)) is not None and test(key(v), target)


def parse_soql(text: str, schema: Schema) -> Query:
    """Parse and validate ``text`` against ``schema``, raising SoqlError like Salesforce."""
    fields, count_only, sobject, where, order, limit = _Parser(text).statement()
    objects = {name.lower(): name for name in schema}
    canonical_object = objects.get(sobject.lower())
    if canonical_object is None:
        raise SoqlError(
            "INVALID_TYPE",
            f"sObject type '{sobject}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
            near=sobject,
        )
    compiler = _Compiler(canonical_object, schema[canonical_object])
    selected = tuple(dict.fromkeys(compiler.field(name)[0] for name in fields))
    predicate = compiler.node(where) if where is not None else None
    order_by = []
    for name, desc, nulls_last in order:
        field, kind = compiler.field(name)
        order_by.append((field, _sort_key(kind), desc, nulls_last))
    return Query(canonical_object, selected, count_only, predicate, tuple(order_by), limit)
