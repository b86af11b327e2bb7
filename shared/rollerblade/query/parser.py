"""Parse aBIDS query text into an AST.

Grammar (keywords are case-insensitive)::

    query      := [ or_expr ]
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | primary
    primary    := "(" or_expr ")" | EXISTS "(" field ")" | field op value
                | field IN "(" value ( "," value )* ")"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"      (~ is a glob match)
    value      := bare word | "double quoted" | 'single quoted'

Errors are :class:`~rollerblade.errors.QueryError` naming the token and its position.
Field names are checked separately (:func:`rollerblade.query.fields.check_fields`).
"""

from __future__ import annotations

import dataclasses
import re

from rollerblade.errors import QueryError
from rollerblade.query import ast

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<op><=|>=|!=|=|<|>|~)
  | (?P<punct>[(),])
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<word>[A-Za-z0-9_.+\-*?/:\[\]]+)
    """,
    re.VERBOSE,
)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_\-]+)*")
_KEYWORDS = {"and", "or", "not", "in", "exists"}


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str  # op | punct | string | word | keyword | end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            message = "unterminated quoted string" if text[pos] in "'\"" else "unexpected character"
            raise QueryError(message, query=text, position=pos, token=text[pos])
        kind = match.lastgroup or ""
        if kind == "word" and match.group(0).lower() in _KEYWORDS:
            kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, match.group(0), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: Token) -> QueryError:
        return QueryError(message, query=self.text, position=token.position, token=token.text or "end of query")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.text.lower() == word:
            self.index += 1
            return True
        return False

    def expect_punct(self, char: str, context: str) -> Token:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            raise self.error(f"expected {char!r} {context}", token)
        return token

    def parse(self) -> ast.Node:
        if self.peek().kind == "end":
            return ast.All()
        node = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            raise self.error("expected AND, OR or the end of the query", token)
        return node

    def or_expr(self) -> ast.Node:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else ast.Or(tuple(items))

    def and_expr(self) -> ast.Node:
        items = [self.not_expr()]
        while self.keyword("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else ast.And(tuple(items))

    def not_expr(self) -> ast.Node:
        if self.keyword("not"):
            return ast.Not(self.not_expr())
        return self.primary()

    def primary(self) -> ast.Node:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.or_expr()
            self.expect_punct(")", "to close the parenthesis")
            return node
        if self.keyword("exists"):
            self.expect_punct("(", "after exists")
            field = self.field()
            self.expect_punct(")", "after the field in exists(...)")
            return ast.Exists(field)
        field = self.field()
        if self.keyword("in"):
            self.expect_punct("(", "after IN")
            values = [self.value()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                values.append(self.value())
            self.expect_punct(")", "to close the IN list")
            if field.name == "tag":
                return ast.Or(tuple(ast.has_tag(v.text, v.position) for v in values))
            return ast.In(field, tuple(values))
        op = self.take()
        if op.kind != "op":
            raise self.error(f"expected an operator (= != < <= > >= ~ IN) after {field.name!r}", op)
        if field.name == "tag":
            if op.text not in ("=", "!="):
                raise self.error("tag takes = or != (tag=final, tag!=final) or IN", op)
            value = self.value()
            tagged = ast.has_tag(value.text, value.position)
            return tagged if op.text == "=" else ast.Not(tagged)
        return ast.Compare(field, op.text, self.value())  # type: ignore[arg-type]

    def field(self) -> ast.Field:
        token = self.take()
        if token.kind != "word" or not _FIELD.fullmatch(token.text):
            raise self.error("expected a field name such as suffix, meta.RepetitionTime or participant.age", token)
        return ast.Field(token.text, token.position)

    def value(self) -> ast.Value:
        token = self.take()
        if token.kind == "string":
            body = re.sub(r"\\(.)", r"\1", token.text[1:-1])
            return ast.Value(body, None, token.position)
        if token.kind != "word":
            raise self.error("expected a value", token)
        number = float(token.text) if _NUMBER.fullmatch(token.text) else None
        return ast.Value(token.text, number, token.position)


def parse_query(text: str) -> ast.Node:
    """Parse query text into an AST (raises :class:`QueryError`)."""
    return _Parser(text).parse()
