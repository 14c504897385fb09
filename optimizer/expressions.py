"""The small, safe expression language of user-declared constraints in space files.

A constraint such as ``max-num-batched-tokens >= 2 * max-num-seqs`` is parsed once, when the
space file is loaded (`parse`), into a tree of frozen nodes, and evaluated per candidate
(`evaluate`) against the candidate's effective settings and a few model/hardware facts. There
is no `eval`: only numbers, strings, true/false, setting names, lists ``[a, b]``, arithmetic
``+ - * / // %``, one comparison ``== != < <= > >= in``, and ``and or not`` with parentheses.
Setting names may contain ``-`` and ``.`` (``max-num-seqs``, ``kv_cache_config.dtype``), so
subtraction needs spaces around the minus: ``a - b``. An expression is bounded (`MAX_CHARS`
characters, `MAX_NESTING` levels, integers up to `MAX_INTEGER`), so no input can exhaust the
stack or spend minutes on arithmetic.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from optimizer.errors import ExpressionError

Value = int | float | str | bool | tuple["Value", ...]


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class ListOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Literal | Name | ListOf | Unary | Binary

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<string>'[^']*'|\"[^\"]*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*)"
    r"|(?P<op>//|==|!=|<=|>=|[-+*/%<>()\[\],]))"
)
_BLANK_TO_END = re.compile(r"\s*\Z")
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}

# Bounds no constraint a person writes comes near; past them an expression is refused with an
# ExpressionError instead of running out of stack or spending minutes on integer arithmetic
MAX_CHARS = 2000
MAX_NESTING = 50
MAX_INTEGER = 10**18
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">", "in")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if _BLANK_TO_END.match(text, position):
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(
                f"unexpected character {text[position:].strip()[0]!r} at column {position + 1}"
            )
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "name" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.nesting = 0

    def deeper(self) -> None:
        """One more level of parentheses, brackets or prefix operators (the caller steps back
        out when the level is parsed)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(
                f"nested more than {MAX_NESTING} levels deep; split it into simpler constraints"
            )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, *values: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] in ("op", "keyword") and token[1] in values:
            self.index += 1
            return token[1]
        return None

    def expect(self, value: str) -> None:
        if self.take(value) is None:
            found = self.peek()
            raise ExpressionError(
                f"expected {value!r}, found {found[1] if found else 'the end'!r}"
            )

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("the expression is empty")
        node = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} after a complete expression")  # type: ignore[index]
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("or"):
            node = Binary("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("and"):
            node = Binary("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.take("not"):
            self.deeper()
            node = Unary("not", self.not_())
            self.nesting -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        op = self.take(*_COMPARISONS)
        if op is not None:
            node = Binary(op, node, self.sum())
            if self.take(*_COMPARISONS):
                raise ExpressionError("chained comparisons are not supported; use 'and'")
        return node

    def sum(self) -> Node:
        node = self.term()
        while (op := self.take("+", "-")) is not None:
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (op := self.take("*", "/", "//", "%")) is not None:
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.take("-"):
            self.deeper()
            node = Unary("-", self.unary())
            self.nesting -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise ExpressionError("the expression ends too early")
        kind, text = token
        if self.take("("):
            self.deeper()
            node = self.or_()
            self.expect(")")
            self.nesting -= 1
            return node
        if self.take("["):
            self.deeper()
            items = [self.or_()]
            while self.take(","):
                items.append(self.or_())
            self.expect("]")
            self.nesting -= 1
            return ListOf(tuple(items))
        self.index += 1
        if kind == "number":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return Literal(_bounded(number))
        if kind == "string":
            return Literal(text[1:-1])
        if kind == "keyword" and text in ("true", "false"):
            return Literal(text == "true")
        if kind == "name":
            return Name(text)
        raise ExpressionError(f"unexpected {text!r}")


def parse(text: str) -> Node:
    """Parse `text` into a tree, or raise `ExpressionError` saying what is wrong."""
    if len(text) > MAX_CHARS:
        raise ExpressionError(
            f"{len(text):,} characters; an expression is at most {MAX_CHARS:,}, so split it "
            "into several constraints"
        )
    return _Parser(text).parse()


def _bounded(number: float) -> float:
    """`number`, if it is within the integers an expression may hold."""
    if isinstance(number, int) and abs(number) > MAX_INTEGER:
        raise ExpressionError(f"a number beyond 10^18 ({str(number)[:20]}...) is not a setting")
    return number


def names(node: Node) -> set[str]:
    """Every name the expression refers to."""
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Literal):
        return set()
    if isinstance(node, ListOf):
        return set().union(*(names(item) for item in node.items))
    if isinstance(node, Unary):
        return names(node.operand)
    return names(node.left) | names(node.right)


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _number(value: Value, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"{op!r} needs numbers, got {value!r}")
    return value


def evaluate(node: Node, env: Mapping[str, Value]) -> Value:
    """The value of `node` with names taken from `env`; `ExpressionError` on a type error."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        if node.name not in env:
            raise ExpressionError(f"unknown name {node.name!r}")
        return env[node.name]
    if isinstance(node, ListOf):
        return tuple(evaluate(item, env) for item in node.items)
    if isinstance(node, Unary):
        operand = evaluate(node.operand, env)
        if node.op == "not":
            return not _truth(operand)
        return -_number(operand, "-")
    if node.op in ("and", "or"):
        left_true = _truth(evaluate(node.left, env))
        if node.op == "and" and not left_true:
            return False
        if node.op == "or" and left_true:
            return True
        return _truth(evaluate(node.right, env))
    left, right = evaluate(node.left, env), evaluate(node.right, env)
    if node.op == "==":
        return left == right
    if node.op == "!=":
        return left != right
    if node.op == "in":
        if not isinstance(right, tuple):
            raise ExpressionError(f"'in' needs a list on its right, got {right!r}")
        return left in right
    a, b = _number(left, node.op), _number(right, node.op)
    if node.op in _COMPARE:
        return _COMPARE[node.op](a, b)
    if node.op in ("/", "//", "%") and b == 0:
        raise ExpressionError(f"division by zero in {node.op!r}")
    result = _ARITHMETIC[node.op](a, b)
    if isinstance(a, int) and isinstance(b, int) and node.op != "/":
        return _bounded(int(result))
    return result


def _truth(value: Value) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"'and', 'or' and 'not' need true/false, got {value!r}")
    return value
